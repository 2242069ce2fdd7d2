"""A request whose client has stopped waiting is never answered, on SQLite and PostgreSQL.

A client's long polls are the relay's evidence that someone still waits for
the answer.  Once a pending request has gone without one for longer than the
waiter grace (``Settings.waiter_grace_seconds``), no approver may release,
store or deny it (410 ``client_gone``), the approvals list and stream stop
offering it, and the sweeper expires it.  The grace is wall-clock time kept in
the database, so a relay restart within it loses nothing.

The relay's own sweeper is slowed to once an hour here (it sweeps once as the
app starts, before any request exists), so each test decides when a sweep runs
and can see an abandoned request before the sweeper has expired it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from relay_support import Approver, Clock, SseStream, Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness

from sealbox.protocol import directory as dirs
from sealbox.server import jobs
from sealbox.server.app import create_app
from sealbox.server.atrest import MasterKey
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.access import RECORD_AFTER
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import engine as db
from sealbox.server.store.tables import audit_events, item_versions, items, requests

pytestmark = pytest.mark.anyio

GONE = (410, "client_gone")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, sweep_seconds=3600)


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


def grace(h: Harness) -> int:
    return h.relay.settings.waiter_grace_seconds


async def _item(h: Harness) -> str:
    item, _ = await h.store_direct(h.vault.approvers[0], "app/prod/db", PASSWORD)
    return item


async def _ask(h: Harness, client: Any, item: str, field: str = "password") -> str:
    access = h.access(client, [(item, "app/prod/db", [field])], ttl=300)
    created = await h.ask(client, access)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _waiter_until(h: Harness, request_id: str) -> int:
    async with h.relay.read() as conn:
        found = await conn.execute(
            select(requests.c.waiter_until).where(requests.c.id == request_id)
        )
        return int(found.scalar_one())


async def _poll(h: Harness, signer: Any, kind: str, request_id: str, wait: int = 0) -> str:
    response = await h.call("GET", f"/{kind}-requests/{request_id}?wait={wait}", signer=signer)
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


async def _expiries(h: Harness, action: str) -> list[Any]:
    async with h.relay.read() as conn:
        rows = await conn.execute(
            select(audit_events.c.detail).where(audit_events.c.action == action)
        )
        return list(rows.scalars())


def _stream(h: Harness, signer: Approver) -> SseStream:
    return SseStream(create_app(h.relay, listen=False),
                     h.build("GET", "/approvals/stream", signer=signer))  # fmt: skip


async def test_a_request_nobody_waits_for_takes_no_answer_and_expires(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _item(h)
    client = await h.add_client()
    request_id = await _ask(h, client, item)
    # The approver has it in hand (signed, not yet sent) when its client goes away.
    release = await h.sign_release(a, request_id)
    async with _stream(h, a) as stream:
        await stream.until(request_id)

        h.relay.clock.now += grace(h) + 1
        # Another client's request, made now: offered where the abandoned one is not.
        other = await h.add_client()
        live = await _ask(h, other, item, "user")
        before = await h.counts()
        refused = await h.post_release(a, request_id, release)
        assert (refused.status_code, error_of(refused)["error"]) == GONE
        assert error_of(refused)["message"] == "the client that asked is no longer waiting"
        denied = await h.deny_as(a, request_id)
        assert (denied.status_code, error_of(denied)["error"]) == GONE
        assert await h.counts() == before  # nothing was recorded, nothing released
        # No longer offered: not listed, not served, not announced to a new stream (which
        # announces what waits oldest first: the abandoned request would come before).
        assert [r["id"] for r in await h.approvals(a)] == [live]
        served = await h.call("GET", f"/approvals/{request_id}", signer=a)
        assert served.status_code == 404
        async with _stream(h, a) as fresh:
            assert request_id not in await fresh.until(live)

        # The client coming back cannot revive it: it reads as expired, and stays so.
        assert await _poll(h, client, "access", request_id) == "expired"
        assert await h.state(request_id) == "pending"  # the sweeper has not run yet
        assert await jobs.sweep_once(h.relay) == 1
        assert await h.state(request_id) == "expired"
        # The stream that announced it says it is gone.
        await stream.until('"state":"expired"')
    assert await _poll(h, client, "access", request_id) == "expired"
    assert await _expiries(h, "access.expired") == [{"request": request_id, "abandoned": True}]
    late = await h.post_release(a, request_id, release)
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")


async def test_a_request_polled_regularly_stays_answerable_past_the_grace(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _item(h)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])], ttl=300)
    request_id = (await h.ask(client, access)).json()["id"]
    asked_at = h.relay.now()
    # A poll within a few seconds of the last sighting writes nothing ...
    assert await _poll(h, client, "access", request_id) == "pending"
    assert await _waiter_until(h, request_id) == asked_at
    # ... and polls a client makes every 25 s keep it answerable well past the grace.
    for _ in range(4):
        h.relay.clock.now += 25
        assert await _poll(h, client, "access", request_id) == "pending"
        assert await _waiter_until(h, request_id) == h.relay.now()
        assert await jobs.sweep_once(h.relay) == 0
    assert h.relay.now() - asked_at > grace(h)
    h.relay.clock.now += grace(h) - 1
    released = await h.release_as(a, request_id)
    assert released.status_code == 200, released.text
    delivered = await h.envelope(client, request_id)
    assert h.open(access, delivered.json()).values == {item: {"password": PASSWORD["password"]}}


async def test_a_long_poll_counts_its_client_as_waiting_until_it_ends(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _item(h)
    client = await h.add_client()
    request_id = await _ask(h, client, item)
    asked_at = h.relay.now()
    release = await h.sign_release(a, request_id)
    poll = asyncio.create_task(_poll(h, client, "access", request_id, wait=40))
    # Held past RECORD_AFTER, the poll records its own end as the client's lease.
    await asyncio.sleep(RECORD_AFTER + 0.5)
    assert await _waiter_until(h, request_id) == asked_at + 40
    # More than the grace after the request was made (and the poll began), but within
    # the grace of the poll's end: its client is still there, and gets the answer.
    h.relay.clock.now += grace(h) + 30
    assert await jobs.sweep_once(h.relay) == 0
    released = await h.post_release(a, request_id, release)
    assert released.status_code == 200, released.text
    assert await asyncio.wait_for(poll, 10) == "released"


async def test_the_release_path_writes_nothing_for_its_waiter(h: Harness) -> None:
    a = h.vault.approvers[0]
    item = await _item(h)
    client = await h.add_client()
    request_id = await _ask(h, client, item)
    asked_at = h.relay.now()
    release = await h.sign_release(a, request_id)
    poll = asyncio.create_task(_poll(h, client, "access", request_id, wait=20))
    await asyncio.sleep(0.2)
    assert (await h.post_release(a, request_id, release)).status_code == 200
    assert await asyncio.wait_for(poll, 10) == "released"
    # Answered before RECORD_AFTER: the creation was sighting enough.
    assert await _waiter_until(h, request_id) == asked_at


async def test_a_store_whose_client_stopped_waiting_is_never_stored(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    before_upload = await h.counts()
    upload = h.store_upload(client, "app/prod/db", PASSWORD)
    created = await h.post_store(client, upload)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    manifest = await h.sign_store_manifest(a, request_id)

    # Its `sealbox store` gave up (and said the store failed); its cancel never came.
    h.relay.clock.now += grace(h) + 1
    before = await h.counts()
    refused = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                           body={"manifest": manifest})  # fmt: skip
    assert (refused.status_code, error_of(refused)["error"]) == GONE
    denied = await h.deny_as(a, request_id, kind="store")
    assert (denied.status_code, error_of(denied)["error"]) == GONE
    assert await h.counts() == before
    assert await h.approvals(a) == []
    assert await _poll(h, client, "store", request_id) == "expired"

    assert await jobs.sweep_once(h.relay) == 1
    assert await h.state(request_id) == "expired"
    late = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                        body={"manifest": manifest})  # fmt: skip
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    async with h.relay.read() as conn:
        assert (await conn.execute(select(items))).all() == []
        assert (await conn.execute(select(item_versions))).all() == []
    after = await h.counts()
    # Its uploaded blobs are gone with it; only the request row and its audit remain.
    assert after["blobs"] == before_upload["blobs"]
    assert await _expiries(h, "store.expired") == [{"request": request_id, "abandoned": True}]


async def test_a_store_whose_client_waits_is_stored_past_the_grace(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    created = await h.post_store(client, h.store_upload(client, "app/prod/db", PASSWORD))
    request_id = created.json()["id"]
    for _ in range(3):
        h.relay.clock.now += 25
        assert await _poll(h, client, "store", request_id) == "pending"
    done = await h.approve_store(a, request_id)
    assert done.status_code == 200, done.text
    assert await _poll(h, client, "store", request_id) == "stored"


# --- a relay restart ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _relay_process(
    settings: Settings, clock: Clock
) -> AsyncIterator[tuple[Relay, httpx.AsyncClient]]:
    """What one relay process holds: its own engine, hub, caches and app (and its sweeper).

    Nothing passes from one to the next but the database (and the test's clock).
    """
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    relay = Relay(settings=settings, engine=engine, master_key=MasterKey(b"k" * 32), clock=clock)
    app = create_app(relay)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://relay.test"
            ) as http,
        ):
            yield relay, http
    finally:
        await engine.dispose()


async def test_a_relay_restart_within_the_grace_keeps_the_request(
    relay: Relay, settings: Settings
) -> None:
    # The `relay` fixture has migrated and emptied the database; it serves nothing here.
    clock = Clock()
    async with _relay_process(settings, clock) as (first, http):
        status = await ensure_vault(first)
        approver = Approver()
        link0 = dirs.genesis_link(status.vault, approver.record, approver.sig, now=first.now())
        response = await http.post(
            f"/v1/vaults/{status.vault}/setup",
            json={"setup_token": status.setup_token, "link": link0},
        )
        assert response.status_code == 201, response.text
        vault = Vault(status.vault, approver, link0)
        h = Harness(http, first, vault)
        item = await _item(h)
        client = await h.add_client()
        kept, left = await _ask(h, client, item, "password"), await _ask(h, client, item, "user")
        releases = {rid: await h.sign_release(approver, rid) for rid in (kept, left)}
        # Both are in a long poll when the relay stops.  It stops as `sealbox up` does:
        # long polls answer with the state as it is, then the server goes.
        polls = [asyncio.create_task(_poll(h, client, "access", rid, wait=20))
                 for rid in (kept, left)]  # fmt: skip
        await asyncio.sleep(0.2)
        first.hub.close()
        assert [await asyncio.wait_for(p, 10) for p in polls] == ["pending", "pending"]

    clock.now += 10  # the relay is down for 10 s
    async with _relay_process(settings, clock) as (second, http):
        h = Harness(http, second, vault)
        # One client reconnects and waits on; the other is gone for good.
        assert await _poll(h, client, "access", kept) == "pending"
        # More than the grace since the polls were cut, less since the reconnection.
        clock.now += grace(h) - 5
        assert await jobs.sweep_once(second) == 1
        done = await h.post_release(approver, kept, releases[kept])
        assert done.status_code == 200, done.text
        refused = await h.post_release(approver, left, releases[left])
        assert (refused.status_code, error_of(refused)["error"]) == (409, "not_pending")
        assert await h.state(left) == "expired"
        assert await _expiries(h, "access.expired") == [{"request": left, "abandoned": True}]
