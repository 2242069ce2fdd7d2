"""A policy's further axes on both backends: time windows, read-rate cap, co-sign, destroy
date, rotate-after-N (and networks, per item), enforced before any approver is asked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from login_support import audit_rows
from relay_support import Approver, Vault, error_of
from sqlalchemy import func, select
from test_relay_items import PASSWORD, Harness
from test_relay_network import source

from sealbox.approver.answer import Unverifiable, examine
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.review import review
from sealbox.crypto.jws import statement_hash
from sealbox.errors import BindingMismatch
from sealbox.protocol.policies import PolicyBreached, sign_policy
from sealbox.protocol.policy_rules import DAYS, parse_window
from sealbox.protocol.statements import PolicyStatement
from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping
from sealbox.server.store.tables import (
    blobs,
    destroyed_items,
    item_versions,
    items,
    policies,
    requests,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def put_policy(
    h: Harness, approvers: list[Approver], threshold: int = 1, *, pattern: str = "app/prod/*",
    **axes: Any,
) -> httpx.Response:  # fmt: skip
    body = {"pattern": pattern, "approvers": [a.id for a in approvers], "threshold": threshold,
            **axes}  # fmt: skip
    return await h.call("PUT", "/policies", signer=h.vault.approvers[0], body=body)


def today(relay: Relay) -> str:
    return DAYS[datetime.fromtimestamp(relay.now(), UTC).weekday()]


def not_today(relay: Relay) -> str:
    day = datetime.fromtimestamp(relay.now(), UTC).weekday()
    return ",".join(d for i, d in enumerate(DAYS) if i != day)


def refusals(events: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [e for e in events
            if e["action"] == "request.refused" and e["detail"]["error"] == code]  # fmt: skip


async def test_axes_are_set_checked_strictly_and_shown(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    before = await h.counts()
    for bad, needle in [
        ({"hours": ["mon-fri 9:00-18:00 UTC"]}, "not a time window"),
        ({"hours": ["mon-fry 09:00-18:00 UTC"]}, "not a day"),
        ({"hours": ["mon 18:00-09:00 UTC"]}, "start before it ends"),
        ({"hours": ["mon 09:00-18:00 Mars/Olympus"]}, "IANA"),
        ({"hours": ["mon 09:00-18:00 UTC", "mon 09:00-18:00 UTC"]}, "twice"),
        ({"max_reads": "10 per hour"}, "read-rate cap"),
        ({"max_reads": "0/h"}, "read-rate cap"),
        ({"destroy_at": int(h.relay.now()) - 1}, "future"),
        ({"rotate_after": 0}, "rotate-after"),
        ({"cosigner": "apv_" + "z" * 26}, "co-signer"),
    ]:
        refused = await put_policy(h, [a, b], **bad)
        assert (refused.status_code, error_of(refused)["error"]) == (400, "invalid_policy"), bad
        assert needle in error_of(refused)["message"], (bad, error_of(refused))
    # A co-signer releases on top of the threshold: threshold 2 of {a, b} leaves no room.
    refused = await put_policy(h, [a, b], 2, cosigner=b.id)
    assert error_of(refused)["error"] == "invalid_policy"
    assert await h.counts() == before
    async with h.relay.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(policies))).scalar_one() == 0

    destroy_at = int(h.relay.now()) + 3600
    ok = await put_policy(
        h, [a, b], 1, hours=["fri-mon 08:00-12:00 Europe/Berlin", "wed 13:30-24:00 UTC"],
        max_reads="20/60m", cosigner=b.id, destroy_at=destroy_at, rotate_after=5,
        cidrs=["10.1.0.0/16"],
    )  # fmt: skip
    assert ok.status_code == 200, ok.text
    shown = ok.json()
    # Canonical spellings: what the relay enforces is what it shows (and audits).
    assert shown["hours"] == ["mon,fri-sun 08:00-12:00 Europe/Berlin", "wed 13:30-24:00 UTC"]
    assert shown["max_reads"] == "20/h"
    assert (shown["cosigner"], shown["destroy_at"], shown["rotate_after"]) == (
        b.id, destroy_at, 5,
    )  # fmt: skip
    assert shown["signed"] is False
    listed = await h.call("GET", "/policies", signer=a)
    assert listed.json()["policies"][0]["hours"] == shown["hours"]
    [event] = [e for e in await audit_rows(h.relay, h.vault.id) if e["action"] == "policy.set"]
    assert event["detail"]["max_reads"] == "20/h"
    assert event["detail"]["cosigner"] == b.id
    client = await h.add_client()
    effective = await h.call("GET", "/policy?path=app/prod/db", signer=client)
    assert effective.json()["rotate_after"] == 5
    assert effective.json()["pattern"] == "app/prod/*"
    # Set again without axes: the policy has none any more.
    again = await put_policy(h, [a, b])
    assert (again.json()["hours"], again.json()["cosigner"]) == ([], None)


async def test_outside_its_hours_nothing_is_asked_and_inside_it_is(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    other, _ = await h.store_direct(a, "app/dev/db", PASSWORD)
    client = await h.add_client()
    closed = f"{not_today(h.relay)} 00:00-24:00 UTC"
    assert (await put_policy(h, [a], hours=[closed])).status_code == 200
    before = await h.counts()
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (403, "policy_outside_hours")
    assert parse_window(closed).text() in error_of(refused)["message"]
    # A bundle with one item outside its hours is refused whole.
    both = h.access(client, [(item, "app/prod/db", ["password"]),
                             (other, "app/dev/db", ["password"])])  # fmt: skip
    assert (await h.ask(client, both)).status_code == 403
    # Storing is held to the windows too.
    upload = h.store_upload(client, "app/prod/api", {"token": b"t"})
    refused_store = await h.post_store(client, upload)
    assert error_of(refused_store)["error"] == "policy_outside_hours"
    assert await h.counts() == before
    assert await h.approvals(a) == []
    [event] = refusals(await audit_rows(h.relay, h.vault.id), "policy_outside_hours")
    assert event["actor"] == client.id
    assert event["detail"]["status"] == 403

    # Inside a window: today all day, as the window's own zone (UTC+14) sees today.
    zone = "Pacific/Kiritimati"
    local = datetime.fromtimestamp(h.relay.now(), UTC).astimezone(ZoneInfo(zone))
    open_ = f"{DAYS[local.weekday()]} 00:00-24:00 {zone}"
    assert (await put_policy(h, [a], hours=[closed, open_])).status_code == 200
    asked = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert asked.status_code == 201, asked.text
    stored = await h.post_store(client, h.store_upload(client, "app/prod/api", {"token": b"t"}))
    assert stored.status_code == 201, stored.text


async def test_a_read_rate_cap_refuses_with_retry_after_and_recovers(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    other, _ = await h.store_direct(a, "app/prod/api", PASSWORD)
    client = await h.add_client()
    second = await h.add_client()
    # A short period: request signatures are checked against the real time, so the relay's
    # clock moves only a little here.
    assert (await put_policy(h, [a], max_reads="2/2m")).status_code == 200
    start = h.relay.now()
    for who in (client, second):  # the cap is per item, over all clients
        made = await h.ask(who, h.access(who, [(item, "app/prod/db", ["password"])]))
        assert made.status_code == 201, made.text
        h.relay.clock.now += 30  # type: ignore[attr-defined]
    before = await h.counts()
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (429, "policy_rate_exceeded")
    # The first read leaves the window 120 s after it was made.
    assert int(refused.headers["retry-after"]) == int(start + 120 - h.relay.now())
    assert await h.counts() == before
    [event] = refusals(await audit_rows(h.relay, h.vault.id), "policy_rate_exceeded")
    assert event["detail"]["status"] == 429
    # Another item under the same policy has its own count.
    fine = await h.ask(client, h.access(client, [(other, "app/prod/api", ["password"])]))
    assert fine.status_code == 201, fine.text
    h.relay.clock.now = start + 120  # type: ignore[attr-defined]
    again = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert again.status_code == 201, again.text


async def test_a_co_signer_must_release_on_top_of_the_threshold(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    c = await h.add_approver("c")
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    assert (await put_policy(h, [a, b, c], 1, cosigner=c.id)).status_code == 200

    access = h.access(client, [(item, "app/prod/db", ["password"])])
    made = await h.ask(client, access)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    first = await h.release_as(a, rid)
    assert (first.status_code, first.json()["state"]) == (200, "pending")
    assert await h.state(rid) == "pending"
    # The co-signer is still asked, and its release completes it.
    assert [r["id"] for r in await h.approvals(c)] == [rid]
    done = await h.release_as(c, rid)
    assert done.json()["state"] == "released", done.text
    envelope = await h.envelope(client, rid)
    assert h.open(access, envelope.json()).values[item]["password"] == PASSWORD["password"]

    # The co-signer alone is never enough, even with a threshold of 1.
    h.relay.clock.now += 1  # type: ignore[attr-defined]
    access = h.access(client, [(item, "app/prod/db", ["password"])])
    rid = (await h.ask(client, access)).json()["id"]
    assert (await h.release_as(c, rid)).json()["state"] == "pending"
    assert (await h.release_as(b, rid)).json()["state"] == "released"

    # A policy whose co-signer holds no share of the item cannot be met: refused up front.
    d = await h.add_approver("d")
    assert (await put_policy(h, [a, d], 1, cosigner=d.id)).status_code == 200
    before = await h.counts()
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (409, "policy_unsatisfiable")
    assert await h.counts() == before


async def test_destruction_deletes_blobs_and_refuses_later_requests(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, manifest = await h.store_direct(a, "app/prod/db", PASSWORD)
    kept, _ = await h.store_direct(a, "app/dev/db", PASSWORD)
    client = await h.add_client()
    destroy_at = int(h.relay.now()) + 120
    assert (await put_policy(h, [a], destroy_at=destroy_at)).status_code == 200
    pending = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])], ttl=300))
    assert pending.status_code == 201, pending.text
    rid = pending.json()["id"]

    h.relay.clock.now = destroy_at  # type: ignore[attr-defined]
    # Past the date the relay refuses at once, before housekeeping has run.
    before = await h.counts()
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")
    upload = h.store_upload(client, "app/prod/db", {"password": b"new"}, item=item, version=2,
                            prev=statement_hash(manifest))  # fmt: skip
    assert error_of(await h.post_store(client, upload))["error"] == "item_destroyed"
    assert await h.counts() == before

    await housekeeping.sweep(h.relay, int(h.relay.now()))
    async with h.relay.read() as conn:
        for table in (blobs, item_versions):
            left = await conn.execute(select(func.count()).select_from(table)
                                      .where(table.c.item_id == item))  # fmt: skip
            assert left.scalar_one() == 0, table.name
        assert (await conn.execute(select(items.c.id))).scalars().all() == [kept]
        [tomb] = (await conn.execute(select(destroyed_items))).mappings().all()
        assert (tomb["item_id"], tomb["path"], tomb["pattern"]) == (item, "app/prod/db",
                                                                    "app/prod/*")  # fmt: skip
        state = await conn.execute(select(requests.c.state).where(requests.c.id == rid))
        assert state.scalar_one() == "expired"
    events = await audit_rows(h.relay, h.vault.id)
    [destroyed] = [e for e in events if e["action"] == "item.destroyed"]
    assert destroyed["item_id"] == item
    assert destroyed["detail"]["destroy_at"] == destroy_at
    assert any(e["action"] == "access.expired" and e["detail"].get("destroyed") == item
               for e in events)  # fmt: skip
    # A second sweep destroys nothing twice.
    await housekeeping.sweep(h.relay, int(h.relay.now()))
    events = await audit_rows(h.relay, h.vault.id)
    assert len([e for e in events if e["action"] == "item.destroyed"]) == 1

    # Later: refused as destroyed (410, not "no such item"), and no longer listed.
    refused = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (410, "item_destroyed")
    listed = await h.call("GET", "/items", signer=a)
    assert [i["id"] for i in listed.json()["items"]] == [kept]
    # Looked up by its path, it is gone as destroyed (to those who may name the path).
    lookup = await h.call("GET", "/items?path=app/prod/db", signer=client)
    assert (lookup.status_code, error_of(lookup)["error"]) == (410, "item_destroyed")
    stranger = await h.add_client(grants_for=("web/*/*",))
    hidden = await h.call("GET", "/items?path=app/prod/db", signer=stranger)
    assert (hidden.status_code, hidden.json()["items"]) == (200, [])
    assert len(refusals(await audit_rows(h.relay, h.vault.id), "item_destroyed")) >= 1


async def test_rotation_is_marked_after_n_releases_and_cleared_by_a_new_version(
    h: Harness,
) -> None:
    a = h.vault.approvers[0]
    item, manifest = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    assert (await put_policy(h, [a], rotate_after=2)).status_code == 200

    async def read() -> None:
        h.relay.clock.now += 1  # type: ignore[attr-defined]
        made = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
        assert made.status_code == 201, made.text
        assert (await h.release_as(a, made.json()["id"])).json()["state"] == "released"

    async def due() -> dict[str, Any]:
        listed = (await h.call("GET", "/items", signer=a)).json()["items"]
        return {k: v for k, v in listed[0].items() if k.startswith("rotation") or k == "releases"}

    await read()
    assert await due() == {}
    await read()
    marked = await due()
    assert marked["rotation_due"] is True
    assert marked["releases"] == 2
    await read()  # a third release: still one event
    events = [e for e in await audit_rows(h.relay, h.vault.id)
              if e["action"] == "item.rotation_due"]  # fmt: skip
    [event] = events
    assert (event["severity"], event["item_id"]) == ("alert", item)
    assert event["detail"]["releases"] == 2
    assert event["detail"]["rotate_after"] == 2
    history = await h.call("GET", f"/items/{item}/versions", signer=a)
    assert history.json()["rotation_due"] is True
    # The client's listing shows it too.
    assert (await h.call("GET", "/items", signer=client)).json()["items"][0]["rotation_due"]

    await h.store_direct(a, "app/prod/db", {"password": b"rotated"}, item=item, version=2,
                         prev=statement_hash(manifest))  # fmt: skip
    assert await due() == {}
    history = await h.call("GET", f"/items/{item}/versions", signer=a)
    assert "rotation_due" not in history.json()


async def test_per_item_networks_sit_beside_the_other_axes(
    client: httpx.AsyncClient, h: Harness
) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    other, _ = await h.store_direct(a, "app/prod/api", PASSWORD)
    requester = await h.add_client()
    # One item's own pattern narrows the networks; its neighbour under app/prod/* does not.
    assert (await put_policy(h, [a], pattern="app/prod/db", cidrs=["10.1.0.0/16"],
                             max_reads="5/h")).status_code == 200  # fmt: skip
    async with source(client, "203.0.113.9") as outside:
        away = Harness(outside, h.relay, h.vault)
        before = await h.counts()
        refused = await away.ask(requester, h.access(requester, [(item, "app/prod/db",
                                                                   ["password"])]))  # fmt: skip
        assert error_of(refused)["error"] == "policy_network_not_allowed"
        assert await h.counts() == before
        fine = await away.ask(requester, h.access(requester, [(other, "app/prod/api",
                                                                ["password"])]))  # fmt: skip
        assert fine.status_code == 201, fine.text
    async with source(client, "10.1.2.3") as inside:
        home = Harness(inside, h.relay, h.vault)
        asked = await home.ask(requester, h.access(requester, [(item, "app/prod/db",
                                                                 ["password"])]))  # fmt: skip
        assert asked.status_code == 201, asked.text


# --- the signed policy and approvers' own checks -------------------------------------------------


def signed_policy(h: Harness, by: Approver, approvers: list[Approver], **axes: Any) -> str:
    statement = PolicyStatement(
        vault=h.vault.id, approver=by.id, pattern="app/prod/*",
        approvers=tuple(sorted(a.id for a in approvers)), threshold=1, expiry_seconds=300,
        max_cache_seconds=0, store_needs_approval=True, cidrs=(), hours=(), max_reads=None,
        cosigner=None, destroy_at=None, rotate_after=None, at=int(h.relay.now()),
    )  # fmt: skip
    return sign_policy(dataclasses.replace(statement, **axes), by.sig)


def keys_of(h: Harness, approver: Approver) -> ApproverKeys:
    return ApproverKeys(server="http://relay.test", vault=h.vault.id,
                        fingerprint=h.vault.fingerprint, record=approver.record,
                        hpke=approver.hpke, sig=approver.sig)  # fmt: skip


async def test_a_signed_policy_is_verified_stored_and_served_with_requests(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("b")
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    open_ = f"{today(h.relay)} 00:00-24:00 UTC"
    token = signed_policy(h, a, [a, b], hours=(open_,), rotate_after=3)
    before = await h.counts()
    # What it signs must be exactly what is set; only its signer uploads it.
    mismatch = await put_policy(h, [a, b], hours=[open_], rotate_after=4, statement=token)
    assert (mismatch.status_code, error_of(mismatch)["error"]) == (
        400, "policy_statement_mismatch",
    )  # fmt: skip
    by_b = await h.call("PUT", "/policies", signer=b, body={
        "pattern": "app/prod/*", "approvers": [a.id, b.id], "threshold": 1, "hours": [open_],
        "rotate_after": 3, "statement": token})  # fmt: skip
    assert error_of(by_b)["error"] == "invalid_policy"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    bad = await put_policy(h, [a, b], hours=[open_], rotate_after=3, statement=forged)
    assert error_of(bad)["error"] == "invalid_policy_statement"
    async with h.relay.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(policies))).scalar_one() == 0
    assert await h.counts() == before

    ok = await put_policy(h, [a, b], hours=[open_], rotate_after=3, statement=token)
    assert ok.status_code == 200, ok.text
    assert ok.json()["signed"] is True
    made = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert made.status_code == 201, made.text
    entry = await h.approval(b, made.json()["id"])
    served = entry["policies"]["app/prod/db"]
    assert (served["pattern"], served["statement"], served["rotate_after"]) == (
        "app/prod/*", token, 3,
    )  # fmt: skip
    rev = review(entry, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))
    [shown] = rev.policies
    assert (shown.pattern, shown.signed_by) == ("app/prod/*", a.id)
    assert f"hours {parse_window(open_).text()}" in shown.axes

    # Had the relay let it through outside the signed hours (or past the signed destroy
    # date), the approver refuses it by its own clock, naming the axis.
    closed_hours = parse_window(f"{not_today(h.relay)} 00:00-24:00 UTC").text()
    closed = signed_policy(h, a, [a, b], hours=(closed_hours,))
    hostile = {
        **entry,
        "policies": {"app/prod/db": {**served, "statements": [], "statement": closed}},
    }
    with pytest.raises(PolicyBreached) as outside:
        review(hostile, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))
    assert outside.value.code == "policy_outside_hours"
    examined = examine_entry(h, b, hostile)
    assert isinstance(examined, Unverifiable)
    assert examined.code == "policy_outside_hours"
    past = signed_policy(h, a, [a, b], destroy_at=int(h.relay.now()) - 1)
    hostile = {
        **entry,
        "policies": {"app/prod/db": {**served, "statements": [], "statement": past}},
    }
    with pytest.raises(PolicyBreached) as destroyed:
        review(hostile, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))
    assert destroyed.value.code == "item_destroyed"
    # A statement for another pattern, or one tampered with, does not verify either.
    other = signed_policy(h, a, [a, b], pattern="web/*/*")
    with pytest.raises(BindingMismatch):
        review({**entry, "policies": {"app/prod/db": {**served, "statements": [],
                                                       "statement": other}}},
               directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))  # fmt: skip

    # Without a statement the policy is only reported: shown, never trusted for a check.
    unsigned = {
        **entry,
        "policies": {"app/prod/db": {**served, "statements": [], "statement": None}},
    }
    rev = review(unsigned, directory=h.directory(), keys=keys_of(h, b), now=int(h.relay.now()))
    assert rev.policies[0].signed_by is None
    assert "rotate after 3" in rev.policies[0].axes


def examine_entry(h: Harness, approver: Approver, entry: dict[str, Any]) -> Any:
    class Session:
        keys = keys_of(h, approver)

        def directory(self, *, fresh: bool = False) -> Any:
            return h.directory()

    return examine(Session(), entry, now=int(h.relay.now()))  # type: ignore[arg-type]
