"""What the policy axes keep: reads per item, releases per item version, destroyed items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import (
    blobs,
    destroyed_items,
    item_reads,
    item_releases,
    item_versions,
    items,
    policies,
    requests,
)

__all__ = [
    "add_reads",
    "count_release",
    "destroy",
    "destroyed",
    "destroyed_at",
    "lock_items",
    "mark_rotation_due",
    "open_requests",
    "purge_reads",
    "read_times",
    "rotation_due",
    "vaults_destroying",
]


def _insert_for(conn: AsyncConnection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


async def destroyed(conn: AsyncConnection, vault: str, item_ids: Iterable[str]) -> dict[str, int]:
    """item id -> when it was destroyed, for those of ``item_ids`` that were."""
    wanted = sorted(set(item_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(destroyed_items.c.item_id, destroyed_items.c.destroyed_at).where(
            destroyed_items.c.vault_id == vault, destroyed_items.c.item_id.in_(wanted)
        )
    )
    return {r.item_id: int(r.destroyed_at) for r in rows}


async def lock_items(conn: AsyncConnection, vault: str, item_ids: Sequence[str]) -> None:
    """Hold the items' rows (PostgreSQL) so two requests cannot both take a cap's last read."""
    if conn.dialect.name != "postgresql" or not item_ids:
        return  # SQLite runs one writing transaction at a time
    await conn.execute(
        select(items.c.id)
        .where(items.c.vault_id == vault, items.c.id.in_(sorted(set(item_ids))))
        .order_by(items.c.id)
        .with_for_update()
    )


async def read_times(conn: AsyncConnection, vault: str, item: str, since: int) -> list[int]:
    """When the item's access requests after ``since`` were made."""
    rows = await conn.execute(
        select(item_reads.c.at).where(
            item_reads.c.vault_id == vault, item_reads.c.item_id == item, item_reads.c.at > since
        )
    )
    return [int(t) for t in rows.scalars()]


async def add_reads(
    conn: AsyncConnection, vault: str, request_id: str, item_ids: Iterable[str], at: int
) -> None:
    values = [{"vault_id": vault, "item_id": i, "request_id": request_id, "at": at}
              for i in sorted(set(item_ids))]  # fmt: skip
    if values:
        await conn.execute(_insert_for(conn)(item_reads).on_conflict_do_nothing(), values)


async def purge_reads(conn: AsyncConnection, before: int) -> int:
    """Forget reads older than any cap's period."""
    done = await conn.execute(delete(item_reads).where(item_reads.c.at < before))
    return int(done.rowcount or 0)


async def count_release(conn: AsyncConnection, vault: str, item: str, version: int) -> int:
    """One more release of this item version; the count after it."""
    insert = _insert_for(conn)(item_releases).values(
        vault_id=vault, item_id=item, version=version, releases=1, rotation_due_at=None
    )
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[item_releases.c.vault_id, item_releases.c.item_id,
                            item_releases.c.version],
            set_={"releases": item_releases.c.releases + 1},
        )
    )  # fmt: skip
    row = await conn.execute(
        select(item_releases.c.releases).where(
            item_releases.c.vault_id == vault, item_releases.c.item_id == item,
            item_releases.c.version == version,
        )
    )  # fmt: skip
    return int(row.scalar_one())


async def mark_rotation_due(
    conn: AsyncConnection, vault: str, item: str, version: int, now: int
) -> bool:
    """Mark the version as due for rotation, compare-and-set: True only the first time."""
    done = await conn.execute(
        update(item_releases)
        .where(
            item_releases.c.vault_id == vault, item_releases.c.item_id == item,
            item_releases.c.version == version, item_releases.c.rotation_due_at.is_(None),
        )
        .values(rotation_due_at=now)
    )  # fmt: skip
    return bool(done.rowcount == 1)


async def rotation_due(
    conn: AsyncConnection, vault: str, latest: Iterable[tuple[str, int]]
) -> dict[str, tuple[int, int]]:
    """item id -> (releases, marked at) for the items whose given (latest) version is due."""
    keys = sorted(set(latest))
    if not keys:
        return {}
    rows = await conn.execute(
        select(item_releases).where(
            item_releases.c.vault_id == vault,
            tuple_(item_releases.c.item_id, item_releases.c.version).in_(keys),
            item_releases.c.rotation_due_at.is_not(None),
        )
    )
    return {r.item_id: (int(r.releases), int(r.rotation_due_at)) for r in rows}


async def destroy(
    conn: AsyncConnection, vault: str, *, item: str, path: str, pattern: str, now: int
) -> bool:
    """Leave a tombstone and delete the item, its versions and its blobs; False if another
    sweeper did it first (the tombstone's insert is the compare-and-set)."""
    done = await conn.execute(
        _insert_for(conn)(destroyed_items)
        .values(vault_id=vault, item_id=item, path=path, pattern=pattern, destroyed_at=now)
        .on_conflict_do_nothing()
    )
    if done.rowcount != 1:
        return False
    await conn.execute(delete(blobs).where(blobs.c.vault_id == vault, blobs.c.item_id == item))
    await conn.execute(
        delete(item_versions).where(
            item_versions.c.vault_id == vault, item_versions.c.item_id == item
        )
    )
    await conn.execute(delete(items).where(items.c.vault_id == vault, items.c.id == item))
    for table in (item_reads, item_releases):
        await conn.execute(delete(table).where(table.c.vault_id == vault, table.c.item_id == item))
    return True


async def destroyed_at(conn: AsyncConnection, vault: str, path: str) -> int | None:
    """When the latest item destroyed at ``path`` was destroyed, if one was."""
    found = await conn.execute(
        select(destroyed_items.c.destroyed_at)
        .where(destroyed_items.c.vault_id == vault, destroyed_items.c.path == path)
        .order_by(destroyed_items.c.destroyed_at.desc())
        .limit(1)
    )
    value = found.scalar()
    return None if value is None else int(value)


async def vaults_destroying(conn: AsyncConnection, now: int) -> list[str]:
    """The vaults with a policy whose destroy date is at or before ``now``."""
    found = await conn.execute(
        select(policies.c.vault_id).where(policies.c.destroy_at <= now).distinct()
    )
    return sorted(found.scalars())


async def open_requests(
    conn: AsyncConnection, vault: str, *, kinds: Sequence[str], states: Sequence[str]
) -> list[tuple[str, Any, str, Any]]:
    """``(id, kind, state, detail)`` of the vault's requests of these kinds in these states."""
    found = await conn.execute(
        select(requests.c.id, requests.c.kind, requests.c.state, requests.c.detail).where(
            requests.c.vault_id == vault, requests.c.kind.in_(kinds), requests.c.state.in_(states)
        )
    )
    return [(r.id, r.kind, r.state, r.detail) for r in found]
