"""Consent requests and the approver's signed answer to each.

This module is the only writer of a consent request's state: every change goes
through :func:`transition`, a compare-and-set along :data:`sealbox.protocol.state.CONSENT`
(``WHERE state = current``), so of two approvers answering at once, or an answer
and a cancel, exactly one takes effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.state import CONSENT, ConsentEvent, ConsentState
from sealbox.server.store.tables import consent_requests

__all__ = [
    "FINISHED",
    "ConsentRow",
    "expire_due",
    "get",
    "insert",
    "pending",
    "purge_finished",
    "transition",
]

_T = consent_requests.c
#: States a consent request never leaves.
FINISHED = sorted(str(s) for s in CONSENT.terminal)


@dataclass(frozen=True)
class ConsentRow:
    vault: str
    id: str
    """The consent request statement's hash without ``sha256:``."""
    client_id: str
    statement: str
    action: str
    state: str
    answer: str | None
    """The signed consent (consented, delivered) or deny (denied)."""
    answered_by: str | None
    source_ip: str | None
    """Seen by the relay, not signed by anyone."""
    created_at: int
    expires_at: int
    updated_at: int

    def waiting(self, now: int) -> bool:
        """Pending and not past its expiry (the sweeper may not have run yet)."""
        return self.state == ConsentState.PENDING and now <= self.expires_at

    def state_at(self, now: int) -> str:
        """The state as it reads at ``now``: a pending request past its expiry is expired."""
        if self.state == ConsentState.PENDING and now > self.expires_at:
            return ConsentState.EXPIRED.value
        return self.state


def _row(row: Any) -> ConsentRow:
    return ConsentRow(
        vault=row.vault_id, id=row.id, client_id=row.client_id, statement=row.statement,
        action=row.action, state=row.state, answer=row.answer, answered_by=row.answered_by,
        source_ip=row.source_ip, created_at=row.created_at, expires_at=row.expires_at,
        updated_at=row.updated_at,
    )  # fmt: skip


async def insert(conn: AsyncConnection, row: ConsentRow) -> None:
    await conn.execute(
        consent_requests.insert().values(
            vault_id=row.vault, id=row.id, client_id=row.client_id, statement=row.statement,
            action=row.action, state=row.state, answer=row.answer, answered_by=row.answered_by,
            source_ip=row.source_ip, created_at=row.created_at, expires_at=row.expires_at,
            updated_at=row.updated_at,
        )
    )  # fmt: skip


async def get(
    conn: AsyncConnection, vault: str, request_id: str, *, client_id: str | None = None
) -> ConsentRow | None:
    query = select(consent_requests).where(_T.vault_id == vault, _T.id == request_id)
    if client_id is not None:
        query = query.where(_T.client_id == client_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def pending(conn: AsyncConnection, vault: str, now: int, limit: int) -> list[ConsentRow]:
    """Consent requests waiting for an answer, oldest first."""
    rows = await conn.execute(
        select(consent_requests)
        .where(_T.vault_id == vault, _T.state == ConsentState.PENDING.value, _T.expires_at >= now)
        .order_by(_T.created_at, _T.id)
        .limit(limit)
    )
    return [_row(row) for row in rows]


async def transition(
    conn: AsyncConnection,
    vault: str,
    request_id: str,
    current: str,
    event: str,
    now: int,
    *,
    client_id: str | None = None,
    answer: str | None = None,
    answered_by: str | None = None,
) -> str | None:
    """Compare-and-set a consent request from ``current`` along ``event``; ``None`` if it was
    not there.  A pending request past its expiry takes no event but ``expired``."""
    target = CONSENT.next(current, event)
    where = [_T.vault_id == vault, _T.id == request_id, _T.state == str(current)]
    if str(current) == ConsentState.PENDING and str(event) != ConsentEvent.EXPIRED:
        where.append(_T.expires_at >= now)
    if client_id is not None:
        where.append(_T.client_id == client_id)
    values: dict[str, Any] = {"state": str(target), "updated_at": now}
    if answer is not None:
        values["answer"] = answer
        values["answered_by"] = answered_by
    done = await conn.execute(update(consent_requests).where(*where).values(**values))
    return str(target) if done.rowcount == 1 else None


async def expire_due(conn: AsyncConnection, now: int, limit: int) -> list[ConsentRow]:
    """Expire up to ``limit`` pending requests past their expiry; return those expired."""
    rows = await conn.execute(
        select(consent_requests)
        .where(_T.state == ConsentState.PENDING.value, _T.expires_at < now)
        .order_by(_T.vault_id, _T.id)
        .limit(limit)
    )
    expired = []
    for row in [_row(r) for r in rows]:
        if await transition(conn, row.vault, row.id, ConsentState.PENDING,
                            ConsentEvent.EXPIRED, now):  # fmt: skip
            expired.append(row)
    return expired


async def purge_finished(conn: AsyncConnection, before: int) -> int:
    """Delete finished consent requests unchanged since ``before`` (the consent itself lives
    on with its holder; the audit log keeps the record)."""
    done = await conn.execute(
        delete(consent_requests).where(_T.state.in_(FINISHED), _T.updated_at < before)
    )
    return int(done.rowcount or 0)
