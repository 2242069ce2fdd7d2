"""Access requests through the API with the real protocol, on SQLite and PostgreSQL.

Ask, approve, deliver once; deny, cancel, expire; long-poll and SSE wake-ups;
and every refusal leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pytest
from relay_support import SseStream, Vault, error_of
from sqlalchemy import delete, select
from test_relay_items import PASSWORD, Harness

from sealbox.protocol import ids
from sealbox.protocol.statements import CacheRequest
from sealbox.protocol.store import manifest_hash
from sealbox.server import jobs
from sealbox.server.app import create_app
from sealbox.server.relay import Relay
from sealbox.server.store.tables import answers, audit_events, grants, replay

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _stored(h: Harness, path: str = "app/prod/db", **kw: Any) -> str:
    item, _ = await h.store_direct(h.vault.approvers[0], path, PASSWORD, **kw)
    return item


async def test_access_any_of_n_end_to_end(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item = await _stored(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    created = await h.ask(client, access)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert request_id == access.hash.removeprefix("sha256:")
    assert created.json() == {"id": request_id, "state": "pending",
                              "expires_at": access.statement.exp, "threshold": 1}  # fmt: skip

    # Both approvers are asked; each sees only its own wraps, of the asked field only.
    for approver in (a, b):
        entry = await h.approval(approver, request_id)
        assert entry["statement"] == access.token
        assert entry["certificate"] == client.certificate
        assert entry["reported_by_server"]["source_ip"] == "127.0.0.1"
        assert set(entry["items"][item]["wraps"]) == {"password"}
        assert entry["answered"] is False

    released = await h.release_as(b, request_id)
    assert released.status_code == 200, released.text
    assert released.json() == {"id": request_id, "state": "released", "approvals": 1,
                               "threshold": 1}  # fmt: skip
    assert await h.approvals(a) == []
    late = await h.release_as_unchecked(a, request_id, access)
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")

    status = await h.call("GET", f"/access-requests/{request_id}", signer=client)
    assert status.json()["state"] == "released"
    delivered = await h.envelope(client, request_id)
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert set(body["ciphertexts"][item]) == {"password"}
    opened = h.open(access, body)
    assert opened.values == {item: {"password": PASSWORD["password"]}}
    assert opened.paths == {item: "app/prod/db"}

    # Delivered once: the envelope is gone.
    again = await h.envelope(client, request_id)
    assert (again.status_code, error_of(again)["error"]) == (410, "already_delivered")
    assert await h.state(request_id) == "delivered"
    async with h.relay.read() as conn:
        assert (await conn.execute(select(answers))).all() == []
        dumped = str((await conn.execute(select(audit_events))).all())
    # No statement, blob or value in the audit log.
    for secret in (access.token, body["releases"][0], body["ciphertexts"][item]["password"]):
        assert secret not in dumped
    assert "correct horse" not in dumped


async def test_two_of_three_quorum(h: Harness) -> None:
    a = h.vault.approvers[0]
    b, c = await h.add_approver("b"), await h.add_approver("c")
    await h.add_policy("app/prod/*", [a, b, c], 2)
    item = await _stored(h, threshold=2)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password", "user"])])
    request_id = (await h.ask(client, access)).json()["id"]

    first = await h.release_as(c, request_id)
    assert first.json() == {"id": request_id, "state": "pending", "approvals": 1, "threshold": 2}
    assert (await h.approval(c, request_id))["answered"] is True
    twice = await h.release_as(c, request_id)
    assert (twice.status_code, error_of(twice)["error"]) == (409, "already_answered")
    second = await h.release_as(a, request_id)
    assert second.json()["state"] == "released"
    third = await h.release_as_unchecked(b, request_id, access)
    assert third.status_code == 409

    delivered = await h.envelope(client, request_id)
    assert len(delivered.json()["releases"]) == 2
    assert h.open(access, delivered.json()).values == {item: PASSWORD}


async def test_threshold_follows_the_key_set_when_it_is_higher(h: Harness) -> None:
    await h.add_approver()
    item = await _stored(h, threshold=2)  # the default policy says 1; the key set needs 2
    client = await h.add_client()
    created = await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))
    assert created.json()["threshold"] == 2


async def test_deny(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    await h.add_policy("app/prod/*", [a, b], 2)
    item = await _stored(h, threshold=2)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    assert (await h.release_as(a, request_id)).status_code == 200
    # Any approver may deny, also one that released before; the partial quorum is dropped.
    denied = await h.deny_as(a, request_id)
    assert denied.json() == {"id": request_id, "state": "denied"}
    async with h.relay.read() as conn:
        kinds = (await conn.execute(select(answers.c.kind))).scalars().all()
    assert kinds == ["deny"]
    late = await h.release_as_unchecked(b, request_id, access)
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    status = await h.call("GET", f"/access-requests/{request_id}", signer=client)
    assert status.json()["state"] == "denied"
    envelope = await h.envelope(client, request_id)
    assert (envelope.status_code, error_of(envelope)["error"]) == (409, "not_released")


async def test_cancel(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client, other = await h.add_client(), await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]

    foreign = await h.call("POST", f"/access-requests/{request_id}/cancel", signer=other)
    assert (foreign.status_code, error_of(foreign)["error"]) == (404, "no_such_request")
    peek = await h.call("GET", f"/access-requests/{request_id}", signer=other)
    assert peek.status_code == 404

    cancelled = await h.call("POST", f"/access-requests/{request_id}/cancel", signer=client)
    assert cancelled.json() == {"id": request_id, "state": "cancelled"}
    again = await h.call("POST", f"/access-requests/{request_id}/cancel", signer=client)
    assert (again.status_code, error_of(again)["error"]) == (409, "not_pending")
    assert await h.approvals(a) == []
    late = await h.release_as_unchecked(a, request_id, access)
    assert late.status_code == 409


async def test_expiry_by_the_sweeper(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])], ttl=10)
    request_id = (await h.ask(client, access)).json()["id"]
    token = await h.sign_release(a, request_id)
    assert await jobs.sweep_once(h.relay) == 0

    h.relay.clock.now += 20
    # Past its expiry a request takes no answer, even before the sweeper has run.
    late = await h.post_release(a, request_id, token)
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    assert await h.approvals(a) == []

    # At most 1: the app's own sweeper (same relay, same clock) may have got there first.
    assert await jobs.sweep_once(h.relay) <= 1
    assert await jobs.sweep_once(h.relay) == 0
    assert await h.state(request_id) == "expired"
    status = await h.call("GET", f"/access-requests/{request_id}", signer=client)
    assert status.json()["state"] == "expired"
    async with h.relay.read() as conn:
        jtis = (await conn.execute(select(replay).where(replay.c.scope == "jti"))).all()
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert jtis == []  # spent: the statement's own window refuses it now
    assert actions.count("access.expired") == 1


async def test_long_poll_wakes_on_release(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    token = await h.sign_release(a, request_id)

    started = time.monotonic()
    waiting = asyncio.create_task(
        h.call("GET", f"/access-requests/{request_id}?wait=30", signer=client)
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert (await h.post_release(a, request_id, token)).status_code == 200
    response = await asyncio.wait_for(waiting, timeout=10)
    assert response.json()["state"] == "released"
    assert time.monotonic() - started < 10


async def test_long_poll_times_out_pending(h: Harness) -> None:
    item = await _stored(h)
    client = await h.add_client()
    request_id = (
        await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    ).json()["id"]
    started = time.monotonic()
    response = await h.call("GET", f"/access-requests/{request_id}?wait=0.5", signer=client)
    assert response.json()["state"] == "pending"
    assert 0.4 < time.monotonic() - started < 5
    negative = await h.call("GET", f"/access-requests/{request_id}?wait=-1", signer=client)
    assert negative.status_code == 422


async def test_long_polls_and_approval_streams_end_when_the_relay_stops(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    async with _stream(h, "/approvals/stream", a) as stream:
        await stream.until(request_id)
        waiting = asyncio.create_task(
            h.call("GET", f"/access-requests/{request_id}?wait=30", signer=client)
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert stream.task is not None
        assert not stream.task.done()
        # What the server does first when asked to stop: without it, both would
        # hold the relay open (the poll for 30 s, the stream until the approver leaves).
        h.relay.hub.close()
        response = await asyncio.wait_for(waiting, timeout=2)
        assert (response.status_code, response.json()["state"]) == (200, "pending")
        await asyncio.wait_for(stream.task, timeout=2)  # the response has ended
        # A poll that comes in while the relay stops answers at once too.
        started = time.monotonic()
        late = await h.call("GET", f"/access-requests/{request_id}?wait=30", signer=client)
        assert late.json()["state"] == "pending"
        assert time.monotonic() - started < 2


def _stream(h: Harness, path: str, signer: Any) -> SseStream:
    return SseStream(create_app(h.relay, listen=False), h.build("GET", path, signer=signer))


async def test_sse_stream_announces_new_and_changed_requests(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client = await h.add_client()
    waiting = (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))).json()
    async with _stream(h, "/approvals/stream", a) as stream:
        # What already waits is announced on connecting.
        await stream.until(waiting["id"])
        assert stream.status == 200
        access = h.access(client, [(item, "app/prod/db", ["password"])])
        created = (await h.ask(client, access)).json()
        text = await stream.until(created["id"])
        assert "event: request\ndata: {" in text
        assert '"paths":["app/prod/db"]' in text
        assert '"state":"pending"' in text
        assert (await h.release_as(a, created["id"])).status_code == 200
        await stream.until('"state":"released"')


async def test_sse_stream_needs_an_approver(h: Harness) -> None:
    client = await h.add_client()
    response = await h.call("GET", "/approvals/stream", signer=client)
    assert (response.status_code, error_of(response)["error"]) == (403, "approver_required")


async def test_refusals_change_nothing(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    other_item = await _stored(h, "ops/prod/db")
    client = await h.add_client(grants_for=["app/*/*"])
    stranger = await h.add_client()
    spent = h.access(client, [(item, "app/prod/db", ["password"])])
    assert (await h.ask(client, spent)).status_code == 201
    before = await h.counts()

    async def ask_with(statement: str, signer: Any = client) -> httpx.Response:
        return await h.call("POST", "/access-requests", signer=signer,
                            body={"statement": statement})  # fmt: skip

    cases = [
        # The same statement again.
        (await h.ask(client, spent), 409, "replay"),
        # No grant for the path.
        (await h.ask(client, h.access(client, [(other_item, "ops/prod/db", ["password"])])),
         403, "no_grant"),
        # An item that does not exist; one asked for at a path it is not stored at.
        (await h.ask(client, h.access(client, [(ids.new_id(ids.ITEM), "app/prod/db",
                                                ["password"])])), 404, "no_such_item"),
        (await h.ask(client, h.access(client, [(item, "app/prod/elsewhere", ["password"])])),
         400, "binding_mismatch"),
        # A field the item does not have; a version it does not have.
        (await h.ask(client, h.access(client, [(item, "app/prod/db", ["pin"])])), 400,
         "no_such_field"),
        (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])], version=9)),
         404, "no_such_version"),
        # Longer than the policy lets a request wait.
        (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])], ttl=301)),
         400, "expiry_beyond_policy"),
        # Signed by another client than the caller; posted by an approver.
        (await ask_with(h.access(stranger, [(item, "app/prod/db", ["user"])]).token), 403,
         "not_authorized"),
        (await ask_with(h.access(client, [(item, "app/prod/db", ["user"])]).token, signer=a),
         403, "client_required"),
        # Not an access statement: junk, and a statement of another type.
        (await ask_with("x.y.z"), 400, "malformed"),
        (await ask_with(h.store_upload(client, "app/prod/db", PASSWORD).statement), 400,
         "signature_invalid"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error), response.text

    # An expired statement.
    late = h.access(client, [(item, "app/prod/db", ["user"])], ttl=10)
    h.relay.clock.now += 20
    expired = await h.ask(client, late)
    assert (expired.status_code, error_of(expired)["error"]) == (400, "expired")
    assert await h.counts() == before


async def test_release_refusals_change_nothing(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item = await _stored(h)
    await h.add_policy("app/prod/*", [a], 1)
    client = await h.add_client()
    first = (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))).json()
    second = (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))).json()
    for_first = await h.sign_release(a, first["id"])
    assert await h.approvals(b) == []  # the policy names a alone
    before = await h.counts()

    cases = [
        # A release of another request.
        (await h.post_release(a, second["id"], for_first), 400, "binding_mismatch"),
        # Uploaded by another approver than its signer.
        (await h.post_release(b, first["id"], for_first), 403, "not_authorized"),
        # Not a release.
        (await h.post_release(a, first["id"], "x.y.z"), 400, "malformed"),
        # No such request.
        (await h.post_release(a, "A" * 43, for_first), 404, "no_such_request"),
        # A client may not release.
        (await h.call("POST", f"/access-requests/{first['id']}/release", signer=client,
                      body={"release": for_first}), 403, "approver_required"),
        # The envelope is not there before the release.
        (await h.envelope(client, first["id"]), 409, "not_released"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error), response.text
    assert await h.counts() == before


async def test_release_by_an_approver_the_policy_does_not_name(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item = await _stored(h)
    await h.add_policy("app/prod/*", [a], 1)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["user"])])
    request_id = (await h.ask(client, access)).json()["id"]
    refused = await h.release_as_unchecked(b, request_id, access)
    assert (refused.status_code, error_of(refused)["error"]) == (403, "not_authorized")


async def test_cache_window_is_bounded_by_the_policy(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    await h.add_policy("app/prod/*", [a], 1, max_cache=60)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["user"])],
                      cache=CacheRequest(seconds=3600, scope="user"))  # fmt: skip
    request_id = (await h.ask(client, access)).json()["id"]
    entry = await h.approval(a, request_id)
    assert entry["cache_until_max"] == access.statement.at + 60
    too_long = await h.sign_release(a, request_id, cache_until=access.statement.at + 61)
    refused = await h.post_release(a, request_id, too_long)
    assert (refused.status_code, error_of(refused)["error"]) == (400, "cache_beyond_policy")
    ok = await h.sign_release(a, request_id, cache_until=access.statement.at + 60)
    assert (await h.post_release(a, request_id, ok)).status_code == 200
    opened = h.open(access, (await h.envelope(client, request_id)).json())
    assert opened.cache_until == access.statement.at + 60


async def test_pending_cap(h: Harness) -> None:
    h.relay.settings = dataclasses.replace(h.relay.settings, pending_cap=2)
    item = await _stored(h)
    client = await h.add_client()
    for _ in range(2):
        asked = await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))
        assert asked.status_code == 201
    before = await h.counts()
    third = await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))
    assert (third.status_code, error_of(third)["error"]) == (429, "too_many_pending")
    assert await h.counts() == before
    # Another client has its own cap.
    other = await h.add_client()
    assert (
        await h.ask(other, h.access(other, [(item, "app/prod/db", ["user"])]))
    ).status_code == 201


async def test_source_address_is_held_to_the_certificate(h: Harness) -> None:
    item = await _stored(h)
    inside = await h.add_client(cidrs=["127.0.0.0/8"])
    outside = await h.add_client(cidrs=["10.0.0.0/8"])
    ok = await h.ask(inside, h.access(inside, [(item, "app/prod/db", ["user"])]))
    assert ok.status_code == 201
    before = await h.counts()
    refused = await h.ask(outside, h.access(outside, [(item, "app/prod/db", ["user"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (403, "source_not_allowed")
    assert await h.counts() == before


async def test_versions_are_pinned_when_asked(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, v1 = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    # A new version stored while the request waits does not change what it releases.
    await h.store_direct(a, "app/prod/db", {"password": b"v2"}, item=item, version=2,
                         prev=manifest_hash(v1))  # fmt: skip
    assert (await h.approval(a, request_id))["items"][item]["manifest"] == v1
    assert (await h.release_as(a, request_id)).status_code == 200
    opened = h.open(access, (await h.envelope(client, request_id)).json())
    assert opened.versions == {item: 1}
    assert opened.values[item]["password"] == PASSWORD["password"]


async def test_store_request_is_listed_on_the_stream_too(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    async with _stream(h, "/approvals/stream", a) as stream:
        await stream.until(": sealbox approvals")
        upload = h.store_upload(client, "app/prod/db", PASSWORD)
        created = (await h.post_store(client, upload)).json()
        text = await stream.until(created["id"])
        assert '"kind":"store"' in text


async def test_a_removed_grant_stops_delivery_of_a_released_request(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _stored(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    assert (await h.release_as(a, request_id)).status_code == 200
    async with h.relay.tx() as tx:
        await tx.conn.execute(delete(grants).where(grants.c.client_id == client.id))
    refused = await h.envelope(client, request_id)
    assert (refused.status_code, error_of(refused)["error"]) == (403, "no_grant")
    assert await h.state(request_id) == "released"  # nothing was handed out
