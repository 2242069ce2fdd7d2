"""Bootstrap tokens (stored only as hashes) and the machine registrations they start.

A token is spent by a compare-and-set (``UPDATE … WHERE used_at IS NULL``): of
two machines presenting one token at once, exactly one registers.  A spent
token's row is kept until it is purged, so a second use can be told apart from
an unknown token and audited as what it is: someone else holds the token.

Every change of a registration's state goes through
:data:`sealbox.protocol.state.MACHINE_REGISTRATION`, compare-and-set.  No row is
written as expired: a pending registration past ``expires_at`` *is* expired
when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.protocol.state import MACHINE_REGISTRATION, MachineEvent, MachineState
from sealbox.server.store.tables import bootstrap_tokens, machine_registrations

__all__ = [
    "RegistrationRow",
    "TokenRow",
    "advance",
    "count_pending",
    "find_token",
    "get_registration",
    "insert_registration",
    "insert_token",
    "list_pending",
    "purge",
    "spend_token",
    "user_code_taken",
]


@dataclass(frozen=True)
class TokenRow:
    hash: str
    """The token's labelled hash (the token itself is never stored)."""
    vault: str
    name: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    created_by: str
    created_at: int
    expires_at: int
    used_at: int | None
    used_by: str | None

    @property
    def id(self) -> str:
        """A name for the token in the audit log that reveals nothing of it."""
        return self.hash[:16]


@dataclass(frozen=True)
class RegistrationRow:
    vault: str
    client_id: str
    name: str
    """What the machine calls itself (the token's name unless it gave another)."""
    token_name: str
    sig_pk: str
    user_code: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    token_created_by: str
    state: MachineState
    certificate: str | None
    source_ip: str | None
    created_at: int
    expires_at: int

    def expired(self, now: int) -> bool:
        return self.expires_at <= now


def _token(row: Any) -> TokenRow:
    return TokenRow(
        row.hash, row.vault_id, row.name, tuple(row.grants), tuple(row.scopes), row.created_by,
        row.created_at, row.expires_at, row.used_at, row.used_by,
    )  # fmt: skip


def _registration(row: Any) -> RegistrationRow:
    return RegistrationRow(
        row.vault_id, row.client_id, row.name, row.token_name, row.sig_pk, row.user_code,
        tuple(row.grants), tuple(row.scopes), row.token_created_by, MachineState(row.state),
        row.certificate, row.source_ip, row.created_at, row.expires_at,
    )  # fmt: skip


# --- tokens ------------------------------------------------------------------------------------


async def insert_token(
    conn: AsyncConnection, *, token: str, vault: str, name: str, grants: Sequence[str],
    scopes: Sequence[str], created_by: str, now: int, expires_at: int,
) -> str:  # fmt: skip
    """Store a new token by its hash; return the hash."""
    digest = sx.token_hash(token)
    await conn.execute(
        bootstrap_tokens.insert().values(
            hash=digest, vault_id=vault, name=name, grants=list(grants), scopes=list(scopes),
            created_by=created_by, created_at=now, expires_at=expires_at, used_at=None,
            used_by=None,
        )
    )  # fmt: skip
    return digest


async def find_token(conn: AsyncConnection, token: str) -> TokenRow | None:
    """The row of ``token`` (any vault), looked up by its hash: the database compares."""
    row = (
        await conn.execute(
            select(bootstrap_tokens).where(bootstrap_tokens.c.hash == sx.token_hash(token))
        )
    ).first()
    return None if row is None else _token(row)


async def spend_token(conn: AsyncConnection, token: TokenRow, *, client_id: str, now: int) -> bool:
    """Mark the token used by ``client_id``; True for exactly one of concurrent callers."""
    done = await conn.execute(
        update(bootstrap_tokens)
        .where(bootstrap_tokens.c.hash == token.hash, bootstrap_tokens.c.used_at.is_(None))
        .values(used_at=now, used_by=client_id)
    )
    return bool(done.rowcount == 1)


# --- registrations -----------------------------------------------------------------------------


async def insert_registration(
    conn: AsyncConnection, *, vault: str, client_id: str, name: str, token: TokenRow,
    sig_pk: str, user_code: str, source_ip: str | None, now: int, expires_at: int,
) -> None:  # fmt: skip
    """Store a registration, pending (its one initial state), with what its token asked for."""
    await conn.execute(
        machine_registrations.insert().values(
            vault_id=vault, client_id=client_id, name=name, token_name=token.name, sig_pk=sig_pk,
            user_code=user_code, grants=list(token.grants), scopes=list(token.scopes),
            token_created_by=token.created_by, state=MachineState.PENDING.value,
            certificate=None, source_ip=source_ip, created_at=now, expires_at=expires_at,
        )
    )  # fmt: skip


async def get_registration(
    conn: AsyncConnection, vault: str, client_id: str, *, lock: bool = False
) -> RegistrationRow | None:
    query = select(machine_registrations).where(
        machine_registrations.c.vault_id == vault, machine_registrations.c.client_id == client_id
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _registration(row)


async def user_code_taken(conn: AsyncConnection, vault: str, user_code: str) -> bool:
    row = (
        await conn.execute(
            select(machine_registrations.c.client_id).where(
                machine_registrations.c.vault_id == vault,
                machine_registrations.c.user_code == user_code,
            )
        )
    ).first()
    return row is not None


def _waiting(vault: str, now: int) -> Any:
    return (
        (machine_registrations.c.vault_id == vault)
        & (machine_registrations.c.state == MachineState.PENDING.value)
        & (machine_registrations.c.expires_at > now)
    )


async def count_pending(conn: AsyncConnection, vault: str, now: int) -> int:
    count = await conn.execute(
        select(func.count()).select_from(machine_registrations).where(_waiting(vault, now))
    )
    return int(count.scalar_one())


async def list_pending(conn: AsyncConnection, vault: str, now: int) -> list[RegistrationRow]:
    """The vault's registrations waiting for an approver, soonest to expire first."""
    rows = await conn.execute(
        select(machine_registrations)
        .where(_waiting(vault, now))
        .order_by(machine_registrations.c.expires_at, machine_registrations.c.client_id)
    )
    return [_registration(row) for row in rows]


async def advance(
    conn: AsyncConnection, row: RegistrationRow, event: MachineEvent, *,
    certificate: str | None = None,
) -> MachineState | None:  # fmt: skip
    """Apply ``event`` to the registration as ``row`` saw it, compare-and-set.

    Returns the new state, or ``None`` if someone else answered first (nothing
    was written).
    """
    new = MACHINE_REGISTRATION.next(row.state, event)
    values: dict[str, str] = {"state": new.value}
    if certificate is not None:
        values["certificate"] = certificate
    done = await conn.execute(
        update(machine_registrations)
        .where(
            machine_registrations.c.vault_id == row.vault,
            machine_registrations.c.client_id == row.client_id,
            machine_registrations.c.state == row.state.value,
        )
        .values(**values)
    )
    return new if done.rowcount == 1 else None


async def purge(conn: AsyncConnection, vault: str | None, *, before: int) -> int:
    """Forget the tokens and registrations that expired before ``before`` (of ``vault``, or of
    every vault)."""
    token_rows = bootstrap_tokens.c.expires_at < before
    registration_rows = machine_registrations.c.expires_at < before
    if vault is not None:
        token_rows &= bootstrap_tokens.c.vault_id == vault
        registration_rows &= machine_registrations.c.vault_id == vault
    tokens = await conn.execute(delete(bootstrap_tokens).where(token_rows))
    registrations = await conn.execute(delete(machine_registrations).where(registration_rows))
    return int(tokens.rowcount or 0) + int(registrations.rowcount or 0)
