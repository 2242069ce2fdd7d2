"""Bearer tokens, stored only as hashes: access ``sbx_at_…`` and refresh ``sbx_rt_…``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.server.store.tables import clients, tokens

__all__ = [
    "ACCESS_PREFIX",
    "REFRESH_PREFIX",
    "AccessSession",
    "TokenRow",
    "find",
    "insert",
    "insert_pair",
    "mark_used",
    "purge_expired",
    "revoke_client",
    "revoke_family",
]

#: What each kind of token starts with, so a token says what it is when it leaks or is mistyped.
ACCESS_PREFIX = "sbx_at_"
REFRESH_PREFIX = "sbx_rt_"


@dataclass(frozen=True)
class TokenRow:
    vault: str
    client_id: str
    kind: str
    family: str
    expires_at: int
    used: bool
    revoked: bool


@dataclass(frozen=True)
class AccessSession:
    """An access token's row joined with its client: what authenticating a bearer needs."""

    client_id: str
    kind: str
    expires_at: int
    revoked: bool
    disabled: bool
    certificate: str
    enrollment: str | None


# Read on every bearer request: built once, with bound parameters.
_ACCESS_SESSION = (
    select(tokens.c.client_id, tokens.c.expires_at, tokens.c.revoked, clients.c.kind,
           clients.c.disabled, clients.c.certificate, clients.c.enrollment)
    .join(clients, (clients.c.vault_id == tokens.c.vault_id)
          & (clients.c.id == tokens.c.client_id))
    .where(tokens.c.hash == bindparam("hash"), tokens.c.kind == "access",
           tokens.c.vault_id == bindparam("vault"))
)  # fmt: skip


async def access_session(conn: AsyncConnection, vault: str, token: str) -> AccessSession | None:
    """The access token's session in ``vault``, looked up by the token's hash.

    No comparison of secrets happens in Python at all: the database finds the
    row by the hash, or does not.
    """
    params = {"hash": sx.token_hash(token), "vault": vault}
    row = (await conn.execute(_ACCESS_SESSION, params)).first()
    if row is None:
        return None
    return AccessSession(
        row.client_id, row.kind, row.expires_at, bool(row.revoked), bool(row.disabled),
        row.certificate, row.enrollment,
    )  # fmt: skip


async def insert(conn: AsyncConnection, rows: Sequence[dict[str, object]]) -> None:
    """Store token rows (``hash`` is the token's labelled hash, never the token)."""
    await conn.execute(tokens.insert(), list(rows))


async def insert_pair(
    conn: AsyncConnection, *, vault: str, client_id: str, family: str, access_token: str,
    access_expires: int, refresh_token: str, refresh_expires: int,
) -> None:  # fmt: skip
    """Store the hashes of an access and a refresh token of ``family``, both live."""
    common = {"vault_id": vault, "client_id": client_id, "family": family, "used": False,
              "revoked": False}  # fmt: skip
    await insert(
        conn,
        [
            {"hash": sx.token_hash(access_token), "kind": "access", "expires_at": access_expires,
             **common},
            {"hash": sx.token_hash(refresh_token), "kind": "refresh",
             "expires_at": refresh_expires, **common},
        ],
    )  # fmt: skip


async def find(conn: AsyncConnection, token: str) -> TokenRow | None:
    """The stored row of ``token`` (any kind, any vault), looked up by its hash."""
    row = (await conn.execute(select(tokens).where(tokens.c.hash == sx.token_hash(token)))).first()
    if row is None:
        return None
    return TokenRow(
        vault=row.vault_id, client_id=row.client_id, kind=row.kind, family=row.family,
        expires_at=row.expires_at, used=bool(row.used), revoked=bool(row.revoked),
    )  # fmt: skip


async def mark_used(conn: AsyncConnection, token: str) -> bool:
    """Spend a refresh token, compare-and-set: True for exactly one of concurrent callers."""
    spent = await conn.execute(
        update(tokens)
        .where(
            tokens.c.hash == sx.token_hash(token),
            tokens.c.used.is_(False),
            tokens.c.revoked.is_(False),
        )
        .values(used=True)
    )
    return bool(spent.rowcount == 1)


async def revoke_family(conn: AsyncConnection, *, vault: str, family: str) -> int:
    """Revoke every token of ``family``; return how many were still live."""
    result = await conn.execute(
        update(tokens)
        .where(tokens.c.vault_id == vault, tokens.c.family == family, tokens.c.revoked.is_(False))
        .values(revoked=True)
    )
    return int(result.rowcount or 0)


async def revoke_client(conn: AsyncConnection, *, vault: str, client_id: str) -> int:
    """Revoke every token of a client (it was disabled); return how many were still live."""
    result = await conn.execute(
        update(tokens)
        .where(
            tokens.c.vault_id == vault,
            tokens.c.client_id == client_id,
            tokens.c.revoked.is_(False),
        )
        .values(revoked=True)
    )
    return int(result.rowcount or 0)


async def purge_expired(conn: AsyncConnection, before: int) -> int:
    """Delete tokens that expired before ``before``; return how many."""
    result = await conn.execute(delete(tokens).where(tokens.c.expires_at < before))
    return int(result.rowcount or 0)
