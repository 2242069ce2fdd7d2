"""The console's other pages, end to end: store, items, clients, policies, audit.

Each test runs a real `sealbox up` whose first approver is a browser (Debian's
Chromium, a virtual passkey with user verification and PRF) and a `sealbox
login`-ed CLI, built with the helpers of ``test_e2e_browser``.  What a page
shows is checked against the relay and the CLI; what the relay serves is
tampered with (``page.route``) to show that the browser, not the relay, decides
what verifies.  Every tab fails its test on a CSP violation or a page error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE, Console, console
from test_e2e_browser import World, browser, log_in, set_up, store_in_cli

from sealbox.crypto.encoding import b64u_decode
from sealbox.protocol.store import manifest_hash

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.timeout(300)

PAGES = (
    "approvals", "logins", "store", "items", "clients", "agents", "approvers", "policies", "audit",
)  # fmt: skip
#: What each page shows once it has loaded what it shows.
READY = {
    "approvals": "#empty, #requests article",
    "logins": "#user-code",
    "store": "#field-name-1",
    "items": "#items tbody tr, #status:not(:empty)",
    "clients": "#clients article, #status:not(:empty)",
    "agents": "#requests article, #agents article, #empty:not([hidden]), #status:not(:empty)",
    "approvers": "#approvers tbody tr",
    "policies": "#policies tbody tr, #status:not(:empty)",
    "audit": "#audit tbody tr",
}


@pytest.fixture
def world(tmp_path: Path, browser: Any) -> Iterator[World]:
    w = World(tmp_path, browser)
    try:
        set_up(w)
        log_in(w)
        yield w
    finally:
        w.close()


def relay_get(world: World, path: str) -> Any:
    """A GET on the vault as the signed-in browser (not through any page.route)."""
    return world.tab.page.evaluate(
        """async ([v, p]) => {
             const r = await fetch(`/v1/vaults/${v}${p}`, {cache: 'no-store'});
             return {status: r.status, body: await r.json()};
           }""",
        [world.vault, path],
    )["body"]


def items_by_path(world: World) -> dict[str, Any]:
    return {item["path"]: item for item in relay_get(world, "/items")["items"]}


def claims(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(b64u_decode(token.split(".")[1]))
    return payload


def read_in_cli(world: World, reference: str) -> str:
    """`sealbox read`, approved in the browser; what it prints."""
    reading = world.start("read", reference)
    try:
        card = world.wait_card("Read request")
        card.get_by_role("button", name=re.compile("^Approve")).click()
        world.tab.wait_status("Approved")
        out, err = reading.communicate(timeout=60)
    finally:
        if reading.poll() is None:
            reading.kill()
    assert reading.returncode == 0, err
    return out


def open_page(tab: Console, name: str) -> Any:
    page = tab.open(f"/console/{name}")
    page.locator(READY[name]).first.wait_for()
    return page


# --- 1. storing an item in the browser ---------------------------------------------------------


def store_in_browser(tab: Console, path: str, fields: list[tuple[str, str]]) -> str:
    """Fill the store page and press the button; the status line it ends with."""
    page = open_page(tab, "store")
    page.get_by_label("Item path (project/environment/item)").fill(path)
    for i, (name, value) in enumerate(fields, start=1):
        if i > 1:
            page.get_by_role("button", name="Add a field").click()
        page.get_by_label(f"Field {i} name").fill(name)
        page.get_by_label(f"Field {i} value (encrypted in this browser)").fill(value)
    if not fields:
        page.get_by_role("button", name="Remove field 1").click()
    page.get_by_role("button", name="Encrypt and store").click()
    page.wait_for_function(
        "() => /Stored|\\S/.test(document.querySelector('#status').textContent)"
        " && !document.querySelector('#store-button').disabled"
    )
    return tab.status()


def test_an_item_stored_in_the_browser_reads_back_in_the_cli(world: World) -> None:
    tab = world.tab
    # Values with spaces, quotes and non-ASCII: what the CLI prints must be exactly these.
    user, password = "ana o'neil", 'pä ss "word" 1'
    said = store_in_browser(tab, "web/prod/db", [("user", user), ("password", password)])
    assert said == "Stored web/prod/db version 1.", said
    assert tab.page.input_value("#field-value-1") == ""  # the values leave the page
    tab.screenshot("store")
    tab.screenshot("store", phone=True)
    assert read_in_cli(world, "sealbox://web/prod/db/user") == user + "\n"
    assert read_in_cli(world, "sealbox://web/prod/db/password") == password + "\n"

    # A second version: version 2, chained to version 1's manifest.
    said = store_in_browser(tab, "web/prod/db", [("password", "second")])
    assert said == "Stored web/prod/db version 2.", said
    item = items_by_path(world)["web/prod/db"]
    assert item["latest_version"] == 2
    versions = relay_get(world, f"/items/{item['id']}/versions")["versions"]
    v1, v2 = (claims(v["manifest"]) for v in versions)
    assert v1["version"] == 1
    assert v1["prev"] is None
    assert v2["version"] == 2
    assert v2["item"] == v1["item"]
    assert v2["prev"] == manifest_hash(versions[0]["manifest"])
    assert sorted(v2["fields"]) == ["password"]
    assert read_in_cli(world, "sealbox://web/prod/db/password") == "second\n"

    # The page says who will hold the shares, from the policy checked against the directory.
    page = open_page(tab, "store")
    page.get_by_label("Item path (project/environment/item)").fill("web/prod/db")
    page.get_by_label("Item path (project/environment/item)").press("Tab")
    preview = page.locator("#policy-preview")
    preview.get_by_text("Shares go to").wait_for()
    assert preview.inner_text() == "Shares go to Ana's phone; 1 of 1 must approve each read."

    # A relay that advises sealing to an approver the verified directory lacks gets nothing.
    stranger = "apv_" + "a" * 26

    def advise(route: Any) -> None:
        response = route.fetch()
        policy = response.json()
        policy["approvers"] = [*policy["approvers"], stranger]
        route.fulfill(response=response, json=policy)

    tab.page.route(re.compile(r"/policy\?"), advise)
    said = store_in_browser(tab, "web/prod/db", [("password", "third")])
    assert said == f"{stranger} is not a current approver of this vault (not_authorized)", said
    assert items_by_path(world)["web/prod/db"]["latest_version"] == 2
    tab.check_clean()


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("web/prod", [("password", "x")], "expected project/environment/item"),
        ("web/prod/d b", [("password", "x")], "letters, digits"),
        ("web/prod/db", [("password", "x"), ("password", "y")], "field password is given twice"),
        ("web/prod/db", [("pass word", "x")], "field name"),
        ("web/prod/db", [], "give at least one field"),
    ],
    ids=["short-path", "bad-path", "duplicate-field", "bad-field", "no-field"],
)
def test_bad_input_on_the_store_page_stores_nothing(
    world: World, path: str, fields: list[tuple[str, str]], message: str
) -> None:
    said = store_in_browser(world.tab, path, fields)
    assert message in said, said
    assert "error" in str(world.tab.page.locator("#status").get_attribute("class"))
    assert items_by_path(world) == {}
    world.tab.check_clean()


# --- 2. items and their history ----------------------------------------------------------------


def history_of(tab: Console, path: str) -> list[Any]:
    page = open_page(tab, "items")
    page.get_by_role("button", name=f"History of {path}").click()
    page.locator("#versions li").first.wait_for()
    assert page.locator("#history-path").text_content() == path
    return list(page.locator("#versions li").all())


def test_the_items_page_lists_items_and_verifies_each_version(world: World) -> None:
    tab = world.tab
    store_in_browser(tab, "web/prod/db", [("password", "one")])
    store_in_browser(tab, "web/prod/db", [("password", "two"), ("user", "ana")])
    store_in_browser(tab, "web/prod/api", [("token", "t")])
    store_in_cli(world, "app/prod/cli", "key", "k")
    page = open_page(tab, "items")
    rows = {
        row.locator("td").first.inner_text(): row.locator("td").nth(1).inner_text()
        for row in page.locator("#items tbody tr").all()
    }
    assert rows == {"web/prod/db": "2", "web/prod/api": "1", "app/prod/cli": "1"}

    v1, v2 = history_of(tab, "web/prod/db")
    assert v1.inner_text().startswith("verified v1 · fields password · 1 of 1 approvers")
    assert v2.inner_text().startswith("verified v2 · fields password, user · 1 of 1 approvers")
    assert "Ana's phone" in v2.inner_text()
    [cli] = history_of(tab, "app/prod/cli")
    assert cli.inner_text().startswith("verified v1 · fields key")
    tab.screenshot("items")
    tab.screenshot("items", phone=True)

    # The relay serves, as version 2 of web/prod/db, the (validly signed) manifest of another item.
    items = items_by_path(world)
    other = relay_get(world, f"/items/{items['web/prod/api']['id']}/versions")["versions"][0]

    def swap(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        listed["versions"][1]["manifest"] = other["manifest"]
        route.fulfill(response=response, json=listed)

    versions_url = f"**/items/{items['web/prod/db']['id']}/versions"
    tab.page.route(versions_url, swap)
    v1, v2 = history_of(tab, "web/prod/db")
    assert v1.inner_text().startswith("verified v1")
    assert v2.get_attribute("class") == "error"
    assert v2.inner_text() == "v2: does not verify (the manifest is another item's (web/prod/api))"
    tab.screenshot("items-tampered")
    tab.page.unroute(versions_url)

    # ... or drops version 1: version 2 no longer follows anything it names.
    def drop(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        del listed["versions"][0]
        route.fulfill(response=response, json=listed)

    tab.page.route(versions_url, drop)
    [v2] = history_of(tab, "web/prod/db")
    assert v2.inner_text() == "v2: does not verify (it does not follow the version before)"
    tab.check_clean()


# --- 3. clients and agents ----------------------------------------------------------------------


def test_the_agents_page_approves_an_agent_and_disables_it(world: World) -> None:
    tab = world.tab
    store_in_browser(tab, "web/prod/db", [("password", "pw")])
    making = world.start("agent", "create", "--name", "Deploy Bot", "--items", "web/prod/*",
                         "--json")  # fmt: skip
    try:
        page = open_page(tab, "agents")
        card = page.locator("article[data-agent-request]").first
        card.wait_for(timeout=60_000)
        labels = [t.inner_text() for t in card.locator("dt").all()]
        shown = dict(zip(labels, [d.inner_text() for d in card.locator("dd").all()], strict=True))
        assert shown["Scopes"] == "read"
        assert shown["Items"] == "web/prod/*"
        assert shown["Asked by (as the relay reports)"].startswith("bo@laptop (cli_")
        tab.screenshot("agents")
        tab.screenshot("agents", phone=True)
        client = shown["Client id"]
        card.get_by_role("button", name=f"Approve agent Deploy Bot ({client})").click()
        tab.wait_status("Agent Deploy Bot approved.")
        out, err = making.communicate(timeout=60)
    finally:
        if making.poll() is None:
            making.kill()
            making.communicate(timeout=30)
    assert making.returncode == 0, err
    made = json.loads(out)
    assert made["client_id"] == client
    # The safety code the person compared is the one the page computed from the key.
    assert f"Agent key safety code:  {shown['Key safety code']}" in err
    assert relay_get(world, f"/clients/{client}/grants")["grants"] == ["web/prod/*"]

    agent = page.locator(f"article[data-agent='{client}']")
    agent.locator("dd", has_text="active").wait_for()
    agent.get_by_role("button", name=f"Disable agent Deploy Bot ({client})").click()
    tab.wait_status("Deploy Bot disabled.")
    [listed] = relay_get(world, "/agents")["agents"]
    assert listed["state"] == "disabled"

    # Revoking asks first; dismissed, nothing happens; accepted, the agent is gone for good.
    agent = page.locator(f"article[data-agent='{client}']")
    revoke = agent.get_by_role("button", name=f"Revoke agent Deploy Bot ({client}) for good")
    page.once("dialog", lambda dialog: dialog.dismiss())
    revoke.click()
    assert relay_get(world, "/agents")["agents"][0]["state"] == "disabled"
    page.once("dialog", lambda dialog: dialog.accept())
    revoke.click()
    tab.wait_status("Deploy Bot revoked.")
    page.locator(f"article[data-agent='{client}'] dd", has_text="revoked").wait_for()
    assert relay_get(world, "/agents")["agents"][0]["state"] == "revoked"
    tab.check_clean()


# --- 3. clients --------------------------------------------------------------------------------


def client_card(page: Any) -> tuple[Any, dict[str, str]]:
    """The one client's card, and its facts by label."""
    [card] = page.locator("#clients article").all()
    labels = [t.inner_text() for t in card.locator("dt").all()]
    values = [d.inner_text() for d in card.locator("dd").all()]
    return card, dict(zip(labels, values, strict=True))


def test_the_clients_page_manages_grants_and_disables_a_client(world: World) -> None:
    tab = world.tab
    store_in_browser(tab, "web/prod/db", [("password", "pw")])
    page = open_page(tab, "clients")
    card, shown = client_card(page)
    assert card.locator("h2").inner_text() == "bo@laptop"
    client = shown["Id"]
    assert re.fullmatch(r"cli_[a-z2-7]{26}", client)
    assert shown["Kind"] == "human"
    assert shown["State"] == "enabled"
    assert shown["Grants"].split() == ["*/*/*", "Remove"]
    tab.screenshot("clients")
    tab.screenshot("clients", phone=True)

    # Grants: a bad pattern adds nothing; a good one is added; one is removed.
    grant = card.get_by_label("Let bo@laptop ask for (project/environment/item glob)")
    grant.fill("web/prod")
    card.get_by_role("button", name=f"Add grant to bo@laptop ({client})").click()
    assert "A grant is project/environment/item" in tab.wait_status("grant is")
    assert relay_get(world, f"/clients/{client}/grants")["grants"] == ["*/*/*"]
    grant.fill("web/prod/*")
    card.get_by_role("button", name=f"Add grant to bo@laptop ({client})").click()
    tab.wait_status("bo@laptop may ask for web/prod/")
    page.get_by_role("button", name=f"Remove grant */*/* from bo@laptop ({client})").click()
    tab.wait_status("bo@laptop may no longer ask for ")
    assert relay_get(world, f"/clients/{client}/grants")["grants"] == ["web/prod/*"]
    card, shown = client_card(page)
    assert shown["Grants"].split() == ["web/prod/*", "Remove"]

    card.get_by_role("button", name=f"Disable bo@laptop ({client})").click()
    tab.wait_status("bo@laptop disabled")
    page.locator("#clients article dd", has_text="disabled").wait_for()
    refused = world.cli("read", "sealbox://web/prod/db/password")
    assert refused.returncode != 0
    assert refused.stdout == ""
    assert "the access token is unknown, revoked" in refused.stderr
    assert "Log in again with `sealbox login`." in refused.stderr
    tab.screenshot("clients-disabled")

    # Enabling lets the client back in; its revoked tokens stay revoked (a stolen one must not
    # come back to life), so the person logs in again, and reads.
    page.get_by_role("button", name=f"Enable bo@laptop ({client})").click()
    tab.wait_status("bo@laptop enabled")
    page.locator("#clients article dd", has_text="enabled").wait_for()
    [listed] = relay_get(world, "/clients")["clients"]
    assert listed["id"] == client
    assert listed["disabled"] is False
    actions = [e["action"] for e in relay_get(world, "/audit?action=client.*")["events"]]
    assert actions == ["client.disabled", "client.enabled"]
    # The person's new login is a new client, with a grant of its own.
    assert world.cli("logout").returncode == 0
    log_in(world)
    assert read_in_cli(world, "sealbox://web/prod/db/password") == "pw\n"
    tab.check_clean()


def test_a_disabled_clients_read_exits_as_the_cli_documents(world: World) -> None:
    store_in_browser(world.tab, "web/prod/db", [("password", "pw")])
    page = open_page(world.tab, "clients")
    page.locator("#clients article").first.get_by_role(
        "button", name=re.compile("^Disable")
    ).click()
    world.tab.wait_status("disabled")
    refused = world.cli("read", "sealbox://web/prod/db/password")
    assert refused.returncode == 6, refused.stderr


# --- 4. policies -------------------------------------------------------------------------------


def call(world: World, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A call on the vault as the signed-in browser, with its CSRF token."""
    answer = world.tab.page.evaluate(
        """async ([v, method, p, body]) => {
             const csrf = document.querySelector('meta[name="sealbox-csrf"]').content;
             const r = await fetch(`/v1/vaults/${v}${p}`, {method,
               headers: {'content-type': 'application/json', 'x-sealbox-csrf': csrf},
               body: body === null ? undefined : JSON.stringify(body)});
             return [r.status, r.status === 204 ? null : await r.json()];
           }""",
        [world.vault, method, path, body],
    )
    return answer[0], answer[1]


def policies_of(world: World) -> dict[str, Any]:
    return {p["pattern"]: p for p in relay_get(world, "/policies")["policies"]}


def test_the_policies_page_shows_and_edits_policies(world: World) -> None:
    tab = world.tab
    page = open_page(tab, "policies")
    me = page.locator('meta[name="sealbox-approver"]').get_attribute("content")
    policy = {"pattern": "web/*/*", "approvers": [me], "threshold": 1, "expiry_seconds": 600}
    status, _ = call(world, "PUT", "/policies", policy)
    assert status == 200
    page = open_page(tab, "policies")
    row = page.locator('#policies tbody tr[data-pattern="web/*/*"]')
    cells = [c.inner_text() for c in row.locator("td").all()]
    assert cells[:2] == ["web/*/*", "1 of 1: Ana's phone"]

    # Bad input: a clear error, and nothing stored.
    def save(pattern: str, approvers: list[str], threshold: str) -> str:
        page.get_by_label("Pattern (project/environment/item", exact=False).fill(pattern)
        for box in page.locator("input.policy-approver").all():
            box.set_checked(box.get_attribute("value") in approvers)
        page.get_by_label("How many of them must approve").fill(threshold)
        page.get_by_role("button", name="Save the policy").click()
        page.wait_for_function("() => !document.querySelector('#policy-save').disabled")
        return tab.status()

    assert "must be project/environment/item" in save("app/prod", [me], "1")
    assert "must be project/environment/item" in save("app/pr od/x", [me], "1")
    assert "Pick at least one approver" in save("app/prod/*", [], "1")
    assert "from 1 to 1" in save("app/prod/*", [me], "2")
    assert "from 1 to 1" in save("app/prod/*", [me], "0")
    assert list(policies_of(world)) == ["web/*/*"]

    # A new policy, from the approvers of the verified directory.
    assert page.get_by_label(re.compile("^Ana's phone \\(browser\\) apv_")).count() == 1
    said = save("app/prod/*", [me], "1")
    assert said == "Saved: app/prod/* needs 1 of 1 (Ana's phone).", said
    page.locator('#policies tbody tr[data-pattern="app/prod/*"]').wait_for()
    assert policies_of(world)["app/prod/*"]["approvers"] == [me]
    tab.screenshot("policies")
    tab.screenshot("policies", phone=True)

    # Editing fills the form; saving keeps what the editor does not show (the expiry).
    page.get_by_role("button", name="Edit policy web/*/*").click()
    assert page.input_value("#policy-pattern") == "web/*/*"
    assert page.locator(f'input.policy-approver[value="{me}"]').is_checked()
    page.get_by_role("button", name="Save the policy").click()
    tab.wait_status("Saved: web/")
    assert policies_of(world)["web/*/*"]["expiry_seconds"] == 600

    # Delete.
    page.get_by_role("button", name="Delete policy app/prod/*").click()
    tab.wait_status("Deleted the policy for app/prod/")
    assert list(policies_of(world)) == ["web/*/*"]
    assert page.locator("#policies tbody tr").count() == 1

    # An approver id the verified directory does not hold is shown as such.
    def stranger(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        listed["policies"][0]["approvers"].append("apv_" + "a" * 26)
        route.fulfill(response=response, json=listed)

    tab.page.route(re.compile(r"/policies$"), stranger)
    page = open_page(tab, "policies")
    row = page.locator('#policies tbody tr[data-pattern="web/*/*"]')
    row.wait_for()
    assert f"apv_{'a' * 26} (not a current approver)" in row.inner_text()
    tab.check_clean()


# --- 5. audit ----------------------------------------------------------------------------------


def audit_rows(page: Any) -> list[tuple[int, str]]:
    """(seq, action) of each row the audit table shows, as shown (newest first)."""
    return [
        (int(str(row.get_attribute("data-seq"))), row.locator("td strong").inner_text())
        for row in page.locator("#audit tbody tr").all()
    ]


def chain_says(tab: Console) -> str:
    page = tab.page
    page.locator("#chain").evaluate("(e) => { e.textContent = ''; }")
    page.get_by_role("button", name="Verify the chain in this browser").click()
    page.wait_for_function("() => document.querySelector('#chain').textContent !== ''")
    return str(page.locator("#chain").text_content())


def test_the_audit_page_filters_verifies_exports_and_follows(world: World) -> None:
    tab = world.tab
    store_in_browser(tab, "web/prod/db", [("password", "pw")])
    events = relay_get(world, "/audit?limit=1000")["events"]
    # The page recomputes hashes over every kind of detail: nulls, lists, numbers, text.
    assert events[-1]["action"] == "item.stored"
    assert events[-1]["detail"]["store_request"] is None
    page = open_page(tab, "audit")
    shown = audit_rows(page)
    assert shown == [(e["seq"], e["action"]) for e in reversed(events)]

    # The filter narrows what is shown to matching events.
    page.get_by_label("Filter (action, actor, item or client)").fill("grant.")
    assert audit_rows(page) == [(e["seq"], e["action"]) for e in events if "grant." in e["action"]]
    assert 0 < len(audit_rows(page)) < len(events)
    page.get_by_label("Filter (action, actor, item or client)").fill("")
    assert len(audit_rows(page)) == len(events)

    said = chain_says(tab)
    assert said.startswith(f"Verified in this browser: {len(events)} events"), said
    tab.screenshot("audit")
    tab.screenshot("audit", phone=True)

    # Export: JSON Lines, one event a line, exactly the events.
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Export (JSONL)").click()
    download = downloading.value
    assert download.suggested_filename == f"sealbox-audit-{world.vault}.jsonl"
    lines = Path(download.path()).read_text().splitlines()
    assert [json.loads(line) for line in lines] == events

    # Live: a new event (a CLI's read request) shows without a reload.
    before = len(events)
    reading = world.start("read", "sealbox://web/prod/db/password")
    try:
        page.locator("#audit tbody tr", has_text="access.requested").wait_for(timeout=60_000)
    finally:
        reading.kill()
        reading.communicate(timeout=30)
    assert len(audit_rows(page)) > before
    assert "access.requested" in [a for _, a in audit_rows(page)]
    tab.check_clean()


@pytest.mark.parametrize("tampering", ["edited detail", "removed event", "removed first event"])
def test_a_tampered_audit_log_does_not_verify_in_the_browser(world: World, tampering: str) -> None:
    tab = world.tab
    events = relay_get(world, "/audit?limit=1000")["events"]
    if tampering == "removed first event":
        victim = events[0]  # the rest still link to each other: only the start is missing
    else:
        victim = next(e for e in events if e["seq"] > 1 and e["detail"])

    def change(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        for i, e in enumerate(listed["events"]):
            if e["seq"] == victim["seq"]:
                if tampering == "edited detail":
                    key = sorted(e["detail"])[0]
                    e["detail"][key] = "changed"
                else:
                    del listed["events"][i]
                break
        route.fulfill(response=response, json=listed)

    tab.page.route(re.compile(r"/audit\?"), change)
    page = open_page(tab, "audit")
    said = chain_says(tab)
    if tampering == "edited detail":
        assert said.startswith(f"Not valid: event {victim['seq']} was changed after it was "
                               "written"), said  # fmt: skip
    else:
        assert said.startswith(f"Not valid: event {victim['seq']} is missing"), said
    assert page.locator("#chain").get_attribute("class") == "error"
    tab.screenshot(f"audit-{tampering.replace(' ', '-')}")
    tab.check_clean()


# --- 6 and 7. every page at a phone's width, every control named --------------------------------

#: Roles of the controls whose accessible names are checked in Chromium's accessibility tree.
CONTROL_ROLES = {"button", "textbox", "checkbox", "radio", "combobox", "spinbutton", "searchbox",
                 "listbox", "slider", "switch", "menuitem", "link"}  # fmt: skip

#: Each form control's accessible name as its markup gives it (no placeholder, no title).
UNNAMED = """
() => [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea')]
  .filter((el) => {
    const by = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
      .map((id) => document.getElementById(id)?.textContent ?? '').join(' ');
    const labels = [...(el.labels ?? [])].map((l) => l.textContent).join(' ');
    const text = el.tagName === 'BUTTON' ? el.textContent : '';
    return !`${el.getAttribute('aria-label') ?? ''} ${by} ${labels} ${text}`.trim();
  })
  .map((el) => el.outerHTML.slice(0, 160))
"""


#: How many controls and links the page shows (all must be in the accessibility tree).
SHOWN = """
() => [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea, a')]
  .filter((el) => el.checkVisibility()).length
"""


def unnamed_in_tree(tab: Console) -> tuple[int, list[str]]:
    """How many controls Chromium's own accessibility tree holds, and those it gives no name."""
    tab.cdp.send("Accessibility.enable")
    try:
        nodes = tab.cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        tab.cdp.send("Accessibility.disable")
    roles = [(n, n.get("role", {}).get("value")) for n in nodes if not n.get("ignored")]
    controls = [n for n, role in roles if role in CONTROL_ROLES]
    unnamed = [
        f"{n['role']['value']} (backend node {n.get('backendDOMNodeId')})"
        for n in controls
        if not str(n.get("name", {}).get("value", "")).strip()
    ]
    return len(controls), unnamed


def test_every_page_fits_a_phone_and_names_every_control(world: World) -> None:
    tab = world.tab
    # Something on every page: an item, a policy, a pending read, login and device pairing.
    store_in_browser(tab, "web/prod/db", [("password", "pw")])
    me = tab.page.locator('meta[name="sealbox-approver"]').get_attribute("content")
    policy = {"pattern": "web/*/*", "approvers": [me], "threshold": 1}
    assert call(world, "PUT", "/policies", policy)[0] == 200
    waiting = [
        world.start("read", "sealbox://web/prod/db/password"),
        world.start("login", "--server", world.url, "--name", "cy@desk", config=world.tmp / "cy"),
        world.start("agent", "create", "--name", "Deploy Bot", "--items", "web/prod/*", "--json"),
        world.start(
            "approver",
            "add",
            "--server",
            world.url,
            "--name",
            "laptop",
            config=world.tmp / "laptop",
        ),
    ]
    extra = {
        "approvals": "#requests article",
        "logins": "article[data-user-code]",
        "agents": "article[data-agent-request]",
        "approvers": "article[data-pairing]",
    }
    problems: dict[str, Any] = {}
    try:
        for name in PAGES:
            page = open_page(tab, name)
            if name in extra:
                page.locator(extra[name]).first.wait_for(timeout=60_000)
            if name == "items":
                page.get_by_role("button", name="History of web/prod/db").click()
                page.locator("#versions li").first.wait_for()
            page.set_viewport_size(PHONE)
            page.wait_for_function("() => window.innerWidth === 390")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                problems[f"{name}: scrollWidth"] = width
            tab.screenshot(f"page-{name}", phone=True)
            if unnamed := page.evaluate(UNNAMED):
                problems[f"{name}: controls without a name"] = unnamed
            seen, unnamed = unnamed_in_tree(tab)
            if unnamed or seen < page.evaluate(SHOWN):
                problems[f"{name}: accessibility tree"] = (seen, unnamed)
            tab.check_clean()
    finally:
        for process in waiting:
            process.kill()
            process.communicate(timeout=30)

    # The two pages a visitor without a session sees, in a fresh profile.
    with console(tab.context.browser, world.url) as visitor:
        for name, ready in (("signin", "#signin-button"), ("setup", "#setup-button")):
            page = visitor.open(f"/console/{name}")
            page.locator(ready).wait_for()
            page.set_viewport_size(PHONE)
            page.wait_for_function("() => window.innerWidth === 390")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                problems[f"{name}: scrollWidth"] = width
            visitor.screenshot(f"page-{name}", phone=True)
            if unnamed := page.evaluate(UNNAMED):
                problems[f"{name}: controls without a name"] = unnamed
            seen, unnamed = unnamed_in_tree(visitor)
            if unnamed or seen < page.evaluate(SHOWN):
                problems[f"{name}: accessibility tree"] = (seen, unnamed)
            visitor.check_clean()
    assert not problems, problems

    # The checks see what they look for: an unnamed field and a too-wide box are caught.
    page = tab.page
    page.evaluate("""() => {
      const wide = document.createElement('div');
      wide.style.width = '600px';
      wide.textContent = 'wide';
      document.querySelector('main').append(document.createElement('input'), wide);
    }""")
    page.set_viewport_size(PHONE)
    page.wait_for_function("() => window.innerWidth === 390")
    assert page.evaluate("document.documentElement.scrollWidth") > PHONE["width"]
    assert len(page.evaluate(UNNAMED)) == 1
    assert len(unnamed_in_tree(tab)[1]) == 1
