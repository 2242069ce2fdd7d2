"""Agents: requests for an agent client, their answers, and their client secrets (hashed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import agents, clients

__all__ = [
    "AgentRow",
    "count_pending",
    "find",
    "get",
    "insert",
    "is_revoked",
    "list_all",
    "list_pending",
    "purge_unanswered",
    "set_state",
    "taken",
]


@dataclass(frozen=True)
class AgentRow:
    vault: str
    client_id: str
    name: str
    sig_pk: str
    requested_by: str
    scopes: tuple[str, ...]
    state: str
    """``pending``, ``approved``, ``denied`` or ``revoked``."""
    secret_hash: str | None
    certificate: str | None
    answered_by: str | None
    created_at: int
    expires_at: int
    disabled: bool = False
    """The agent's client is disabled (only for approved agents; from the clients table)."""

    def __repr__(self) -> str:
        # The secret's hash stays out of logs and tracebacks too.
        return f"AgentRow(vault={self.vault}, client={self.client_id}, state={self.state})"


def _row(row: Any) -> AgentRow:
    return AgentRow(
        row.vault_id, row.client_id, row.name, row.sig_pk, row.requested_by,
        tuple(str(s) for s in row.scopes), row.state, row.secret_hash, row.certificate,
        row.answered_by, row.created_at, row.expires_at, bool(row.disabled),
    )  # fmt: skip


def _select() -> Any:
    return select(agents, func.coalesce(clients.c.disabled, False).label("disabled")).join(
        clients,
        (clients.c.vault_id == agents.c.vault_id) & (clients.c.id == agents.c.client_id),
        isouter=True,
    )


async def insert(
    conn: AsyncConnection, *, vault: str, client_id: str, name: str, sig_pk: str,
    requested_by: str, scopes: Sequence[str], secret_hash: str | None, now: int, expires_at: int,
) -> None:  # fmt: skip
    await conn.execute(
        agents.insert().values(
            vault_id=vault, client_id=client_id, name=name, sig_pk=sig_pk,
            requested_by=requested_by, scopes=list(scopes), state="pending",
            secret_hash=secret_hash, certificate=None, answered_by=None, created_at=now,
            expires_at=expires_at,
        )
    )  # fmt: skip


async def get(conn: AsyncConnection, vault: str, client_id: str) -> AgentRow | None:
    query = _select().where(agents.c.vault_id == vault, agents.c.client_id == client_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def find(conn: AsyncConnection, client_id: str) -> AgentRow | None:
    """The agent with OAuth ``client_id``, whatever its vault (client ids are unique here)."""
    row = (await conn.execute(_select().where(agents.c.client_id == client_id))).first()
    return None if row is None else _row(row)


async def taken(conn: AsyncConnection, client_id: str) -> bool:
    query = select(agents.c.client_id).where(agents.c.client_id == client_id)
    return (await conn.execute(query)).first() is not None


async def list_all(conn: AsyncConnection, vault: str) -> list[AgentRow]:
    query = _select().where(agents.c.vault_id == vault)
    rows = await conn.execute(query.order_by(agents.c.created_at, agents.c.client_id))
    return [_row(row) for row in rows]


async def list_pending(conn: AsyncConnection, vault: str, now: int) -> list[AgentRow]:
    query = _select().where(
        agents.c.vault_id == vault, agents.c.state == "pending", agents.c.expires_at > now
    )
    rows = await conn.execute(query.order_by(agents.c.created_at, agents.c.client_id))
    return [_row(row) for row in rows]


async def count_pending(conn: AsyncConnection, vault: str, now: int) -> int:
    query = select(func.count()).where(
        agents.c.vault_id == vault, agents.c.state == "pending", agents.c.expires_at > now
    )
    return int((await conn.execute(query)).scalar_one())


async def set_state(
    conn: AsyncConnection, row: AgentRow, state: str, *, answered_by: str | None = None,
    certificate: str | None = None, drop_secret: bool = False,
) -> bool:  # fmt: skip
    """Move ``row`` from the state it was read in to ``state``, compare-and-set.

    True for exactly one of two approvers answering at once.
    """
    values: dict[str, Any] = {"state": state}
    if answered_by is not None:
        values["answered_by"] = answered_by
    if certificate is not None:
        values["certificate"] = certificate
    if drop_secret:
        values["secret_hash"] = None
    done = await conn.execute(
        update(agents)
        .where(
            agents.c.vault_id == row.vault,
            agents.c.client_id == row.client_id,
            agents.c.state == row.state,
        )
        .values(**values)
    )
    return bool(done.rowcount == 1)


async def is_revoked(conn: AsyncConnection, vault: str, client_id: str) -> bool:
    """Whether ``client_id`` is an agent revoked for good (its client may never be enabled)."""
    query = select(agents.c.state).where(agents.c.vault_id == vault,
                                         agents.c.client_id == client_id)  # fmt: skip
    return (await conn.execute(query)).scalar_one_or_none() == "revoked"


async def purge_unanswered(conn: AsyncConnection, *, before: int) -> int:
    """Forget agent requests that expired waiting, or were denied, before ``before``.

    Approved and revoked agents are kept: a revoked agent's row is what keeps its client
    from ever being enabled again.
    """
    unanswered = agents.c.state.in_(("pending", "denied")) & (agents.c.expires_at < before)
    done = await conn.execute(delete(agents).where(unanswered))
    return int(done.rowcount or 0)
