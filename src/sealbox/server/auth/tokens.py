"""Issuing, rotating and revoking bearer tokens (access ``sbx_at_…``, refresh ``sbx_rt_…``).

Tokens come in *families*: the access and refresh tokens issued at one login
and every pair rotated from them.  A refresh token works once; presenting it
again means two parties hold it (the client, and whoever copied it), and the
relay cannot tell which is which, so it revokes the whole family
(RFC 9700 §4.14.2).  Only SHA-256 hashes of tokens are stored.

Every function here runs in the caller's transaction and writes no audit
event: the routes record what happened, with the outcome they tell the caller.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.server.auth.bearer import ACCESS_PREFIX, REFRESH_PREFIX
from sealbox.server.store.tables import tokens

__all__ = [
    "ACCESS_SECONDS",
    "REFRESH_SECONDS",
    "IssuedTokens",
    "NotAfter",
    "Rotation",
    "find_token",
    "issue_tokens",
    "revoke_client",
    "revoke_family",
    "rotate_refresh",
]

#: ``(conn, vault, client_id) -> certificate end``, or ``None`` if the client may get no tokens.
NotAfter = Callable[[AsyncConnection, str, str], Awaitable[int | None]]

ACCESS_SECONDS = 3600
REFRESH_SECONDS = 30 * 86400


@dataclass(frozen=True)
class IssuedTokens:
    """A fresh access and refresh token: returned to the caller once, never stored."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until the access token expires."""
    family: str

    def __repr__(self) -> str:
        # Keep the tokens out of tracebacks and debug logs.
        return f"IssuedTokens(family={self.family!r}, expires_in={self.expires_in})"


Outcome = Literal["rotated", "reused", "invalid"]


@dataclass(frozen=True)
class Rotation:
    """What presenting a refresh token came to."""

    outcome: Outcome
    """``rotated``: fresh tokens issued; ``reused``: the family was revoked; ``invalid``: unknown,
    expired or revoked."""
    vault: str | None = None
    client_id: str | None = None
    family: str | None = None
    issued: IssuedTokens | None = None


@dataclass(frozen=True)
class TokenRow:
    vault: str
    client_id: str
    kind: str
    family: str
    expires_at: int
    used: bool
    revoked: bool


def _new_family() -> str:
    # A family id is a label, not a credential: it only groups rows.
    return "fam_" + secrets.token_hex(16)


async def issue_tokens(
    conn: AsyncConnection,
    *,
    vault: str,
    client_id: str,
    now: int,
    not_after: int,
    family: str | None = None,
) -> IssuedTokens:
    """Store the hashes of a new access and refresh token in ``family`` (new if ``None``).

    Neither token outlives ``not_after`` (the client certificate's end): a
    session must not keep working after its certificate is void.
    """
    family = family or _new_family()
    access = sx.new_token(ACCESS_PREFIX)
    refresh = sx.new_token(REFRESH_PREFIX)
    access_expires = min(now + ACCESS_SECONDS, not_after)
    refresh_expires = min(now + REFRESH_SECONDS, not_after)
    await conn.execute(
        tokens.insert(),
        [
            {"hash": sx.token_hash(access), "vault_id": vault, "client_id": client_id,
             "kind": "access", "family": family, "expires_at": access_expires,
             "used": False, "revoked": False},
            {"hash": sx.token_hash(refresh), "vault_id": vault, "client_id": client_id,
             "kind": "refresh", "family": family, "expires_at": refresh_expires,
             "used": False, "revoked": False},
        ],
    )  # fmt: skip
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh,
        expires_in=max(access_expires - now, 0),
        family=family,
    )


async def find_token(conn: AsyncConnection, token: str) -> TokenRow | None:
    """The stored row of ``token`` (any kind, any vault), looked up by its hash."""
    row = (await conn.execute(select(tokens).where(tokens.c.hash == sx.token_hash(token)))).first()
    if row is None:
        return None
    return TokenRow(
        vault=row.vault_id, client_id=row.client_id, kind=row.kind, family=row.family,
        expires_at=row.expires_at, used=bool(row.used), revoked=bool(row.revoked),
    )  # fmt: skip


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


async def rotate_refresh(
    conn: AsyncConnection,
    token: str,
    *,
    now: int,
    not_after_of: NotAfter,
    client_id: str | None = None,
) -> Rotation:
    """Spend refresh ``token``: issue a fresh pair in its family, or revoke the family on reuse.

    ``not_after_of(conn, vault, client_id)`` says when the client's
    certificate ends, or ``None`` if the client may no longer get tokens.  A
    ``client_id`` that does not own the token makes it ``invalid`` without
    spending it.
    """
    row = await find_token(conn, token)
    if row is None or row.kind != "refresh" or client_id not in (None, row.client_id):
        return Rotation("invalid")

    def outcome(name: Outcome, issued: IssuedTokens | None = None) -> Rotation:
        return Rotation(name, row.vault, row.client_id, row.family, issued)

    if row.revoked:
        return outcome("invalid")
    if row.used:
        await revoke_family(conn, vault=row.vault, family=row.family)
        return outcome("reused")
    if row.expires_at <= now:
        return outcome("invalid")
    # Compare-and-set: of two concurrent presentations of one token, exactly one
    # marks it used; the other sees it used and is treated as the reuse it is.
    spent = await conn.execute(
        update(tokens)
        .where(
            tokens.c.hash == sx.token_hash(token),
            tokens.c.used.is_(False),
            tokens.c.revoked.is_(False),
        )
        .values(used=True)
    )
    if spent.rowcount != 1:
        await revoke_family(conn, vault=row.vault, family=row.family)
        return outcome("reused")
    not_after = await not_after_of(conn, row.vault, row.client_id)
    if not_after is None or not_after <= now:
        # The client may get no more tokens (disabled, or its certificate is
        # void); end the access tokens already out too, not only in an hour.
        await revoke_family(conn, vault=row.vault, family=row.family)
        return outcome("invalid")
    # The access tokens rotated away from stay valid until they expire (at
    # most an hour): the client may still have requests in flight with them.
    issued = await issue_tokens(
        conn, vault=row.vault, client_id=row.client_id, now=now, not_after=not_after,
        family=row.family,
    )  # fmt: skip
    return outcome("rotated", issued)
