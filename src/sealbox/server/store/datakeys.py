"""Per-project data keys, stored only wrapped by the relay's master key."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import data_keys

__all__ = ["all_wrapped", "insert_if_absent", "rewrap", "wrapped"]


async def wrapped(conn: AsyncConnection, vault: str, project: str) -> bytes | None:
    row = (
        await conn.execute(
            select(data_keys.c.wrapped).where(
                data_keys.c.vault_id == vault, data_keys.c.project == project
            )
        )
    ).first()
    return None if row is None else bytes(row.wrapped)


async def insert_if_absent(
    conn: AsyncConnection, vault: str, project: str, kek_id: str, wrapped_key: bytes
) -> None:
    """Store a wrapped key unless the project has one (stored concurrently elsewhere)."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    await conn.execute(
        insert(data_keys)
        .values(vault_id=vault, project=project, kek_id=kek_id, wrapped=wrapped_key)
        .on_conflict_do_nothing()
    )


async def all_wrapped(conn: AsyncConnection) -> list[tuple[str, str, bytes]]:
    """(vault, project, wrapped key) of every data key."""
    rows = await conn.execute(
        select(data_keys.c.vault_id, data_keys.c.project, data_keys.c.wrapped)
    )
    return [(r.vault_id, r.project, bytes(r.wrapped)) for r in rows]


async def rewrap(
    conn: AsyncConnection, vault: str, project: str, kek_id: str, wrapped_key: bytes
) -> None:
    await conn.execute(
        update(data_keys)
        .where(data_keys.c.vault_id == vault, data_keys.c.project == project)
        .values(wrapped=wrapped_key, kek_id=kek_id)
    )
