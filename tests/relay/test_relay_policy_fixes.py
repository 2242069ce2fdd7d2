"""What a policy's axes must still hold at release and delivery, and at a store's completion,
on both backends: the gaps between a request's creation and the sweeper's next run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from login_support import audit_rows
from relay_support import Vault, error_of
from sqlalchemy import func, select
from test_relay_items import PASSWORD, Harness, b64_blobs
from test_relay_policy_axes import (
    examine_entry,
    keys_of,
    not_today,
    put_policy,
    signed_policy,
    today,
)

from sealbox.approver.answer import Unverifiable
from sealbox.approver.policy_seen import PolicyRollback, PolicySeen
from sealbox.approver.review import NO_SIGNED_POLICY, review
from sealbox.crypto.jws import statement_hash
from sealbox.protocol.policies import PolicyBreached
from sealbox.protocol.policy_rules import MAX_DESTROY_AT, parse_window
from sealbox.protocol.store import store_as_approver
from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping
from sealbox.server.store.tables import blobs, requests

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def test_past_the_destroy_date_nothing_is_released_before_the_sweep(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    destroy_at = int(h.relay.now()) + 20
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    access = h.access(client, [(item, "app/prod/db", ["password"])], ttl=300)
    made = await h.ask(client, access)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    # The release may not be cached past the destroy date.
    entry = await h.approval(a, rid)
    assert entry["cache_until_max"] <= destroy_at
    await h.call("GET", f"/access-requests/{rid}", signer=client)
    h.relay.clock.now = destroy_at + 1  # type: ignore[attr-defined]
    await h.call("GET", f"/access-requests/{rid}", signer=client)
    before = await h.counts()
    refused = await h.release_as_unchecked(a, rid, access)
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")
    assert await h.counts() == before


async def test_a_release_made_before_the_destroy_date_is_not_delivered_after(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    destroy_at = int(h.relay.now()) + 20
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    access = h.access(client, [(item, "app/prod/db", ["password"])], ttl=300)
    rid = (await h.ask(client, access)).json()["id"]
    released = await h.release_as(a, rid)
    assert released.status_code == 200, released.text
    h.relay.clock.now = destroy_at + 1  # type: ignore[attr-defined]
    refused = await h.envelope(client, rid)
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")
    events = await audit_rows(h.relay, h.vault.id)
    assert not [e for e in events if e["action"] == "access.delivered"]


async def test_a_destroy_date_no_approver_can_show_is_refused_and_never_stalls_a_review(
    h: Harness,
) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    far = 2**53 - 1
    token = signed_policy(h, a, [a, b], destroy_at=far)
    refused = await put_policy(h, [a, b], destroy_at=far, statement=token)
    assert refused.status_code in (400, 422), refused.text
    assert (await put_policy(h, [a, b], destroy_at=MAX_DESTROY_AT)).status_code == 200
    made = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    entry = await h.approval(b, made.json()["id"])
    # A hostile relay serving such a statement anyway: refused as unverifiable, not raised.
    hostile = {**entry, "policies": {"app/prod/db": {**entry["policies"]["app/prod/db"],
                                                     "statement": token}}}  # fmt: skip
    examined = examine_entry(h, b, hostile)
    assert isinstance(examined, Unverifiable)
    # Unreadable zones too (a local alias means something else on every system).
    odd = signed_policy(h, a, [a, b], hours=("mon-sun 00:00-24:00 posixrules",))
    hostile = {**entry, "policies": {"app/prod/db": {**entry["policies"]["app/prod/db"],
                                                     "statement": odd}}}  # fmt: skip
    assert isinstance(examine_entry(h, b, hostile), Unverifiable)


async def test_a_store_is_not_completed_past_the_destroy_date(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    destroy_at = int(h.relay.now()) + 20
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    made = await h.post_store(client, h.store_upload(client, "app/prod/new", {"password": b"x"}))
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    h.relay.clock.now = destroy_at + 1  # type: ignore[attr-defined]
    await h.call("GET", f"/store-requests/{rid}", signer=client)
    before = await h.counts()
    refused = await h.approve_store(a, rid)
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")
    assert await h.counts() == before
    listed = await h.call("GET", "/items", signer=a)
    assert listed.json()["items"] == []


async def test_an_approver_stores_nothing_under_a_policy_past_its_destroy_date(
    h: Harness,
) -> None:
    a = h.vault.approvers[0]
    item, manifest = await h.store_direct(a, "app/prod/db", PASSWORD)
    destroy_at = int(h.relay.now()) + 20
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    h.relay.clock.now = destroy_at + 1  # type: ignore[attr-defined]
    direct = store_as_approver(
        directory=h.directory(), approver=a.id, key=a.sig, item=item, path="app/prod/db",
        version=2, prev=statement_hash(manifest), values={"password": b"new"},
        approvers=[a.id], threshold=1, now=h.relay.now(),
    )  # fmt: skip
    refused = await h.call("POST", "/items", signer=a,
                           body={"manifest": direct.manifest, **b64_blobs(direct)})  # fmt: skip
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")


async def test_the_sweep_expires_a_pending_store_of_a_destroyed_item(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, manifest = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    destroy_at = int(h.relay.now()) + 20
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    upload = h.store_upload(client, "app/prod/db", {"password": b"new"}, item=item, version=2,
                            prev=statement_hash(manifest))  # fmt: skip
    made = await h.post_store(client, upload)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    h.relay.clock.now = destroy_at  # type: ignore[attr-defined]
    await h.call("GET", f"/store-requests/{rid}", signer=client)
    await housekeeping.sweep(h.relay, int(h.relay.now()))
    async with h.relay.read() as conn:
        state = await conn.execute(select(requests.c.state).where(requests.c.id == rid))
        assert state.scalar_one() == "expired"
        left = await conn.execute(select(func.count()).select_from(blobs)
                                  .where(blobs.c.item_id == item))  # fmt: skip
        assert left.scalar_one() == 0
    events = await audit_rows(h.relay, h.vault.id)
    assert any(e["action"] == "store.expired" and e["detail"].get("destroyed") == item
               for e in events)  # fmt: skip


async def test_an_unsatisfiable_policy_refusal_is_audited_and_creates_nothing(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    # The co-signer holds no share of the item: no release could ever complete.
    d = await h.add_approver("d")
    assert (await put_policy(h, [a, d], 1, cosigner=d.id)).status_code == 200
    before = await h.counts()
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (409, "policy_unsatisfiable")
    assert await h.counts() == before
    events = await audit_rows(h.relay, h.vault.id)
    [event] = [e for e in events if e["action"] == "request.refused"
               and e["detail"]["error"] == "policy_unsatisfiable"]  # fmt: skip
    assert event["actor"] == client.id
    assert not [e for e in events if e["action"] == "access.requested"]


async def test_approvers_pick_the_most_specific_signed_policy_and_refuse_an_older_one(
    h: Harness,
    tmp_path: Path,
) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    open_ = parse_window(f"{today(h.relay)} 00:00-24:00 UTC").text()
    closed = parse_window(f"{not_today(h.relay)} 00:00-24:00 UTC").text()
    broad = signed_policy(h, a, [a, b], pattern="app/*/*")
    ok = await put_policy(h, [a, b], pattern="app/*/*", statement=broad)
    assert ok.status_code == 200, ok.text
    specific = signed_policy(h, a, [a, b], hours=(open_,))
    assert (await put_policy(h, [a, b], hours=[open_], statement=specific)).status_code == 200
    made = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    entry = await h.approval(b, made.json()["id"])
    served = entry["policies"]["app/prod/db"]
    # The relay serves every signed statement whose pattern matches, most specific first.
    assert served["statements"] == [specific, broad]
    seen = PolicySeen(tmp_path / "b.policies.json")
    rev = review(entry, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()),
                 seen=seen)  # fmt: skip
    assert (rev.policies[0].pattern, rev.policies[0].signed_by) == ("app/prod/*", a.id)
    assert oct((tmp_path / "b.policies.json").stat().st_mode & 0o777) == "0o600"

    # A relay steering to the broader statement while the specific one is served: the
    # approver picks the specific one itself (here: closed today), whatever the order.
    shut = signed_policy(h, a, [a, b], hours=(closed,), at=int(h.relay.now()) + 1)
    steered = {**entry, "policies": {"app/prod/db": {**served, "statement": broad,
                                                     "statements": [broad, shut]}}}  # fmt: skip
    with pytest.raises(PolicyBreached):
        review(steered, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))

    # An older statement for a pattern than one seen before: refused as a rollback, also by
    # a later process reading the same file.
    older = signed_policy(h, a, [a, b], at=int(h.relay.now()) - 86400 * 30)
    rolled = {**entry, "policies": {"app/prod/db": {**served, "statement": older,
                                                    "statements": [older, broad]}}}  # fmt: skip
    with pytest.raises(PolicyRollback):
        review(rolled, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()),
               seen=PolicySeen(tmp_path / "b.policies.json"))  # fmt: skip

    # None served: said so, not silently nothing.
    bare = {**entry, "policies": {}}
    rev = review(bare, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()),
                 seen=seen)  # fmt: skip
    [shown] = rev.policies
    assert shown.signed_by is None
    assert NO_SIGNED_POLICY in shown.axes
