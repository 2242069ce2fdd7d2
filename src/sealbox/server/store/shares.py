"""Share links: the sealed value, its optional passphrase hash, its state.

This module is the only writer of a share's state.  Every change leaves
``live`` through :func:`spend`, one compare-and-set (``UPDATE … WHERE state =
'live'``) that also deletes the ciphertext and the passphrase hash: of two
viewers opening one share at once, or a view and a wrong guess, or a view and
the sweeper, exactly one changes the row, and only that one may use what it
read.  On PostgreSQL the second ``UPDATE`` waits for the first to commit and
then finds the row no longer live; on SQLite writes are serialised.  The row
itself stays, without anything secret, until housekeeping purges it, so that a
second open can say "already opened" (which tells a recipient that someone
else was first) rather than "no such link".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.shares import ShareState
from sealbox.server.errors import Conflict
from sealbox.server.store.tables import shares

__all__ = ["ShareRow", "count_live", "get", "insert", "overdue", "purge_spent", "spend"]

_T = shares.c


@dataclass(frozen=True)
class ShareRow:
    vault: str
    id: str
    created_by: str
    state: str
    nonce: bytes | None = field(repr=False)
    ciphertext: bytes | None = field(repr=False)
    """Sealed at rest (:mod:`sealbox.server.atrest`) around the sender's ciphertext."""
    passphrase_hash: str | None = field(repr=False)
    size: int
    """Bytes of the sender's ciphertext (what the audit log reports)."""
    created_at: int
    expires_at: int
    updated_at: int
    open_token_hash: bytes | None = field(default=None, repr=False)
    """SHA-256 of the open token derived from the link's key (null once spent)."""


def _row(row: Any) -> ShareRow:
    return ShareRow(
        vault=row.vault_id, id=row.id, created_by=row.created_by, state=row.state,
        nonce=row.nonce, ciphertext=row.ciphertext, passphrase_hash=row.passphrase_hash,
        size=row.size, created_at=row.created_at, expires_at=row.expires_at,
        updated_at=row.updated_at, open_token_hash=row.open_token_hash,
    )  # fmt: skip


async def insert(conn: AsyncConnection, row: ShareRow) -> None:
    """Store a new live share; :class:`Conflict` if its id is taken (the transaction is then
    spoilt: the caller's error rolls it back)."""
    try:
        await conn.execute(
            shares.insert().values(
                vault_id=row.vault, id=row.id, created_by=row.created_by, state=row.state,
                nonce=row.nonce, ciphertext=row.ciphertext, passphrase_hash=row.passphrase_hash,
                size=row.size, created_at=row.created_at, expires_at=row.expires_at,
                updated_at=row.updated_at, open_token_hash=row.open_token_hash,
            )
        )  # fmt: skip
    except IntegrityError:
        raise Conflict(
            "share_exists", "a share with this id exists already",
            "Make a new share: its client picks a fresh random id.",
        ) from None  # fmt: skip


async def get(conn: AsyncConnection, vault: str, share_id: str) -> ShareRow | None:
    query = select(shares).where(_T.vault_id == vault, _T.id == share_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def spend(conn: AsyncConnection, vault: str, share_id: str, to: ShareState, now: int) -> bool:
    """Move a live share to ``to`` and delete its secret parts; whether this call did it.

    ``True`` means this transaction, and no other, took the share out of ``live``:
    only then may the caller hand out (``opened``) the ciphertext it read before.
    """
    if to == ShareState.LIVE:
        raise ValueError("a share never returns to live")
    done = await conn.execute(
        update(shares)
        .where(_T.vault_id == vault, _T.id == share_id, _T.state == ShareState.LIVE.value)
        .values(
            state=to.value,
            nonce=None,
            ciphertext=None,
            passphrase_hash=None,
            open_token_hash=None,
            updated_at=now,
        )
    )
    return done.rowcount == 1


async def count_live(conn: AsyncConnection, vault: str, created_by: str, now: int) -> int:
    """How many of ``created_by``'s shares are live and unexpired (for the creation cap)."""
    query = select(func.count()).where(
        _T.vault_id == vault, _T.created_by == created_by,
        _T.state == ShareState.LIVE.value, _T.expires_at >= now,
    )  # fmt: skip
    return int((await conn.execute(query)).scalar_one())


async def overdue(conn: AsyncConnection, now: int, limit: int) -> list[ShareRow]:
    """Live shares past their expiry, oldest expiry first (for housekeeping)."""
    rows = await conn.execute(
        select(shares)
        .where(_T.state == ShareState.LIVE.value, _T.expires_at < now)
        .order_by(_T.expires_at, _T.vault_id, _T.id)
        .limit(limit)
    )
    return [_row(row) for row in rows]


async def purge_spent(conn: AsyncConnection, before: int) -> int:
    """Delete spent shares (no secret left in them) unchanged since ``before``."""
    done = await conn.execute(
        delete(shares).where(_T.state != ShareState.LIVE.value, _T.updated_at < before)
    )
    return int(done.rowcount or 0)
