"""Frozen projects and canaries, through the API on SQLite and PostgreSQL.

An approver freezes and unfreezes a project (audited; clients may not); while
it is frozen every access or store request for its items is refused before
any approver is asked, audited, with nothing created, and what was pending in
it can no longer be released or stored.  The release of a canary still
delivers the value, and in the same transaction writes ``canary.read``
(critical) and freezes the project; a plain item's release does neither.

Only approvers are told which items are canaries: the listing says ``secret``
to anyone else; a client served a canary's manifests writes ``canary.inspected``
(critical), and asking for one writes ``canary.requested`` (critical) with the
request, whatever becomes of it.  A freeze and a release in one project are
ordered, on PostgreSQL too: a release never commits after a freeze it missed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from login_support import audit_rows
from relay_support import Vault, error_of
from sqlalchemy import select
from test_relay_items import CONTEXT, PASSWORD, Harness, Requester, b64_blobs

from sealbox.protocol import ids
from sealbox.protocol.store import build_store, store_as_approver
from sealbox.server.relay import Relay
from sealbox.server.store.tables import project_freezes, requests

pytestmark = pytest.mark.anyio

PATH = "app/prod/db"
CANARY_PATH = "app/prod/aws-root"
OTHER = "ops/prod/db"
BAIT = {"key": b"AKIA-canary-bait-value-5f1e"}


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def store_canary(h: Harness, path: str = CANARY_PATH) -> str:
    approver = h.vault.approvers[0]
    item = ids.new_id(ids.ITEM)
    direct = store_as_approver(
        directory=h.directory(), approver=approver.id, key=approver.sig, item=item, path=path,
        version=1, prev=None, values=BAIT, approvers=[a.id for a in h.vault.approvers],
        threshold=1, now=h.relay.now(), item_type="canary",
    )  # fmt: skip
    response = await h.call("POST", "/items", signer=approver,
                            body={"manifest": direct.manifest, **b64_blobs(direct)})  # fmt: skip
    assert response.status_code == 201, response.text
    return item


async def freeze(
    h: Harness, project: str, body: Any = None, *, signer: Any = None
) -> httpx.Response:
    return await h.call("POST", f"/projects/{project}/freeze",
                        signer=signer or h.vault.approvers[0], body=body)  # fmt: skip


async def unfreeze(h: Harness, project: str, *, signer: Any = None) -> httpx.Response:
    return await h.call("POST", f"/projects/{project}/unfreeze",
                        signer=signer or h.vault.approvers[0])  # fmt: skip


async def frozen(h: Harness) -> list[dict[str, Any]]:
    response = await h.call("GET", "/projects/frozen", signer=h.vault.approvers[0])
    assert response.status_code == 200, response.text
    return list(response.json()["frozen"])


async def events(h: Harness, *actions: str) -> list[dict[str, Any]]:
    return [e for e in await audit_rows(h.relay, h.vault.id) if e["action"] in actions]


async def ask(h: Harness, client: Requester, item: str, path: str, fields: list[str]) -> Any:
    access = h.access(client, [(item, path, fields)])
    return access, await h.ask(client, access)


# --- freeze and unfreeze ----------------------------------------------------------------------


async def test_an_approver_freezes_and_unfreezes_audited(h: Harness) -> None:
    done = await freeze(h, "app", {"reason": "laptop stolen"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["project"] == "app"
    assert body["frozen"] is True
    assert body["changed"] is True
    assert body["cause"] == "approver"
    assert body["reason"] == "laptop stolen"
    assert body["frozen_by"] == h.vault.approvers[0].id
    again = await freeze(h, "app", {"reason": "another"})
    assert again.json()["changed"] is False
    assert again.json()["reason"] == "laptop stolen"  # the first freeze is kept
    assert [f["project"] for f in await frozen(h)] == ["app"]

    [event] = await events(h, "project.frozen")
    assert event["severity"] == "alert"
    assert event["actor"] == h.vault.approvers[0].id
    assert event["detail"] == {"project": "app", "cause": "approver", "reason": "laptop stolen"}

    lifted = await unfreeze(h, "app")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["changed"] is True
    assert lifted.json()["frozen"] is False
    assert lifted.json()["lifted"]["reason"] == "laptop stolen"
    assert (await unfreeze(h, "app")).json()["changed"] is False
    assert await frozen(h) == []
    [event] = await events(h, "project.unfrozen")
    assert event["severity"] == "warning"
    assert event["detail"]["project"] == "app"
    assert event["detail"]["cause"] == "approver"


async def test_only_approvers_freeze_and_bad_names_are_refused(h: Harness) -> None:
    client = await h.add_client()
    for call in (
        h.call("POST", "/projects/app/freeze", signer=client),
        h.call("POST", "/projects/app/unfreeze", signer=client),
        h.call("GET", "/projects/frozen", signer=client),
    ):
        response = await call
        assert response.status_code == 403, response.text
    for bad in ("-app", "a" * 65, "app%2Fprod"):
        response = await freeze(h, bad)
        assert response.status_code in (404, 422), (bad, response.text)
    response = await freeze(h, "app", {"reason": "x" * 501})
    assert response.status_code == 422
    response = await freeze(h, "app", {"reason": 5})
    assert response.status_code == 422
    assert await frozen(h) == []
    async with h.relay.read() as conn:
        assert (await conn.execute(select(project_freezes))).all() == []


# --- refusals while frozen ----------------------------------------------------------------------


async def test_frozen_project_refuses_access_and_store_before_any_approver(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    other, _ = await h.store_direct(h.vault.approvers[0], OTHER, PASSWORD)
    client = await h.add_client(grants_for=("app/*/*", "ops/*/*"))
    assert (await freeze(h, "app")).status_code == 200
    before = await h.counts()

    _, response = await ask(h, client, item, PATH, ["user"])
    assert response.status_code == 403, response.text
    assert error_of(response)["error"] == "project_frozen"
    message = response.json()["message"]
    assert "project app is frozen" in message
    assert "sealbox approver unfreeze app" in response.json()["hint"]
    assert "reason" not in message  # the client is not told why

    # A bundle with one item in a frozen project is refused as a whole.
    bundle = h.access(client, [(item, PATH, ["user"]), (other, OTHER, ["user"])])
    response = await h.ask(client, bundle)
    assert error_of(response)["error"] == "project_frozen"

    upload = h.store_upload(client, "app/prod/new", {"v": b"value"})
    response = await h.post_store(client, upload)
    assert response.status_code == 403, response.text
    assert error_of(response)["error"] == "project_frozen"

    assert await h.counts() == before  # nothing created
    assert await h.approvals(h.vault.approvers[0]) == []
    refused = await events(h, "request.refused")
    assert refused
    assert all(e["detail"]["error"] == "project_frozen" for e in refused)
    assert refused[0]["client_id"] == client.id

    # Another project is not affected.
    _, response = await ask(h, client, other, OTHER, ["user"])
    assert response.status_code == 201, response.text

    # Unfrozen: asking works again.
    assert (await unfreeze(h, "app")).status_code == 200
    access, response = await ask(h, client, item, PATH, ["user"])
    assert response.status_code == 201, response.text
    assert (await h.release_as(h.vault.approvers[0], response.json()["id"])).status_code == 200
    delivered = await h.envelope(client, response.json()["id"])
    assert h.open(access, delivered.json()).values[item]["user"] == b"app"


async def test_pending_requests_in_a_frozen_project_are_not_released(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    _, asked = await ask(h, client, item, PATH, ["user"])
    request_id = asked.json()["id"]
    store = await h.post_store(client, h.store_upload(client, "app/prod/new", {"v": b"value"}))
    assert store.status_code == 201, store.text
    store_id = store.json()["id"]
    token = await h.sign_release(h.vault.approvers[0], request_id)
    manifest = await h.sign_store_manifest(h.vault.approvers[0], store_id)

    assert (await freeze(h, "app")).status_code == 200
    before = await h.counts()
    response = await h.post_release(h.vault.approvers[0], request_id, token)
    assert response.status_code == 403, response.text
    assert error_of(response)["error"] == "project_frozen"
    response = await h.call("POST", f"/store-requests/{store_id}/manifest",
                            signer=h.vault.approvers[0], body={"manifest": manifest})  # fmt: skip
    assert response.status_code == 403, response.text
    assert error_of(response)["error"] == "project_frozen"
    assert await h.counts() == before
    assert await h.state(request_id) == "pending"
    assert await h.state(store_id) == "pending"
    # A denial still goes through.
    assert (await h.deny_as(h.vault.approvers[0], request_id)).status_code == 200
    assert await h.state(request_id) == "denied"

    # Unfrozen, the store waiting all along can be completed.
    assert (await unfreeze(h, "app")).status_code == 200
    response = await h.call("POST", f"/store-requests/{store_id}/manifest",
                            signer=h.vault.approvers[0], body={"manifest": manifest})  # fmt: skip
    assert response.status_code == 200, response.text


async def test_approvers_still_store_in_a_frozen_project(h: Harness) -> None:
    assert (await freeze(h, "app")).status_code == 200
    await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)  # asserts 201


# --- canaries ---------------------------------------------------------------------------------


async def test_a_canary_release_still_delivers_writes_critical_and_freezes(h: Harness) -> None:
    canary = await store_canary(h)
    client = await h.add_client()
    access, asked = await ask(h, client, canary, CANARY_PATH, ["key"])
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    assert await events(h, "canary.read") == []

    response = await h.release_as(h.vault.approvers[0], request_id)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "released"

    [read] = await events(h, "canary.read")
    assert read["severity"] == "critical"
    assert read["client_id"] == client.id
    assert read["actor"] == client.id
    assert read["item_id"] == canary
    assert read["detail"]["path"] == CANARY_PATH
    assert read["detail"]["request"] == request_id
    assert read["detail"]["fields"] == ["key"]
    assert read["detail"]["released_by"] == h.vault.approvers[0].id
    [froze] = await events(h, "project.frozen")
    assert froze["actor"] == "relay"
    assert froze["detail"] == {"project": "app", "cause": "canary", "request": request_id}
    # One transaction: the release, the canary event and the freeze are next to each other.
    rows = await audit_rows(h.relay, h.vault.id)
    actions = [e["action"] for e in rows if e["seq"] > read["seq"] - 1][:3]
    assert actions == ["canary.read", "project.frozen", "access.release"]
    for event in rows:
        assert BAIT["key"].decode() not in str(event)

    [held] = await frozen(h)
    assert held["cause"] == "canary"
    assert held["request"] == request_id
    assert held["frozen_by"] == "relay"

    # The reader still gets the value ...
    delivered = await h.envelope(client, request_id)
    assert delivered.status_code == 200, delivered.text
    opened = h.open(access, delivered.json())
    assert opened.values[canary]["key"] == BAIT["key"]
    assert opened.types[canary] == "canary"
    # ... and its next request in the project is refused.
    _, again = await ask(h, client, canary, CANARY_PATH, ["key"])
    assert error_of(again)["error"] == "project_frozen"


async def test_a_canary_event_comes_from_the_source_address(h: Harness) -> None:
    canary = await store_canary(h)
    client = await h.add_client()
    _, asked = await ask(h, client, canary, CANARY_PATH, ["key"])
    await h.release_as(h.vault.approvers[0], asked.json()["id"])
    [read] = await events(h, "canary.read")
    [created] = await events(h, "access.requested")
    assert read["source_ip"] == created["source_ip"]


async def test_a_plain_release_neither_alerts_nor_freezes(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    _, asked = await ask(h, client, item, PATH, ["user"])
    assert (await h.release_as(h.vault.approvers[0], asked.json()["id"])).status_code == 200
    assert await events(h, "canary.read", "project.frozen") == []
    assert await frozen(h) == []


async def test_a_canary_under_a_threshold_alerts_only_once_released(h: Harness) -> None:
    second = await h.add_approver("phone")
    approver = h.vault.approvers[0]
    item = ids.new_id(ids.ITEM)
    direct = store_as_approver(
        directory=h.directory(), approver=approver.id, key=approver.sig, item=item,
        path=CANARY_PATH, version=1, prev=None, values=BAIT,
        approvers=[approver.id, second.id], threshold=2, now=h.relay.now(), item_type="canary",
    )  # fmt: skip
    response = await h.call("POST", "/items", signer=approver,
                            body={"manifest": direct.manifest, **b64_blobs(direct)})  # fmt: skip
    assert response.status_code == 201, response.text
    client = await h.add_client()
    _, asked = await ask(h, client, item, CANARY_PATH, ["key"])
    request_id = asked.json()["id"]
    first = await h.release_as(approver, request_id)
    assert first.json()["state"] == "pending"
    assert await events(h, "canary.read") == []
    assert await frozen(h) == []
    done = await h.release_as(second, request_id)
    assert done.json()["state"] == "released"
    assert len(await events(h, "canary.read")) == 1


async def test_a_canary_stored_by_a_client_is_a_canary(h: Harness) -> None:
    client = await h.add_client()
    upload = build_store(
        client=client.id, key=client.key, directory=h.directory(), item=ids.new_id(ids.ITEM),
        path=CANARY_PATH, version=1, prev=None, values=BAIT,
        approvers=[a.id for a in h.vault.approvers], threshold=1, purpose="plant a canary",
        context=CONTEXT, now=h.relay.now(), item_type="canary",
    )  # fmt: skip
    response = await h.post_store(client, upload)
    assert response.status_code == 201, response.text
    assert (await h.approve_store(h.vault.approvers[0], response.json()["id"])).status_code == 200
    listed = await h.call("GET", "/items", signer=client)
    [entry] = [i for i in listed.json()["items"] if i["path"] == CANARY_PATH]
    assert entry["type"] == "secret"  # the listing gives no canary away, to anyone
    # The client that stored it verifies the version it stored without tripping anything.
    versions = await h.call("GET", f"/items/{entry['id']}/versions", signer=client)
    assert versions.status_code == 200, versions.text
    assert await events(h, "canary.inspected") == []
    _, asked = await ask(h, client, entry["id"], CANARY_PATH, ["key"])
    assert (await h.release_as(h.vault.approvers[0], asked.json()["id"])).status_code == 200
    assert len(await events(h, "canary.read")) == 1
    assert [f["project"] for f in await frozen(h)] == ["app"]


async def test_a_bundle_with_a_canary_releases_all_and_freezes_its_project(h: Harness) -> None:
    canary = await store_canary(h, "ops/prod/bait")
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client(grants_for=("app/*/*", "ops/*/*"))
    access = h.access(client, [(item, PATH, ["user"]), (canary, "ops/prod/bait", ["key"])])
    asked = await h.ask(client, access)
    request_id = asked.json()["id"]
    assert (await h.release_as(h.vault.approvers[0], request_id)).status_code == 200
    delivered = await h.envelope(client, request_id)
    opened = h.open(access, delivered.json())
    assert opened.values[item]["user"] == b"app"
    assert opened.values[canary]["key"] == BAIT["key"]
    assert [f["project"] for f in await frozen(h)] == ["ops"]
    [read] = await events(h, "canary.read")
    assert read["item_id"] == canary


async def test_a_canary_release_that_cannot_freeze_releases_nothing(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release, the canary event and the freeze are one transaction: all or nothing."""
    from sealbox.server.store import freeze as freeze_store

    canary = await store_canary(h)
    client = await h.add_client()
    _, asked = await ask(h, client, canary, CANARY_PATH, ["key"])
    request_id = asked.json()["id"]
    token = await h.sign_release(h.vault.approvers[0], request_id)

    async def broken(*_: Any, **__: Any) -> bool:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(freeze_store, "insert", broken)
    with pytest.raises(RuntimeError):
        await h.post_release(h.vault.approvers[0], request_id, token)
    assert await h.state(request_id) == "pending"
    assert await events(h, "canary.read", "project.frozen", "access.release") == []
    monkeypatch.undo()
    response = await h.post_release(h.vault.approvers[0], request_id, token)
    assert response.status_code == 200, response.text
    assert len(await events(h, "canary.read")) == 1


async def test_released_before_the_freeze_is_still_delivered(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    access, asked = await ask(h, client, item, PATH, ["user"])
    request_id = asked.json()["id"]
    assert (await h.release_as(h.vault.approvers[0], request_id)).status_code == 200
    assert (await freeze(h, "app")).status_code == 200
    delivered = await h.envelope(client, request_id)
    assert delivered.status_code == 200, delivered.text
    assert h.open(access, delivered.json()).values[item]["user"] == b"app"


async def test_a_denied_canary_alerts_once_asked_but_does_not_freeze(h: Harness) -> None:
    canary = await store_canary(h)
    client = await h.add_client()
    _, asked = await ask(h, client, canary, CANARY_PATH, ["key"])
    assert (await h.deny_as(h.vault.approvers[0], asked.json()["id"])).status_code == 200
    assert await events(h, "canary.read", "project.frozen") == []
    assert len(await events(h, "canary.requested")) == 1
    assert await frozen(h) == []


# --- nobody but approvers is told which items are canaries --------------------------------------


def _manifest_type(token: str) -> str:
    import json

    from sealbox.crypto.encoding import b64u_decode

    return str(json.loads(b64u_decode(token.split(".")[1]))["type"])


async def test_the_listing_calls_a_canary_a_secret_except_to_approvers(h: Harness) -> None:
    canary = await store_canary(h)
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    for query in ("", f"?path={CANARY_PATH}"):
        listed = await h.call("GET", f"/items{query}", signer=client)
        assert listed.status_code == 200, listed.text
        types = {i["id"]: i["type"] for i in listed.json()["items"]}
        assert types[canary] == "secret"
        assert query or types[item] == "secret"
        seen = await h.call("GET", f"/items{query}", signer=h.vault.approvers[0])
        assert {i["id"]: i["type"] for i in seen.json()["items"]}[canary] == "canary"
    # Listing is not inspecting: nothing was served that says what the item is.
    assert await events(h, "canary.inspected") == []


async def test_a_client_fetching_a_canarys_manifests_is_alarmed(h: Harness) -> None:
    canary = await store_canary(h)
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    plain = await h.call("GET", f"/items/{item}/versions", signer=client)
    assert plain.status_code == 200, plain.text
    assert await events(h, "canary.inspected") == []

    served = await h.call("GET", f"/items/{canary}/versions", signer=client)
    assert served.status_code == 200, served.text
    assert served.json()["type"] == "secret"  # the relay's word, as in the listing ...
    [version] = served.json()["versions"]
    assert _manifest_type(version["manifest"]) == "canary"  # ... the signed manifest is not
    [event] = await events(h, "canary.inspected")
    assert event["severity"] == "critical"
    assert event["actor"] == client.id
    assert event["client_id"] == client.id
    assert event["item_id"] == canary
    assert event["detail"]["path"] == CANARY_PATH
    assert event["detail"]["project"] == "app"
    assert event["detail"]["endpoint"] == f"/v1/vaults/{h.vault.id}/items/{canary}/versions"
    assert event["detail"]["frozen"] is False
    await ask(h, client, item, PATH, ["user"])
    [created] = await events(h, "access.requested")
    assert event["source_ip"] == created["source_ip"]
    # Alarmed, not frozen: the read that usually follows still reaches an approver.
    assert await frozen(h) == []
    # Fetched again at once: held back, and counted in the next event that is written.
    await h.call("GET", f"/items/{canary}/versions", signer=client)
    assert len(await events(h, "canary.inspected")) == 1
    # An approver looks at canaries freely.
    seen = await h.call("GET", f"/items/{canary}/versions", signer=h.vault.approvers[0])
    assert seen.json()["type"] == "canary"
    assert len(await events(h, "canary.inspected")) == 1


async def test_asking_for_a_canary_alarms_even_if_cancelled(h: Harness) -> None:
    canary = await store_canary(h)
    client = await h.add_client()
    _, asked = await ask(h, client, canary, CANARY_PATH, ["key"])
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    cancelled = await h.call("POST", f"/access-requests/{request_id}/cancel", signer=client)
    assert cancelled.status_code == 200, cancelled.text
    [event] = await events(h, "canary.requested")
    assert event["severity"] == "critical"
    assert event["client_id"] == client.id
    assert event["item_id"] == canary
    assert event["detail"] == {"request": request_id, "path": CANARY_PATH, "version": 1,
                               "fields": ["key"], "project": "app"}  # fmt: skip
    # Written with the request, in its transaction: right after access.requested.
    rows = await audit_rows(h.relay, h.vault.id)
    actions = [e["action"] for e in rows if e["seq"] >= event["seq"] - 1][:2]
    assert actions == ["access.requested", "canary.requested"]
    assert await events(h, "canary.read") == []
    assert await frozen(h) == []


async def test_a_request_whose_canary_alarm_fails_is_not_created(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealbox.server.services import freeze as freeze_service

    canary = await store_canary(h)
    client = await h.add_client()

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(freeze_service, "note_requested", broken)
    access = h.access(client, [(canary, CANARY_PATH, ["key"])])
    with pytest.raises(RuntimeError):
        await h.ask(client, access)
    assert await events(h, "access.requested", "canary.requested") == []
    async with h.relay.read() as conn:
        assert (await conn.execute(select(requests))).all() == []


async def test_a_plain_request_writes_no_canary_event(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    _, asked = await ask(h, client, item, PATH, ["user"])
    assert asked.status_code == 201, asked.text
    assert await events(h, "canary.requested", "canary.inspected") == []


# --- a freeze's reason ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["laptop\x00stolen", "\x1b[2Jwiped", "one\nline", "\u202eevil"])
async def test_a_reason_with_control_characters_is_refused(h: Harness, reason: str) -> None:
    response = await freeze(h, "app", {"reason": reason})
    assert response.status_code == 400, response.text
    assert error_of(response)["error"] == "invalid_reason"
    assert await frozen(h) == []
    assert await events(h, "project.frozen") == []


# --- a freeze and a release in one project are ordered ---------------------------------------


@pytest.mark.parametrize("racer", ["approver freeze", "canary release"])
async def test_a_release_never_commits_after_a_freeze_it_missed(
    h: Harness, monkeypatch: pytest.MonkeyPatch, racer: str
) -> None:
    """The release checks the freeze, then waits; meanwhile the project is frozen (by an
    approver, or by a canary's release).  Whichever commits first, the audit log must never
    show the release after the freeze: the freeze waits for it, or the release is refused."""
    from sealbox.server.store import freeze as freeze_store

    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    canary = await store_canary(h)
    client = await h.add_client()
    _, plain = await ask(h, client, item, PATH, ["user"])
    plain_token = await h.sign_release(h.vault.approvers[0], plain.json()["id"])
    _, bait = await ask(h, client, canary, CANARY_PATH, ["key"])
    bait_token = await h.sign_release(h.vault.approvers[0], bait.json()["id"])

    real = freeze_store.frozen
    checked, go = asyncio.Event(), asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        found = await real(*args, **kwargs)
        if not checked.is_set():
            checked.set()  # the first check: the plain release's, in its transaction
            await asyncio.wait_for(go.wait(), 30)
        return found

    monkeypatch.setattr(freeze_store, "frozen", slow)
    release = asyncio.ensure_future(
        h.post_release(h.vault.approvers[0], plain.json()["id"], plain_token)
    )
    await asyncio.wait_for(checked.wait(), 30)
    if racer == "approver freeze":
        other = asyncio.ensure_future(freeze(h, "app"))
    else:
        other = asyncio.ensure_future(
            h.post_release(h.vault.approvers[0], bait.json()["id"], bait_token)
        )
    await asyncio.sleep(1.0)  # long enough for the racer to commit, were it not held
    go.set()
    released, raced = await asyncio.gather(release, other)
    assert raced.status_code == 200, raced.text

    rows = await audit_rows(h.relay, h.vault.id)
    [froze] = [e for e in rows if e["action"] == "project.frozen"]
    releases = [e for e in rows if e["action"] == "access.release"
                and e["detail"]["request"] == plain.json()["id"]]  # fmt: skip
    if released.status_code == 200:
        [done] = releases
        assert done["seq"] < froze["seq"], "released after the project was frozen"
    else:
        assert error_of(released)["error"] == "project_frozen"
        assert releases == []


async def test_a_release_and_a_store_completion_of_one_client_do_not_deadlock(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both clear the client's denials and take the project's lock: in the same order.

    The release is held right after it cleared the denials; meanwhile the same client's
    store in the project is completed.  Were the release to take the project's lock only
    after the denials' row, the two would wait for each other (PostgreSQL aborts one).
    """
    from sealbox.server.services import fatigue

    item, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    client = await h.add_client()
    _, denied = await ask(h, client, item, PATH, ["user"])
    assert (await h.deny_as(h.vault.approvers[0], denied.json()["id"])).status_code == 200
    _, asked = await ask(h, client, item, PATH, ["user"])
    token = await h.sign_release(h.vault.approvers[0], asked.json()["id"])
    upload = build_store(
        client=client.id, key=client.key, directory=h.directory(), item=ids.new_id(ids.ITEM),
        path="app/prod/new", version=1, prev=None, values=BAIT,
        approvers=[a.id for a in h.vault.approvers], threshold=1, purpose="a new key",
        context=CONTEXT, now=h.relay.now(),
    )  # fmt: skip
    store_id = (await h.post_store(client, upload)).json()["id"]
    manifest = await h.sign_store_manifest(h.vault.approvers[0], store_id)

    real = fatigue.record_approval
    cleared, go = asyncio.Event(), asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)
        if not cleared.is_set():
            cleared.set()  # the release's, holding the denials' row
            await asyncio.wait_for(go.wait(), 30)

    monkeypatch.setattr(fatigue, "record_approval", slow)
    release = asyncio.ensure_future(h.post_release(h.vault.approvers[0], asked.json()["id"], token))
    await asyncio.wait_for(cleared.wait(), 30)
    store = asyncio.ensure_future(
        h.call("POST", f"/store-requests/{store_id}/manifest", signer=h.vault.approvers[0],
               body={"manifest": manifest})
    )  # fmt: skip
    await asyncio.sleep(1.0)
    go.set()
    released, stored = await asyncio.gather(release, store)
    assert released.status_code == 200, released.text
    assert stored.status_code == 200, stored.text
