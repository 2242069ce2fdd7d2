"""Pairings of new approver devices: the ``pairing_requests`` table.

Every state change is an edge of :data:`sealbox.protocol.state.PAIRING`,
written as a compare-and-set (``UPDATE … WHERE state = current``), so of two
concurrent answers to one pairing exactly one takes effect.  A pending
pairing past its expiry is never written as expired: it reads as
:data:`EXPIRED`, and :func:`purge_expired` deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.state import PAIRING, PairingEvent, PairingState
from sealbox.server.store.tables import pairing_requests

__all__ = [
    "EXPIRED",
    "Pairing",
    "count_pending",
    "get",
    "insert",
    "list_waiting",
    "mark_paired",
    "purge_expired",
    "transition",
]

#: What a pending pairing past its expiry reads as (a property of time, never stored).
EXPIRED: Final = "expired"

_c = pairing_requests.c


@dataclass(frozen=True)
class Pairing:
    vault: str
    id: str
    """Random, handed only to the new device: it polls its pairing by this id."""
    approver: dict[str, Any]
    """The new device's directory record, as it sent it."""
    state: PairingState
    """As stored; see :meth:`state_at` for what a reader is told."""
    source_ip: str | None
    """The address the relay saw the request come from (reported, never verified)."""
    created_at: int
    expires_at: int

    def state_at(self, now: int) -> str:
        """The state as of ``now``: a pending pairing past its expiry is :data:`EXPIRED`."""
        if self.state == PairingState.PENDING and self.expires_at < now:
            return EXPIRED
        return str(self.state)


def _pairing(row: Any) -> Pairing:
    return Pairing(
        row.vault_id, row.id, row.approver, PairingState(row.state), row.source_ip,
        row.created_at, row.expires_at,
    )  # fmt: skip


async def insert(
    conn: AsyncConnection, *, vault: str, pairing_id: str, approver: dict[str, Any],
    source_ip: str | None, now: int, expires_at: int,
) -> None:  # fmt: skip
    """Store a new pairing, pending."""
    await conn.execute(
        pairing_requests.insert().values(
            vault_id=vault, id=pairing_id, approver=approver, state=PairingState.PENDING.value,
            source_ip=source_ip, created_at=now, expires_at=expires_at,
        )
    )  # fmt: skip


async def purge_expired(conn: AsyncConnection, vault: str, now: int) -> int:
    """Delete the vault's pairings that expired before ``now``; return how many."""
    done = await conn.execute(
        delete(pairing_requests).where(_c.vault_id == vault, _c.expires_at < now)
    )
    return int(done.rowcount or 0)


async def count_pending(conn: AsyncConnection, vault: str) -> int:
    """How many of the vault's pairings are stored as pending."""
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(pairing_requests)
                .where(_c.vault_id == vault, _c.state == PairingState.PENDING.value)
            )
        ).scalar_one()
    )


async def get(conn: AsyncConnection, vault: str, pairing_id: str) -> Pairing | None:
    row = (
        await conn.execute(
            select(pairing_requests).where(_c.vault_id == vault, _c.id == pairing_id)
        )
    ).first()
    return None if row is None else _pairing(row)


async def list_waiting(conn: AsyncConnection, vault: str, now: int) -> list[Pairing]:
    """Pending pairings not yet expired at ``now``, oldest first."""
    rows = await conn.execute(
        select(pairing_requests)
        .where(_c.vault_id == vault, _c.state == PairingState.PENDING.value, _c.expires_at >= now)
        .order_by(_c.created_at)
    )
    return [_pairing(row) for row in rows]


async def _apply(
    conn: AsyncConnection, which: ColumnElement[bool], event: PairingEvent
) -> PairingState | None:
    """Take ``event`` on the pairings ``which`` selects, compare-and-set.

    Each state the event may leave is its own ``UPDATE … WHERE state = current``.
    Returns the state the changed pairings are now in, or None if none changed.
    """
    reached = None
    for current in sorted(PAIRING.sources(event)):
        after = PAIRING.next(current, event)
        done = await conn.execute(
            update(pairing_requests).where(which, _c.state == current.value)
            .values(state=after.value)
        )  # fmt: skip
        if done.rowcount:
            reached = after
    return reached


async def transition(
    conn: AsyncConnection, *, vault: str, pairing_id: str, event: PairingEvent
) -> PairingState | None:
    """Take ``event`` on one pairing, compare-and-set; its new state, or None if it cannot.

    None when there is no such pairing, or it is in a state the event does
    not leave (already answered, or answered first by a concurrent call).
    """
    return await _apply(conn, (_c.vault_id == vault) & (_c.id == pairing_id), event)


async def mark_paired(conn: AsyncConnection, vault: str, approver_id: str) -> bool:
    """A directory link added ``approver_id``: approve its pending pairing(s), if any."""
    which = (_c.vault_id == vault) & (_c.approver["id"].as_string() == approver_id)
    return await _apply(conn, which, PairingEvent.ADDED) is not None
