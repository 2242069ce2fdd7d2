"""Frozen projects: one row per frozen project of a vault, deleted when it is unfrozen.

Read on every access or store request and on every release (one indexed
lookup by primary key, never cached: a freeze holds from the moment it
commits, on every replica).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import project_freezes

__all__ = ["Freeze", "frozen", "insert", "list_frozen", "lock_projects", "remove"]


@dataclass(frozen=True)
class Freeze:
    """A frozen project."""

    project: str
    frozen_at: int
    frozen_by: str
    """The approver that froze it, or ``relay`` when a canary's release did."""
    cause: str
    """``approver`` or ``canary``."""
    reason: str | None
    request: str | None
    """For a canary: the access request whose release froze the project."""


_FROZEN = select(project_freezes).where(
    project_freezes.c.vault_id == bindparam("vault"),
    project_freezes.c.project.in_(bindparam("projects", expanding=True)),
)


def _freeze(row: Any) -> Freeze:
    return Freeze(row.project, int(row.frozen_at), row.frozen_by, row.cause, row.reason,
                  row.request_id)  # fmt: skip


async def frozen(conn: AsyncConnection, vault: str, projects: Iterable[str]) -> list[Freeze]:
    """Those of ``projects`` that are frozen, by name."""
    wanted = sorted(set(projects))
    if not wanted:
        return []
    rows = await conn.execute(_FROZEN, {"vault": vault, "projects": wanted})
    return sorted((_freeze(r) for r in rows), key=lambda f: f.project)


async def lock_projects(conn: AsyncConnection, vault: str, projects: Iterable[str]) -> None:
    """Serialise freezes and releases of ``projects`` until this transaction ends.

    Without it, on PostgreSQL (read committed) a release whose freeze check ran
    before a freeze committed could commit after it, and a non-canary release
    could miss the freeze a canary's concurrent release makes.  Taken in name
    order, before the audit chain's lock.  On SQLite a write transaction holds
    the database's one write lock from its start, which serialises just as well.
    """
    if conn.dialect.name != "postgresql":
        return
    for project in sorted(set(projects)):
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                           {"k": f"freeze {vault} {project}"})  # fmt: skip


async def list_frozen(conn: AsyncConnection, vault: str) -> list[Freeze]:
    rows = await conn.execute(
        select(project_freezes)
        .where(project_freezes.c.vault_id == vault)
        .order_by(project_freezes.c.project)
    )
    return [_freeze(r) for r in rows]


async def insert(conn: AsyncConnection, vault: str, freeze: Freeze) -> bool:
    """Freeze a project; False if it was frozen already (the first freeze is kept)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {
        "vault_id": vault, "project": freeze.project, "frozen_at": freeze.frozen_at,
        "frozen_by": freeze.frozen_by, "cause": freeze.cause, "reason": freeze.reason,
        "request_id": freeze.request,
    }  # fmt: skip
    done = await conn.execute(
        dialect.insert(project_freezes).values(**values).on_conflict_do_nothing()
    )
    return bool(done.rowcount == 1)


async def remove(conn: AsyncConnection, vault: str, project: str) -> Freeze | None:
    """Unfreeze a project; the freeze that was lifted, or None if it was not frozen.

    One statement (``DELETE … RETURNING``): of two approvers unfreezing at once, one
    lifts the freeze and the other finds nothing to lift.
    """
    row = (
        await conn.execute(
            delete(project_freezes)
            .where(project_freezes.c.vault_id == vault, project_freezes.c.project == project)
            .returning(*project_freezes.c)
        )
    ).first()
    return None if row is None else _freeze(row)
