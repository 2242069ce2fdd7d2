"""What the release loop's clients and approvers added to the relay, on SQLite and PostgreSQL.

The effective policy of a path, one approval by id, the signed deny in a
request's status, cache-hit reports, a version's ciphertexts for re-sealing,
and pairing requests of new approver devices.  Every refusal changes nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from relay_support import Approver, Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness

from sealbox.protocol import directory as dirs
from sealbox.protocol.access import verify_deny
from sealbox.server.relay import Relay
from sealbox.server.store.tables import audit_events, pairing_requests

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _audit(h: Harness, action: str) -> list[Any]:
    async with h.relay.read() as conn:
        rows = await conn.execute(select(audit_events).where(audit_events.c.action == action))
        return list(rows.mappings())


async def test_effective_policy_for_a_path(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    client = await h.add_client(grants_for=("app/*/*",))
    got = await h.call("GET", "/policy?path=app/prod/db", signer=client)
    assert got.status_code == 200, got.text
    assert got.json() == {
        "path": "app/prod/db", "approvers": sorted([a.id, b.id]), "threshold": 1,
        "expiry_seconds": 300, "max_cache_seconds": 0, "store_needs_approval": True,
        "cidrs": [], "pattern": None, "hours": [], "max_reads": None, "cosigner": None,
        "destroy_at": None, "rotate_after": None, "signed": False,
    }  # fmt: skip
    await h.add_policy("app/prod/*", [b], 1, expiry=60, max_cache=120)
    got = await h.call("GET", "/policy?path=app/prod/db", signer=client)
    assert (got.json()["approvers"], got.json()["expiry_seconds"]) == ([b.id], 60)
    assert got.json()["max_cache_seconds"] == 120

    refused = await h.call("GET", "/policy?path=other/prod/db", signer=client)
    assert refused.status_code == 403
    assert error_of(refused)["error"] == "no_grant"
    bad = await h.call("GET", "/policy?path=app/prod", signer=client)
    assert bad.status_code == 400
    # Approvers see every path's policy.
    assert (await h.call("GET", "/policy?path=other/x/y", signer=a)).status_code == 200


async def test_one_approval_by_id(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    outsider = await h.add_approver("outsider")
    await h.add_policy("app/*/*", [a], 1)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]

    one = await h.call("GET", f"/approvals/{request_id}", signer=a)
    assert one.status_code == 200, one.text
    assert one.json() == await h.approval(a, request_id)
    # Not the outsider's to answer, and unknown ids: as if absent.
    for who, rid in ((outsider, request_id), (a, "x" * 43)):
        missing = await h.call("GET", f"/approvals/{rid}", signer=who)
        assert missing.status_code == 404
        assert error_of(missing)["error"] == "no_such_approval"
    # The stream path is not taken for an id.
    assert (await h.call("GET", "/approvals", signer=a)).status_code == 200
    assert (await h.release_as(a, request_id)).status_code == 200
    assert (await h.call("GET", f"/approvals/{request_id}", signer=a)).status_code == 404
    assert (await h.call("GET", f"/approvals/{request_id}", signer=client)).status_code == 403


async def test_a_denied_request_carries_its_signed_deny(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    pending = await h.call("GET", f"/access-requests/{request_id}", signer=client)
    assert "deny" not in pending.json()
    assert (await h.deny_as(a, request_id)).status_code == 200
    status = (await h.call("GET", f"/access-requests/{request_id}", signer=client)).json()
    assert status["state"] == "denied"
    deny = verify_deny(status["deny"], directory=h.directory(), request_hash=access.hash)
    assert deny.reason == "not during the freeze"


async def test_cache_hits_are_audited_for_delivered_requests_only(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    other = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    hit = {"request": request_id, "hits": 3, "first_at": 1, "last_at": 2}

    # Not delivered yet, someone else's, or malformed: refused, nothing audited.
    early = await h.call("POST", "/cache-hits", signer=client, body={"hits": [hit]})
    assert early.status_code == 404
    assert (await h.release_as(a, request_id)).status_code == 200
    assert (await h.envelope(client, request_id)).status_code == 200
    theirs = await h.call("POST", "/cache-hits", signer=other, body={"hits": [hit]})
    assert theirs.status_code == 404
    for body in ({"hits": []}, {"hits": [{**hit, "hits": 0}]}, {"hits": [hit] * 101}):
        bad = await h.call("POST", "/cache-hits", signer=client, body=body)
        assert bad.status_code == 422
    assert await _audit(h, "access.cache_hit") == []

    done = await h.call("POST", "/cache-hits", signer=client, body={"hits": [hit]})
    assert done.status_code == 200, done.text
    [event] = await _audit(h, "access.cache_hit")
    assert event["client_id"] == client.id
    assert event["detail"] == {"request": request_id, "hits": 3, "first_at": 1, "last_at": 2}
    # Approvers report nothing: only the client that received the release may.
    assert (await h.call("POST", "/cache-hits", signer=a, body={"hits": [hit]})).status_code == 403


async def test_ciphertexts_for_approvers_only(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    got = await h.call("GET", f"/items/{item}/versions/1/ciphertexts", signer=a)
    assert got.status_code == 200, got.text
    assert set(got.json()["ciphertexts"]) == set(PASSWORD)
    missing = await h.call("GET", f"/items/{item}/versions/2/ciphertexts", signer=a)
    assert missing.status_code == 404
    client = await h.add_client()
    forbidden = await h.call("GET", f"/items/{item}/versions/1/ciphertexts", signer=client)
    assert forbidden.status_code == 403


async def test_pairing_a_new_device(h: Harness) -> None:
    a = h.vault.approvers[0]
    new = Approver("phone")
    asked = await h.http.post(f"{h.base}/pairing-requests", json={"approver": new.record.to_json()})
    assert asked.status_code == 201, asked.text
    pairing = asked.json()["id"]
    assert len(pairing) >= 22
    polled = await h.http.get(f"{h.base}/pairing-requests/{pairing}")
    assert polled.json()["state"] == "pending"

    listed = (await h.call("GET", "/pairing-requests", signer=a)).json()["pairing_requests"]
    assert [p["approver"] for p in listed] == [new.record.to_json()]
    assert listed[0]["reported_by_server"]["source_ip"] == "127.0.0.1"
    # Anyone may ask, only approvers may list.
    assert (await h.http.get(f"{h.base}/pairing-requests")).status_code == 401

    # The approver compares the code and adds the record: the pairing is approved.
    assert dirs.pairing_code(new.record) == dirs.pairing_code(new.record)
    link = dirs.append_link(h.directory(), "add", new.record, signer=a.id, key=a.sig,
                            now=h.relay.now())  # fmt: skip
    assert (await h.http.post(f"{h.base}/directory", json={"link": link})).status_code == 201
    h.vault.links.append(link)
    polled = await h.http.get(f"{h.base}/pairing-requests/{pairing}")
    assert polled.json()["state"] == "approved"

    # An approver id already in the directory, or a malformed record: refused.
    again = await h.http.post(f"{h.base}/pairing-requests", json={"approver": new.record.to_json()})
    assert again.status_code == 409
    broken = {**Approver("x").record.to_json(), "kind": "robot"}
    assert (await h.http.post(f"{h.base}/pairing-requests",
                              json={"approver": broken})).status_code == 400  # fmt: skip
    assert (await h.http.get(f"{h.base}/pairing-requests/nope")).status_code == 404


async def test_a_refused_pairing(h: Harness) -> None:
    a = h.vault.approvers[0]
    new = Approver("tablet")
    pairing = (
        await h.http.post(f"{h.base}/pairing-requests", json={"approver": new.record.to_json()})
    ).json()["id"]
    denied = await h.call("POST", f"/pairing-requests/{pairing}/deny", signer=a)
    assert denied.status_code == 200
    assert (await h.http.get(f"{h.base}/pairing-requests/{pairing}")).json()["state"] == "denied"
    twice = await h.call("POST", f"/pairing-requests/{pairing}/deny", signer=a)
    assert twice.status_code == 404
    async with h.relay.read() as conn:
        rows = list(await conn.execute(select(pairing_requests.c.state)))
    assert [r.state for r in rows] == ["denied"]


async def test_the_login_url_leads_to_the_consoles_logins_page(client: httpx.AsyncClient) -> None:
    page = await client.get("/device?user_code=abcd-efgh")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/logins?user_code=ABCD-EFGH"
    # Only a well-formed user code is carried over.
    hostile = await client.get("/device?user_code=<script>alert(1)</script>")
    assert (hostile.status_code, hostile.headers["location"]) == (303, "/console/logins")
