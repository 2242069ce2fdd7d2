"""Races the state table must win, on SQLite and PostgreSQL.

Every answer here is signed before the race starts, so what runs concurrently
is only the relay's part: the compare-and-set transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import httpx
import pytest
from relay_support import Vault, error_of
from sqlalchemy import func, select
from test_relay_items import PASSWORD, Harness, b64_blobs

from sealbox.protocol.store import manifest_hash, store_as_approver
from sealbox.server import jobs
from sealbox.server.relay import Relay
from sealbox.server.store.tables import answers, audit_events, item_versions

pytestmark = pytest.mark.anyio

ROUNDS = 4


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _release_count(h: Harness, request_id: str) -> int:
    async with h.relay.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(answers)
                    .where(answers.c.request_id == request_id, answers.c.kind == "release")
                )
            ).scalar_one()
        )


async def test_any_of_n_first_valid_release_wins(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    for _ in range(ROUNDS):
        access = h.access(client, [(item, "app/prod/db", ["password"])])
        request_id = (await h.ask(client, access)).json()["id"]
        tokens = [await h.sign_release(x, request_id) for x in (a, b)]
        responses = await asyncio.gather(
            h.post_release(a, request_id, tokens[0]), h.post_release(b, request_id, tokens[1])
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        loser = next(r for r in responses if r.status_code == 409)
        assert error_of(loser)["error"] == "not_pending"
        assert await _release_count(h, request_id) == 1
        delivered = await h.envelope(client, request_id)
        opened = h.open(access, delivered.json())
        assert opened.values == {item: {"password": PASSWORD["password"]}}


async def test_m_of_n_counts_concurrent_releases(h: Harness) -> None:
    a = h.vault.approvers[0]
    b, c = await h.add_approver("b"), await h.add_approver("c")
    await h.add_policy("app/prod/*", [a, b, c], 2)
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD, threshold=2)
    client = await h.add_client()
    for _ in range(ROUNDS):
        access = h.access(client, [(item, "app/prod/db", ["password", "user"])])
        request_id = (await h.ask(client, access)).json()["id"]
        signed = [(x, await h.sign_release(x, request_id)) for x in (a, b, c)]
        responses = await asyncio.gather(
            *(h.post_release(x, request_id, token) for x, token in signed)
        )
        outcome = Counter(
            r.json()["state"] if r.status_code == 200 else error_of(r)["error"] for r in responses
        )
        # Two counted (the second of them releases), the third comes too late.
        assert outcome == {"pending": 1, "released": 1, "not_pending": 1}
        assert await _release_count(h, request_id) == 2
        delivered = await h.envelope(client, request_id)
        assert h.open(access, delivered.json()).values == {item: PASSWORD}


async def test_two_fetches_deliver_once(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    for _ in range(ROUNDS):
        access = h.access(client, [(item, "app/prod/db", ["user"])])
        request_id = (await h.ask(client, access)).json()["id"]
        assert (await h.release_as(a, request_id)).status_code == 200
        responses = await asyncio.gather(
            h.envelope(client, request_id), h.envelope(client, request_id)
        )
        assert sorted(r.status_code for r in responses) == [200, 410]
        winner = next(r for r in responses if r.status_code == 200)
        assert len(winner.json()["releases"]) == 1
        assert h.open(access, winner.json()).values == {item: {"user": b"app"}}
        assert await _release_count(h, request_id) == 0


async def test_release_and_cancel_race(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    for _ in range(ROUNDS):
        access = h.access(client, [(item, "app/prod/db", ["user"])])
        request_id = (await h.ask(client, access)).json()["id"]
        token = await h.sign_release(a, request_id)
        released, cancelled = await asyncio.gather(
            h.post_release(a, request_id, token),
            h.call("POST", f"/access-requests/{request_id}/cancel", signer=client),
        )
        assert sorted([released.status_code, cancelled.status_code]) == [200, 409]
        final = await h.state(request_id)
        assert final == ("released" if released.status_code == 200 else "cancelled")
        assert await _release_count(h, request_id) == (1 if final == "released" else 0)


async def test_pending_cap_holds_under_concurrent_asks(h: Harness) -> None:
    h.relay.settings = dataclasses.replace(h.relay.settings, pending_cap=3)
    item, _ = await h.store_direct(h.vault.approvers[0], "app/prod/db", PASSWORD)
    client = await h.add_client()
    statements = [h.access(client, [(item, "app/prod/db", ["user"])]) for _ in range(8)]
    responses = await asyncio.gather(*(h.ask(client, s) for s in statements))
    assert Counter(r.status_code for r in responses) == {201: 3, 429: 5}


async def test_one_store_per_version(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item, v1 = await h.store_direct(a, "app/prod/db", PASSWORD)
    stores = [
        store_as_approver(
            directory=h.directory(), approver=x.id, key=x.sig, item=item, path="app/prod/db",
            version=2, prev=manifest_hash(v1), values={"password": x.id.encode()},
            approvers=[a.id, b.id], threshold=1, now=h.relay.now(),
        )
        for x in (a, b)
    ]  # fmt: skip
    responses = await asyncio.gather(
        *(
            h.call("POST", "/items", signer=x, body={"manifest": s.manifest, **b64_blobs(s)})
            for x, s in zip((a, b), stores, strict=True)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409]
    async with h.relay.read() as conn:
        versions = (
            (
                await conn.execute(
                    select(item_versions.c.version).where(item_versions.c.item_id == item)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(versions) == [1, 2]


async def test_two_approvers_complete_one_store(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    client = await h.add_client()
    upload = h.store_upload(client, "app/prod/db", PASSWORD)
    request_id = (await h.post_store(client, upload)).json()["id"]
    manifests = [await h.sign_store_manifest(x, request_id) for x in (a, b)]
    responses = await asyncio.gather(
        *(
            h.call("POST", f"/store-requests/{request_id}/manifest", signer=x,
                   body={"manifest": m})
            for x, m in zip((a, b), manifests, strict=True)
        )
    )  # fmt: skip
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert await h.state(request_id) == "stored"


async def test_concurrent_sweeps_expire_each_request_once(h: Harness) -> None:
    item, _ = await h.store_direct(h.vault.approvers[0], "app/prod/db", PASSWORD)
    client = await h.add_client()
    expiring = []
    for _ in range(5):
        access = h.access(client, [(item, "app/prod/db", ["user"])], ttl=10)
        expiring.append((await h.ask(client, access)).json()["id"])
    h.relay.clock.now += 20
    expired = await asyncio.gather(*(jobs.sweep_once(h.relay) for _ in range(3)))
    # Each expired once in all: the audit log says so whichever sweeper (these, or
    # the app's own) took which request.
    assert sum(expired) <= 5
    assert await jobs.sweep_once(h.relay) == 0
    assert {await h.state(r) for r in expiring} == {"expired"}
    async with h.relay.read() as conn:
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert actions.count("access.expired") == 5
