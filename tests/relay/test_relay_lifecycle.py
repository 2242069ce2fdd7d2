"""What the relay now refuses or cleans up on its own, on SQLite and PostgreSQL.

A store held to the item's policy (who may complete it, the least threshold of
a direct store); a release nobody fetches expires; finished requests and
expired tokens are purged; each refusal changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest
from relay_support import Vault, error_of
from sqlalchemy import delete, func, insert, select
from test_relay_items import PASSWORD, Harness, b64_blobs

from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_decode
from sealbox.protocol import ids
from sealbox.protocol.store import StoreUpload, sign_manifest, store_as_approver, verify_store
from sealbox.server import jobs
from sealbox.server.relay import Relay
from sealbox.server.store.tables import answers, audit_events, grants, policies, requests, tokens

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def test_a_store_is_completed_only_by_an_approver_the_policy_names(h: Harness) -> None:
    a = h.vault.approvers[0]
    b, c = await h.add_approver("b"), await h.add_approver("c")
    await h.add_policy("app/prod/*", [a, b], 1)
    client = await h.add_client()
    # c holds a share (the client sealed to all three) but the policy does not name it.
    upload = h.store_upload(client, "app/prod/db", PASSWORD, holders=[a, b, c])
    request_id = (await h.post_store(client, upload)).json()["id"]
    assert [r["id"] for r in await h.approvals(c)] == []

    # c verifies what a policy approver sees and signs a manifest anyway.
    entry = await h.approval(a, request_id)
    verified = verify_store(
        StoreUpload(
            statement=entry["statement"],
            ciphertexts={f: b64u_decode(x) for f, x in entry["ciphertexts"].items()},
            wraps={k: {f: b64u_decode(w) for f, w in fs.items()}
                   for k, fs in entry["wraps"].items()},
        ),
        directory=h.directory(), approver=c.id, hpke_key=c.hpke,
        certificate=entry["certificate"], now=h.relay.now(), prev_manifest=None,
        enrollment=entry["enrollment"],
    )  # fmt: skip
    manifest = sign_manifest(verified, directory=h.directory(), approver=c.id, key=c.sig,
                             now=h.relay.now())  # fmt: skip
    before = await h.counts()
    refused = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=c,
                           body={"manifest": manifest})  # fmt: skip
    assert (refused.status_code, error_of(refused)["error"]) == (403, "not_a_policy_approver")
    assert await h.counts() == before
    assert await h.state(request_id) == "pending"

    # A policy approver completes it.
    done = await h.approve_store(b, request_id)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "stored"


async def test_a_direct_store_below_the_policy_threshold_is_refused(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    await h.add_policy("app/prod/*", [a, b], 2)
    direct = store_as_approver(
        directory=h.directory(), approver=a.id, key=a.sig, item=ids.new_id(ids.ITEM),
        path="app/prod/db", version=1, prev=None, values=PASSWORD, approvers=[a.id, b.id],
        threshold=1, now=h.relay.now(),
    )  # fmt: skip
    before = await h.counts()
    refused = await h.call("POST", "/items", signer=a,
                           body={"manifest": direct.manifest, **b64_blobs(direct)})  # fmt: skip
    assert (refused.status_code, error_of(refused)["error"]) == (400, "threshold_below_policy")
    assert await h.counts() == before
    # At the policy's threshold it is stored.
    await h.store_direct(a, "app/prod/db", PASSWORD, holders=[a, b], threshold=2)


async def test_a_release_nobody_fetches_expires(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    assert (await h.release_as(a, request_id)).json()["state"] == "released"

    # Within the delivery window it waits for its client.
    h.relay.clock.now += h.relay.settings.delivery_seconds - 5
    assert await jobs.sweep_once(h.relay) == 0
    assert await h.state(request_id) == "released"

    h.relay.clock.now += 10
    assert await jobs.sweep_once(h.relay) <= 1  # the app's own sweeper may have got there
    assert await h.state(request_id) == "expired"
    # Back to a time the signature library's own clock accepts; the state stays.
    h.relay.clock.now -= h.relay.settings.delivery_seconds + 5
    late = await h.envelope(client, request_id)
    assert (late.status_code, error_of(late)["error"]) == (409, "not_released")
    async with h.relay.read() as conn:
        left = (await conn.execute(select(answers))).all()
        events = (
            (
                await conn.execute(
                    select(audit_events.c.detail).where(audit_events.c.action == "access.expired")
                )
            )
            .scalars()
            .all()
        )
    assert left == []  # the undelivered release is gone with it
    assert events == [{"request": request_id, "undelivered": True}]


async def test_finished_requests_and_expired_tokens_are_purged(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    done = (await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))).json()
    await h.release_as(a, done["id"])
    assert (await h.envelope(client, done["id"])).status_code == 200
    waiting = (await h.ask(client, h.access(client, [(item, "app/prod/db", ["user"])]))).json()

    now = h.relay.now()
    async with h.relay.tx() as tx:
        await tx.conn.execute(
            insert(tokens),
            [
                {"hash": sx.token_hash("sbx_at_old"), "vault_id": h.vault.id,
                 "client_id": client.id, "kind": "access", "family": "fam_old",
                 "expires_at": now - 2 * 86400, "used": False, "revoked": False},
                {"hash": sx.token_hash("sbx_rt_live"), "vault_id": h.vault.id,
                 "client_id": client.id, "kind": "refresh", "family": "fam_live",
                 "expires_at": now + 86400, "used": False, "revoked": False},
            ],
        )  # fmt: skip

    async def ids_of(table: object) -> set[str]:
        async with h.relay.read() as conn:
            if table is requests:
                return set((await conn.execute(select(requests.c.id))).scalars())
            return set((await conn.execute(select(tokens.c.family))).scalars())

    await jobs.sweep_once(h.relay)
    assert await ids_of(requests) == {done["id"], waiting["id"]}  # kept within retention
    assert await ids_of(tokens) == {"fam_live"}  # the long-expired token is gone

    # Past the retention the delivered request is purged; the expired one (the
    # pending request expired meanwhile) is kept until its own retention ends.
    h.relay.clock.now += h.relay.settings.retention_seconds - 100
    await jobs.sweep_once(h.relay)
    h.relay.clock.now += 200
    await jobs.sweep_once(h.relay)
    assert await ids_of(requests) == {waiting["id"]}
    async with h.relay.read() as conn:
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
        count = (await conn.execute(select(func.count()).select_from(answers))).scalar_one()
    # The audit log keeps every event; purging touches no event.
    assert "access.delivered" in actions
    assert count == 0


async def test_the_long_poll_delivers_once_released_when_asked(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    request_id = (await h.ask(client, access)).json()["id"]
    url = f"/access-requests/{request_id}?wait=0&deliver=true"

    # Pending: the answer is the state alone.
    pending = await h.call("GET", url, signer=client)
    assert pending.json()["state"] == "pending"
    assert "envelope" not in pending.json()

    await h.release_as(a, request_id)
    delivered = await h.call("GET", url, signer=client)
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["state"] == "delivered"
    assert h.open(access, body["envelope"]).values == {item: {"password": PASSWORD["password"]}}
    assert await h.state(request_id) == "delivered"

    # Once: the envelope is gone, by either route.
    again = await h.call("GET", url, signer=client)
    assert again.json()["state"] == "delivered"
    assert "envelope" not in again.json()
    gone = await h.envelope(client, request_id)
    assert (gone.status_code, error_of(gone)["error"]) == (410, "already_delivered")


async def test_delivery_in_the_long_poll_checks_the_grant_again(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client(grants_for=("app/prod/db",))
    request_id = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    request_id = request_id.json()["id"]
    await h.release_as(a, request_id)
    async with h.relay.tx() as tx:
        await tx.conn.execute(delete(grants))
    refused = await h.call("GET", f"/access-requests/{request_id}?deliver=true", signer=client)
    assert (refused.status_code, error_of(refused)["error"]) == (403, "no_grant")
    assert await h.state(request_id) == "released"  # nothing delivered


def test_a_wake_up_carries_the_status_of_its_own_request_only() -> None:
    from sealbox.server.services.access import Status

    status = Status("abc", "access", "released", 100, 2, 2)
    message = status.to_message()
    assert Status.from_message(message, "abc", "access") == status
    # Another request's, another kind's, or anything not a status: read it instead.
    assert Status.from_message(message, "abd", "access") is None
    assert Status.from_message(message, "abc", "store") is None
    for junk in ("released", "", "{", '{"id": "abc"}', "[]", None, 7):
        assert Status.from_message(junk, "abc", "access") is None


async def test_a_waiter_answers_from_the_wake_up_or_reads_when_it_carries_nothing(
    h: Harness,
) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    ids_ = []
    for fields in (["password"], ["user"]):
        access = h.access(client, [(item, "app/prod/db", fields)])
        ids_.append((await h.ask(client, access)).json()["id"])
    waiting = [
        asyncio.create_task(h.call("GET", f"/access-requests/{i}?wait=20", signer=client))
        for i in ids_
    ]
    await asyncio.sleep(0.3)
    # The first is released through the service, whose wake-up carries the status.
    assert (await h.release_as(a, ids_[0])).json()["state"] == "released"
    # The second changes behind the services' back with a bare wake-up: the waiter reads.
    async with h.relay.tx() as tx:
        await tx.conn.execute(
            requests.update().where(requests.c.id == ids_[1]).values(state="cancelled")
        )
        tx.wake(f"request:{ids_[1]}", "cancelled")
    first, second = await asyncio.gather(*waiting)
    assert first.json()["state"] == "released"
    assert first.json()["approvals"] == 1
    assert second.json()["state"] == "cancelled"


async def test_a_release_past_its_delivery_window_is_not_handed_out(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    request_id = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    request_id = request_id.json()["id"]
    await h.release_as(a, request_id)
    h.relay.settings = dataclasses.replace(h.relay.settings, delivery_seconds=2)
    h.relay.clock.now += 5  # past the window; the sweeper may or may not have run
    for late in (
        await h.envelope(client, request_id),
        await h.call("GET", f"/access-requests/{request_id}?deliver=true", signer=client),
    ):
        if late.status_code == 200:  # the long poll answers the state, delivering nothing
            assert late.json()["state"] in ("released", "expired")
            assert "envelope" not in late.json()
        else:
            assert (late.status_code, error_of(late)["error"]) == (409, "not_released")
    assert await h.state(request_id) in ("released", "expired")


async def test_a_store_is_held_to_the_policy_when_it_is_completed(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    await h.add_policy("app/prod/*", [a, b], 1)
    client = await h.add_client()
    upload = h.store_upload(client, "app/prod/db", PASSWORD, holders=[a, b], threshold=1)
    request_id = (await h.post_store(client, upload)).json()["id"]
    # The policy is raised while the store waits: the split no longer meets it.
    async with h.relay.tx() as tx:
        await tx.conn.execute(policies.update().values(threshold=2))
    before = await h.counts()
    refused = await h.approve_store(a, request_id)
    assert (refused.status_code, error_of(refused)["error"]) == (400, "threshold_below_policy")
    assert await h.counts() == before
