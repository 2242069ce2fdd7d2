"""The browser console's rows: WebAuthn challenges, approvers' passkeys, and sessions.

A challenge is spent by deleting it: of two requests presenting one challenge,
exactly one deletes the row and goes on.  A session is stored only as the hash
of its token (the token lives in the browser's cookie); its CSRF token is
derived from the session token, so nothing about it is stored either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_encode, length_prefixed
from sealbox.server.store.tables import console_challenges, console_credentials, console_sessions

__all__ = [
    "CSRF_LABEL",
    "SESSION_PREFIX",
    "Challenge",
    "Credential",
    "SessionRow",
    "count_challenges",
    "credentials_of",
    "csrf_for",
    "delete_session",
    "get_credential",
    "get_session",
    "insert_challenge",
    "insert_credential",
    "insert_session",
    "take_challenge",
    "used_credential",
]

#: What a console session token starts with, so a leaked one says what it is.
SESSION_PREFIX = "sbx_cs_"
#: Names the derivation of a session's CSRF token from the session token.
CSRF_LABEL = "sealbox/v1/console/csrf"


def csrf_for(session_token: str) -> str:
    """The session's CSRF token: a one-way function of the session token.

    The page may read it (it is not HttpOnly, it travels in a header), but it
    cannot be turned back into the cookie's token.
    """
    return b64u_encode(hashlib.sha256(length_prefixed(CSRF_LABEL, session_token)).digest())


@dataclass(frozen=True)
class Challenge:
    challenge: str
    purpose: str
    """``setup``, ``signin`` or ``passkey``."""
    approver_id: str | None
    rp_id: str
    expires_at: int


@dataclass(frozen=True)
class Credential:
    id: str
    """base64url credential id."""
    approver_id: str
    sig_pk: str
    """The approver's signing key (text) the passkey was made for; see :func:`sign_in`."""
    public_key: bytes
    sign_count: int
    transports: list[str]
    rp_id: str
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True)
class SessionRow:
    approver_id: str
    created_at: int
    expires_at: int


async def insert_challenge(
    conn: AsyncConnection, vault: str, challenge: Challenge, now: int
) -> None:
    # Challenges nobody came back with are forgotten as new ones are made.
    await conn.execute(
        delete(console_challenges).where(
            console_challenges.c.vault_id == vault, console_challenges.c.expires_at <= now
        )
    )
    await conn.execute(
        console_challenges.insert().values(
            vault_id=vault, challenge=challenge.challenge, purpose=challenge.purpose,
            approver_id=challenge.approver_id, rp_id=challenge.rp_id,
            expires_at=challenge.expires_at,
        )
    )  # fmt: skip


async def count_challenges(conn: AsyncConnection, vault: str, now: int) -> int:
    """How many challenges of ``vault`` are still outstanding."""
    query = select(func.count()).where(
        console_challenges.c.vault_id == vault, console_challenges.c.expires_at > now
    )
    return int((await conn.execute(query)).scalar_one())


async def take_challenge(
    conn: AsyncConnection, vault: str, challenge: str, purpose: str, now: int
) -> Challenge | None:
    """Spend a challenge: the row if it was issued for ``purpose`` and is still fresh, else None.

    The row is deleted whatever it was for: a challenge is presented once.
    """
    where = (console_challenges.c.vault_id == vault, console_challenges.c.challenge == challenge)
    row = (await conn.execute(select(console_challenges).where(*where))).first()
    if row is None:
        return None
    spent = await conn.execute(delete(console_challenges).where(*where))
    if spent.rowcount != 1:  # another request spent it first
        return None
    if row.purpose != purpose or row.expires_at <= now:
        return None
    return Challenge(row.challenge, row.purpose, row.approver_id, row.rp_id, row.expires_at)


def _credential(row: Any) -> Credential:
    return Credential(
        row.id, row.approver_id, row.sig_pk, bytes(row.public_key), int(row.sign_count),
        list(row.transports or []), row.rp_id, row.created_at, row.last_used_at,
    )  # fmt: skip


async def insert_credential(conn: AsyncConnection, vault: str, credential: Credential) -> None:
    await conn.execute(
        console_credentials.insert().values(
            vault_id=vault, id=credential.id, approver_id=credential.approver_id,
            sig_pk=credential.sig_pk, public_key=credential.public_key,
            sign_count=credential.sign_count,
            transports=list(credential.transports), rp_id=credential.rp_id,
            created_at=credential.created_at, last_used_at=credential.last_used_at,
        )
    )  # fmt: skip


async def get_credential(
    conn: AsyncConnection, vault: str, credential_id: str
) -> Credential | None:
    row = (
        await conn.execute(
            select(console_credentials).where(
                console_credentials.c.vault_id == vault, console_credentials.c.id == credential_id
            )
        )
    ).first()
    return None if row is None else _credential(row)


async def credentials_of(
    conn: AsyncConnection, vault: str, approver_id: str
) -> Sequence[Credential]:
    rows = await conn.execute(
        select(console_credentials).where(
            console_credentials.c.vault_id == vault,
            console_credentials.c.approver_id == approver_id,
        )
    )
    return [_credential(row) for row in rows]


async def used_credential(
    conn: AsyncConnection, vault: str, credential_id: str, *, old_count: int, new_count: int,
    now: int,
) -> bool:  # fmt: skip
    """Record a sign-in's signature counter (compare-and-set); False if another use came first."""
    done = await conn.execute(
        update(console_credentials)
        .where(
            console_credentials.c.vault_id == vault,
            console_credentials.c.id == credential_id,
            console_credentials.c.sign_count == old_count,
        )
        .values(sign_count=new_count, last_used_at=now)
    )
    return bool(done.rowcount == 1)


async def insert_session(
    conn: AsyncConnection, vault: str, token: str, approver_id: str, now: int, expires_at: int
) -> None:
    await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
    await conn.execute(
        console_sessions.insert().values(
            hash=sx.token_hash(token), vault_id=vault, approver_id=approver_id,
            created_at=now, expires_at=expires_at,
        )
    )  # fmt: skip


async def get_session(conn: AsyncConnection, vault: str, token: str) -> SessionRow | None:
    """The session of ``token`` in ``vault`` (looked up by hash: no secret is compared here)."""
    row = (
        await conn.execute(
            select(console_sessions).where(
                console_sessions.c.hash == sx.token_hash(token),
                console_sessions.c.vault_id == vault,
            )
        )
    ).first()
    return None if row is None else SessionRow(row.approver_id, row.created_at, row.expires_at)


async def delete_session(conn: AsyncConnection, vault: str, token: str) -> bool:
    done = await conn.execute(
        delete(console_sessions).where(
            console_sessions.c.hash == sx.token_hash(token), console_sessions.c.vault_id == vault
        )
    )
    return bool(done.rowcount == 1)
