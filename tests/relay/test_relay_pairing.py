"""A pairing is answered once, on SQLite and PostgreSQL.

Its state changes are compare-and-set updates of the pairing state table: of
two answers to one pairing (two denies, or a deny after the device was added)
exactly one takes effect, and the other is refused and leaves no trace.
Expiry is read from the clock, never written.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from relay_support import Approver, Vault, error_of
from sqlalchemy import func, select
from test_relay_items import Harness

from sealbox.protocol import directory as dirs
from sealbox.protocol.state import PairingEvent, PairingState
from sealbox.server.relay import Relay
from sealbox.server.services import pairing as service
from sealbox.server.store import pairings
from sealbox.server.store.tables import audit_events

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _ask(h: Harness, name: str) -> tuple[Approver, str]:
    new = Approver(name)
    asked = await h.http.post(f"{h.base}/pairing-requests", json={"approver": new.record.to_json()})
    assert asked.status_code == 201, asked.text
    return new, str(asked.json()["id"])


async def _state(h: Harness, pairing: str) -> Any:
    return (await h.http.get(f"{h.base}/pairing-requests/{pairing}")).json()["state"]


async def _count(h: Harness, action: str) -> int:
    async with h.relay.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.action == action)
                )
            ).scalar_one()
        )


async def test_two_denies_at_once_exactly_one_wins(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("second")
    _, pairing = await _ask(h, "tablet")
    answers = await asyncio.gather(
        h.call("POST", f"/pairing-requests/{pairing}/deny", signer=a),
        h.call("POST", f"/pairing-requests/{pairing}/deny", signer=b),
    )
    assert sorted(r.status_code for r in answers) == [200, 404]
    lost = next(r for r in answers if r.status_code == 404)
    assert error_of(lost)["error"] == "no_such_pairing"
    assert await _state(h, pairing) == "denied"
    assert await _count(h, "pairing.denied") == 1


async def test_a_deny_after_the_device_was_added_is_refused(h: Harness) -> None:
    a = h.vault.approvers[0]
    new, pairing = await _ask(h, "phone")
    link = dirs.append_link(h.directory(), "add", new.record, signer=a.id, key=a.sig,
                            now=h.relay.now())  # fmt: skip
    assert (await h.http.post(f"{h.base}/directory", json={"link": link})).status_code == 201
    late = await h.call("POST", f"/pairing-requests/{pairing}/deny", signer=a)
    assert late.status_code == 404
    assert error_of(late)["error"] == "no_such_pairing"
    assert await _state(h, pairing) == "approved"
    assert await _count(h, "pairing.denied") == 0


async def test_the_store_takes_each_event_once(h: Harness) -> None:
    new, pairing = await _ask(h, "laptop")
    vault = h.vault.id
    async with h.relay.tx() as tx:
        first = await pairings.transition(
            tx.conn, vault=vault, pairing_id=pairing, event=PairingEvent.DENIED
        )
        second = await pairings.transition(
            tx.conn, vault=vault, pairing_id=pairing, event=PairingEvent.DENIED
        )
        # Denied is terminal: adding the device's record no longer approves it.
        added = await pairings.mark_paired(tx.conn, vault, new.record.id)
    assert (first, second, added) == (PairingState.DENIED, None, False)
    async with h.relay.read() as conn:
        stored = await pairings.get(conn, vault, pairing)
    assert stored is not None
    assert stored.state == PairingState.DENIED


async def test_expiry_is_read_from_the_clock(h: Harness) -> None:
    _, pairing = await _ask(h, "watch")
    vault, later = h.vault.id, h.relay.now() + service.PAIRING_SECONDS + 1
    assert await _state(h, pairing) == PairingState.PENDING
    found = await service.status(h.relay, later, vault=vault, pairing_id=pairing)
    assert found.state == pairings.EXPIRED
    assert await service.waiting(h.relay, later, vault=vault) == []
    async with h.relay.read() as conn:
        stored = await pairings.get(conn, vault, pairing)
    assert stored is not None
    assert stored.state == PairingState.PENDING  # never written
