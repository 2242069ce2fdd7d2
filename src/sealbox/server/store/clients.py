"""Clients (certified keys), their grants, and the vault's release policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.policy import ClientAccess
from sealbox.server.store import members
from sealbox.server.store.tables import clients, grants, policies

__all__ = [
    "ClientRow",
    "access",
    "add_grant",
    "delete_policy",
    "get",
    "grant_patterns",
    "insert",
    "list_all",
    "policy_rows",
    "put_policy",
    "remove_grant",
    "replace_certificate",
    "set_disabled",
]


@dataclass(frozen=True)
class ClientRow:
    vault: str
    id: str
    kind: str
    """``human``, ``agent`` or ``machine``."""
    name: str
    sig_pk: str
    certificate: str
    enrollment: str | None
    disabled: bool
    created_at: int
    limits: tuple[tuple[str, ...], ...] = ()
    """The item-path limits of its signed scopes and enrollment (empty: none)."""


# Read on every request of a client: built once, with bound parameters.
_GET = select(clients).where(
    clients.c.vault_id == bindparam("vault"), clients.c.id == bindparam("client")
)
_GRANTS = (
    select(grants.c.pattern)
    .where(grants.c.vault_id == bindparam("vault"), grants.c.client_id == bindparam("client"))
    .order_by(grants.c.pattern)
)
_POLICIES = (
    select(policies).where(policies.c.vault_id == bindparam("vault")).order_by(policies.c.pattern)
)


def _client(row: Any) -> ClientRow:
    return ClientRow(
        row.vault_id, row.id, row.kind, row.name, row.sig_pk, row.certificate, row.enrollment,
        bool(row.disabled), row.created_at, _limits(row.limits),
    )  # fmt: skip


def _limits(value: Any) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(str(p) for p in patterns) for patterns in value or ())


def _insert_for(conn: AsyncConnection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


async def get(conn: AsyncConnection, vault: str, client_id: str) -> ClientRow | None:
    row = (await conn.execute(_GET, {"vault": vault, "client": client_id})).first()
    return None if row is None else _client(row)


async def list_all(conn: AsyncConnection, vault: str) -> list[ClientRow]:
    rows = await conn.execute(
        select(clients)
        .where(clients.c.vault_id == vault)
        .order_by(clients.c.created_at, clients.c.id)
    )
    return [_client(row) for row in rows]


async def insert(
    conn: AsyncConnection, *, vault: str, client_id: str, kind: str, name: str, sig_pk: str,
    certificate: str, now: int, enrollment: str | None = None,
    limits: Sequence[Sequence[str]] = (),
) -> bool:  # fmt: skip
    """Register a client; False (and nothing written) if the id is taken in this vault."""
    done = await conn.execute(
        _insert_for(conn)(clients)
        .values(
            vault_id=vault, id=client_id, kind=kind, name=name, sig_pk=sig_pk,
            certificate=certificate, enrollment=enrollment, disabled=False, created_at=now,
            limits=[list(patterns) for patterns in limits],
        )
        .on_conflict_do_nothing()
    )  # fmt: skip
    return bool(done.rowcount == 1)


async def replace_certificate(
    conn: AsyncConnection, row: ClientRow, *, certificate: str,
    limits: Sequence[Sequence[str]],
) -> bool:  # fmt: skip
    """Store a new certificate for the client as ``row`` saw it (same key), compare-and-set.

    False (nothing written) if its certificate changed meanwhile.
    """
    done = await conn.execute(
        update(clients)
        .where(
            clients.c.vault_id == row.vault,
            clients.c.id == row.id,
            clients.c.sig_pk == row.sig_pk,
            clients.c.certificate == row.certificate,
        )
        .values(certificate=certificate, limits=[list(patterns) for patterns in limits])
    )
    return bool(done.rowcount == 1)


async def set_disabled(conn: AsyncConnection, vault: str, client_id: str, disabled: bool) -> bool:
    """Change the client's flag; True if it changed."""
    done = await conn.execute(
        update(clients)
        .where(
            clients.c.vault_id == vault,
            clients.c.id == client_id,
            clients.c.disabled.is_(not disabled),
        )
        .values(disabled=disabled)
    )
    return bool(done.rowcount == 1)


# --- grants ------------------------------------------------------------------------------------


async def grant_patterns(conn: AsyncConnection, vault: str, client_id: str) -> list[str]:
    """The item-path patterns a client may ask for, sorted."""
    rows = await conn.execute(_GRANTS, {"vault": vault, "client": client_id})
    return list(rows.scalars())


async def access(conn: AsyncConnection, vault: str, client_id: str) -> ClientAccess:
    """What item paths a client may name: its grants, within its certificate's limits.

    Every decision about a client and an item path goes through this, so no
    route can forget the signed limits (stage isolation) while checking grants.
    """
    row = await get(conn, vault, client_id)
    patterns = await grant_patterns(conn, vault, client_id)
    projects = frozenset(await members.roles(conn, vault, client_id))
    return ClientAccess(
        tuple(patterns), () if row is None else row.limits, row is not None, projects
    )


async def add_grant(
    conn: AsyncConnection, vault: str, client_id: str, pattern: str, now: int
) -> bool:
    """True if added, False if the client already had it."""
    done = await conn.execute(
        _insert_for(conn)(grants)
        .values(vault_id=vault, client_id=client_id, pattern=pattern, created_at=now)
        .on_conflict_do_nothing()
    )
    return bool(done.rowcount == 1)


async def remove_grant(conn: AsyncConnection, vault: str, client_id: str, pattern: str) -> bool:
    done = await conn.execute(
        delete(grants).where(
            grants.c.vault_id == vault, grants.c.client_id == client_id, grants.c.pattern == pattern
        )
    )
    return bool(done.rowcount)


# --- policies ----------------------------------------------------------------------------------


async def policy_rows(conn: AsyncConnection, vault: str) -> list[Mapping[str, Any]]:
    """The vault's policy rows, as mappings for :func:`sealbox.server.policy.policy_for`."""
    rows = await conn.execute(_POLICIES, {"vault": vault})
    return [dict(row) for row in rows.mappings()]


async def put_policy(
    conn: AsyncConnection, vault: str, *, pattern: str, approvers: Sequence[str], threshold: int,
    expiry_seconds: int, max_cache_seconds: int, store_needs_approval: bool,
    cidrs: Sequence[str] = (), axes: Mapping[str, Any] | None = None,
) -> None:  # fmt: skip
    """Create or replace the policy for ``pattern``.

    ``axes``: the further columns (hours, max_reads, cosigner, destroy_at, rotate_after,
    statement); a policy replaced without them has none.
    """
    values = {
        "pattern": pattern, "approvers": list(approvers), "threshold": threshold,
        "expiry_seconds": expiry_seconds, "max_cache_seconds": max_cache_seconds,
        "store_needs_approval": store_needs_approval, "cidrs": list(cidrs),
        "hours": [], "max_reads": None, "cosigner": None, "destroy_at": None,
        "rotate_after": None, "statement": None, **(axes or {}),
    }  # fmt: skip
    await conn.execute(
        _insert_for(conn)(policies)
        .values(vault_id=vault, **values)
        .on_conflict_do_update(
            index_elements=[policies.c.vault_id, policies.c.pattern],
            set_={k: v for k, v in values.items() if k != "pattern"},
        )
    )


async def delete_policy(conn: AsyncConnection, vault: str, pattern: str) -> bool:
    done = await conn.execute(
        delete(policies).where(policies.c.vault_id == vault, policies.c.pattern == pattern)
    )
    return bool(done.rowcount)
