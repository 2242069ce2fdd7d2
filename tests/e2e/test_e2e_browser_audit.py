"""The console's audit page signs and verifies checkpoints, end to end (Chromium, a virtual
passkey, a real `sealbox up`).

"Sign a checkpoint" verifies the log in the browser, then signs its head with the
browser approver's key: the relay stores it (it verified it in Python), and the
page's "Verify" holds the log against it.  A relay that then serves the log cut
short behind the checkpoint, or with an event rewritten and every later hash
recomputed, is caught in the browser naming the event.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import World, browser, log_in, set_up
from test_e2e_browser_pages import chain_says, open_page, relay_get

from sealbox.protocol import audit as au
from sealbox.protocol import directory as dirs

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(tmp_path: Path, browser: Any) -> Iterator[World]:
    w = World(tmp_path, browser)
    try:
        set_up(w)
        log_in(w)
        yield w
    finally:
        w.close()


def test_a_checkpoint_signed_in_the_browser_holds_the_log(world: World) -> None:
    tab = world.tab
    page = open_page(tab, "audit")
    page.get_by_role("button", name="Sign a checkpoint").click()
    said = tab.wait_status("Signed a checkpoint at event")
    seq = int(re.search(r"event (\d+)", said).group(1))  # type: ignore[union-attr]
    [listed] = relay_get(world, "/audit/checkpoints")["checkpoints"]
    assert listed["seq"] == seq
    # Verified in Python too, from the vault's link 0.
    links = relay_get(world, "/directory")["links"]
    directory = dirs.verify_directory(links, pinned=dirs.vault_fingerprint(links[0]))
    statement = au.verify_checkpoint(listed["statement"], directory)
    assert directory.approvers[statement.approver].kind == "browser"
    events = [au.AuditEvent.from_json(e) for e in relay_get(world, "/audit?limit=1000")["events"]]
    assert au.verify_log(events, checkpoints=[statement]).checkpoints == (statement,)

    said = chain_says(tab)
    assert "1 signed checkpoint(s) hold (the latest at event" in said, said
    tab.screenshot("audit-checkpoint")

    # The relay cuts its log short behind the checkpoint.
    def truncate(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        listed["events"] = [e for e in listed["events"] if e["seq"] < seq]
        route.fulfill(response=response, json=listed)

    # The live stream is held back too: what the page sees is the short log only.
    tab.page.route(re.compile(r"/audit/stream\?"), lambda route: route.abort())
    tab.page.route(re.compile(r"/audit\?"), truncate)
    page = open_page(tab, "audit")
    said = chain_says(tab)
    assert said.startswith(f"Not valid: event {seq} is missing: the log served ends at event "
                           f"{seq - 1}"), said  # fmt: skip
    assert "(the log was truncated)" in said
    assert page.locator("#chain").get_attribute("class") == "error"
    tab.screenshot("audit-truncated")
    tab.page.unroute(re.compile(r"/audit\?"))

    # The relay rewrites event 2 and recomputes every hash after it.
    def rewrite(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        prev = None
        for e in listed["events"]:
            if e["seq"] == 2:
                e["actor"] = "relay"
            if e["seq"] >= 2:
                e["prev_hash"] = prev or e["prev_hash"]
                e["hash"] = au.event_hash(e["prev_hash"], e)
            prev = e["hash"]
        route.fulfill(response=response, json=listed)

    tab.page.route(re.compile(r"/audit\?"), rewrite)
    open_page(tab, "audit")
    said = chain_says(tab)
    assert "differs from the checkpoint signed by approver" in said, said
    # Asked to sign that log, the page verifies first and signs nothing.
    page = tab.page
    page.locator("#chain").evaluate("(e) => { e.textContent = ''; }")
    page.get_by_role("button", name="Sign a checkpoint").click()
    page.wait_for_function("() => document.querySelector('#chain').textContent !== ''")
    assert str(page.locator("#chain").text_content()).startswith("Not valid: event")
    assert len(relay_get(world, "/audit/checkpoints")["checkpoints"]) == 1
    assert "Signed" not in tab.status()
    tab.check_clean()


def test_every_page_of_checkpoints_is_checked_and_every_event_typed(world: World) -> None:
    """The page reads the relay's checkpoint list page after page (here one a page), so the
    newest is held too; an event whose type the relay swapped is not valid."""
    tab = world.tab
    page = open_page(tab, "audit")
    seqs = []
    for _ in range(2):
        page.locator("#status").evaluate("(e) => { e.textContent = ''; }")
        page.get_by_role("button", name="Sign a checkpoint").click()
        said = tab.wait_status("Signed a checkpoint at event")
        seqs.append(int(re.search(r"event (\d+)", said).group(1)))  # type: ignore[union-attr]
    assert seqs[0] < seqs[1]
    assert [c["seq"] for c in relay_get(world, "/audit/checkpoints")["checkpoints"]] == seqs

    asked: list[str] = []

    def one_a_page(route: Any) -> None:
        # The relay's own paging, with pages of one checkpoint.
        url = re.sub(r"([?&])limit=\d+", r"\1limit=1", route.request.url)
        if "limit=" not in url:
            url += ("&" if "?" in url else "?") + "limit=1"
        asked.append(url)
        route.fulfill(response=route.fetch(url=url))

    tab.page.route(re.compile(r"/audit/checkpoints"), one_a_page)
    said = chain_says(tab)
    assert f"2 signed checkpoint(s) hold (the latest at event {seqs[1]}" in said, said
    assert len(asked) == 3, asked  # two full pages, then the empty last one
    tab.screenshot("audit-checkpoint-pages")

    # The relay serves event 1's time as text: refused as Python refuses it, not hashed.
    def at_as_text(route: Any) -> None:
        response = route.fetch()
        listed = response.json()
        for e in listed["events"]:
            if e["seq"] == 1:
                e["at"] = str(e["at"])
        route.fulfill(response=response, json=listed)

    tab.page.route(re.compile(r"/audit/stream\?"), lambda route: route.abort())
    tab.page.route(re.compile(r"/audit\?"), at_as_text)
    page = open_page(tab, "audit")
    said = chain_says(tab)
    assert said.startswith("Not valid: audit event 1.at: expected an integer"), said
    assert page.locator("#chain").get_attribute("class") == "error"
    tab.check_clean()
