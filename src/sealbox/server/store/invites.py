"""Invites to join a project with a role, stored by the hash of their code.

An invite is used once: :func:`use` marks it with a compare-and-set, so of two
logins presenting one code at once exactly one gets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.server.store.tables import invites

__all__ = ["InviteRow", "find", "insert", "list_all", "purge_expired", "remove", "use"]


@dataclass(frozen=True)
class InviteRow:
    vault: str
    id: str
    project: str
    role: str
    issuer: str
    """The approver that made it."""
    created_at: int
    expires_at: int
    used_at: int | None
    used_by: str | None
    """The client id of the login that presented it."""


def _invite(row: Any) -> InviteRow:
    return InviteRow(
        row.vault_id, row.id, row.project, row.role, row.issuer, row.created_at, row.expires_at,
        row.used_at, row.used_by,
    )  # fmt: skip


async def insert(
    conn: AsyncConnection, *, vault: str, invite_id: str, code: str, project: str, role: str,
    issuer: str, now: int, expires_at: int,
) -> None:  # fmt: skip
    await conn.execute(
        invites.insert().values(
            vault_id=vault, id=invite_id, code_hash=sx.token_hash(code), project=project,
            role=role, issuer=issuer, created_at=now, expires_at=expires_at, used_at=None,
            used_by=None,
        )
    )  # fmt: skip


async def find(conn: AsyncConnection, vault: str, code: str) -> InviteRow | None:
    """The vault's invite with ``code``, looked up by its hash."""
    row = (
        await conn.execute(
            select(invites).where(
                invites.c.vault_id == vault, invites.c.code_hash == sx.token_hash(code)
            )
        )
    ).first()
    return None if row is None else _invite(row)


async def use(conn: AsyncConnection, row: InviteRow, *, client_id: str, now: int) -> bool:
    """Mark the invite used by ``client_id``; False if it was used meanwhile."""
    done = await conn.execute(
        update(invites)
        .where(
            invites.c.vault_id == row.vault,
            invites.c.id == row.id,
            invites.c.used_at.is_(None),
        )
        .values(used_at=now, used_by=client_id)
    )
    return bool(done.rowcount == 1)


async def list_all(conn: AsyncConnection, vault: str) -> list[InviteRow]:
    rows = await conn.execute(
        select(invites)
        .where(invites.c.vault_id == vault)
        .order_by(invites.c.created_at, invites.c.id)
    )
    return [_invite(row) for row in rows]


async def remove(conn: AsyncConnection, vault: str, invite_id: str) -> bool:
    done = await conn.execute(
        delete(invites).where(invites.c.vault_id == vault, invites.c.id == invite_id)
    )
    return bool(done.rowcount)


async def purge_expired(conn: AsyncConnection, vault: str, before: int) -> int:
    """Delete the vault's invites that expired before ``before``; return how many."""
    done = await conn.execute(
        delete(invites).where(invites.c.vault_id == vault, invites.c.expires_at < before)
    )
    return int(done.rowcount or 0)
