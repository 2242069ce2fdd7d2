"""Audit checkpoints: approvers' signed statements that event ``seq`` has hash ``head``.

Stored verbatim, once per (vault, seq, approver); the relay checked each one
against its own log before storing it (:mod:`sealbox.server.services.checkpoints`),
and every reader checks it again for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import audit_checkpoints

__all__ = ["CheckpointRow", "event_hash_at", "get", "insert", "listed"]

_T = audit_checkpoints.c


@dataclass(frozen=True)
class CheckpointRow:
    seq: int
    approver_id: str
    head: str
    statement: str
    at: int
    created_at: int


def _row(row: object) -> CheckpointRow:
    return CheckpointRow(
        row.seq, row.approver_id, row.head, row.statement, row.at, row.created_at,  # type: ignore[attr-defined]
    )  # fmt: skip


async def get(conn: AsyncConnection, vault: str, seq: int, approver: str) -> CheckpointRow | None:
    found = (
        await conn.execute(
            select(audit_checkpoints).where(
                _T.vault_id == vault, _T.seq == seq, _T.approver_id == approver
            )
        )
    ).first()
    return None if found is None else _row(found)


async def insert(conn: AsyncConnection, vault: str, row: CheckpointRow) -> None:
    await conn.execute(
        audit_checkpoints.insert().values(
            vault_id=vault, seq=row.seq, approver_id=row.approver_id, head=row.head,
            statement=row.statement, at=row.at, created_at=row.created_at,
        )
    )  # fmt: skip


async def listed(
    conn: AsyncConnection, vault: str, *, after: int, limit: int
) -> list[CheckpointRow]:
    """Checkpoints with ``seq > after``, by seq then approver, at most ``limit``."""
    rows = await conn.execute(
        select(audit_checkpoints)
        .where(_T.vault_id == vault, _T.seq > after)
        .order_by(_T.seq, _T.approver_id)
        .limit(limit)
    )
    return [_row(r) for r in rows]


async def event_hash_at(conn: AsyncConnection, vault: str, seq: int) -> str | None:
    """The stored hash of the vault's audit event ``seq`` (``None``: no such event yet)."""
    from sealbox.server.store.tables import audit_events

    return (
        await conn.execute(
            select(audit_events.c.hash).where(
                audit_events.c.vault_id == vault, audit_events.c.seq == seq
            )
        )
    ).scalar_one_or_none()
