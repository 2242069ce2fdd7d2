"""Items, their versions (each with its approver-signed manifest), and their blobs.

Blobs (field ciphertexts, holder ``""``; wrapped shares, holder = approver id)
are sealed at rest under the project's data key with their row identity as
aad (:mod:`sealbox.server.atrest`).  A pending store request's blobs live at
the (item, version) slot they will have once stored, with no ``item_versions``
row yet: nothing serves them as an item version until a manifest makes them
one, and the slot being taken is what refuses a second store of the same
version while one is pending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.errors import Conflict
from sealbox.server.store.tables import blobs, item_versions, items

__all__ = [
    "ItemRow",
    "Sealer",
    "VersionRow",
    "delete_unstored_blobs",
    "get",
    "get_by_path",
    "insert_version",
    "list_items",
    "manifests",
    "read_blobs",
    "version",
    "versions",
    "write_blobs",
]

#: Shown to a client whose store waits on a version slot held by another.
RETRY_HINT = "Fetch the item's versions again and retry with the next version."

#: ``(data, vault, item, version, holder, field) -> sealed or opened bytes``: the at-rest layer.
Sealer = Callable[[bytes, str, str, int, str, str], bytes]


@dataclass(frozen=True)
class ItemRow:
    vault: str
    id: str
    path: str
    type: str
    latest_version: int
    created_at: int


@dataclass(frozen=True)
class VersionRow:
    version: int
    manifest: str
    manifest_hash: str
    created_at: int


# Built once with bound parameters (building costs more CPU than running them).
_V: Any = bindparam("vault")
_ITEMS_BY_ID = select(items).where(
    items.c.vault_id == _V, items.c.id.in_(bindparam("ids", expanding=True))
)
_VERSIONS_BY_KEY = select(item_versions).where(
    item_versions.c.vault_id == _V,
    tuple_(item_versions.c.item_id, item_versions.c.version).in_(bindparam("keys", expanding=True)),
)


def _blobs_statement(holders: bool, fields: bool) -> Any:
    query = select(blobs).where(
        blobs.c.vault_id == _V,
        blobs.c.item_id == bindparam("item"),
        blobs.c.version == bindparam("version"),
    )
    if holders:
        query = query.where(blobs.c.holder.in_(bindparam("holders", expanding=True)))
    if fields:
        query = query.where(blobs.c.field.in_(bindparam("fields", expanding=True)))
    return query


_BLOBS = {(h, f): _blobs_statement(h, f) for h in (False, True) for f in (False, True)}


def _item(row: Any) -> ItemRow:
    return ItemRow(row.vault_id, row.id, row.path, row.type, row.latest_version, row.created_at)


async def get(conn: AsyncConnection, vault: str, item: str) -> ItemRow | None:
    row = (
        await conn.execute(select(items).where(items.c.vault_id == vault, items.c.id == item))
    ).first()
    return None if row is None else _item(row)


async def get_by_path(conn: AsyncConnection, vault: str, path: str) -> ItemRow | None:
    row = (
        await conn.execute(select(items).where(items.c.vault_id == vault, items.c.path == path))
    ).first()
    return None if row is None else _item(row)


async def list_items(conn: AsyncConnection, vault: str, path: str | None = None) -> list[ItemRow]:
    query = select(items).where(items.c.vault_id == vault).order_by(items.c.path)
    if path is not None:
        query = query.where(items.c.path == path)
    return [_item(row) for row in await conn.execute(query)]


async def versions(conn: AsyncConnection, vault: str, item: str) -> list[VersionRow]:
    rows = await conn.execute(
        select(item_versions)
        .where(item_versions.c.vault_id == vault, item_versions.c.item_id == item)
        .order_by(item_versions.c.version)
    )
    return [VersionRow(r.version, r.manifest, r.manifest_hash, r.created_at) for r in rows]


async def version(conn: AsyncConnection, vault: str, item: str, number: int) -> VersionRow | None:
    row = (
        await conn.execute(
            select(item_versions).where(
                item_versions.c.vault_id == vault,
                item_versions.c.item_id == item,
                item_versions.c.version == number,
            )
        )
    ).first()
    return None if row is None else VersionRow(
        row.version, row.manifest, row.manifest_hash, row.created_at
    )  # fmt: skip


async def manifests(
    conn: AsyncConnection, vault: str, wanted: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], VersionRow]:
    """(item, version) -> its stored version, for every one of ``wanted`` that exists: one query."""
    keys = sorted(set(wanted))
    if not keys:
        return {}
    rows = await conn.execute(_VERSIONS_BY_KEY, {"vault": vault, "keys": keys})
    return {
        (r.item_id, r.version): VersionRow(r.version, r.manifest, r.manifest_hash, r.created_at)
        for r in rows
    }


async def items_with_latest(
    conn: AsyncConnection, vault: str, ids: Iterable[str]
) -> dict[str, ItemRow]:
    """id -> item row, for every one of ``ids`` that exists: one query."""
    rows = await conn.execute(_ITEMS_BY_ID, {"vault": vault, "ids": sorted(set(ids))})
    return {row.id: _item(row) for row in rows}


async def insert_version(
    conn: AsyncConnection, vault: str, *, item: str, path: str, type: str, version: int,
    manifest: str, manifest_hash: str, now: int,
) -> None:  # fmt: skip
    """Make a version the item's latest, atomically; 409 if another store got there first."""
    conflict = Conflict(
        "version_conflict", f"another store of {path} version {version} came first", RETRY_HINT
    )
    try:
        if version == 1:
            await conn.execute(
                items.insert().values(
                    vault_id=vault, id=item, path=path, type=type, latest_version=1,
                    created_at=now,
                )
            )  # fmt: skip
        else:
            moved = await conn.execute(
                update(items)
                .where(
                    items.c.vault_id == vault,
                    items.c.id == item,
                    items.c.path == path,
                    items.c.latest_version == version - 1,
                )
                .values(latest_version=version, type=type)
            )
            if moved.rowcount != 1:
                raise conflict
        await conn.execute(
            item_versions.insert().values(
                vault_id=vault, item_id=item, version=version, manifest=manifest,
                manifest_hash=manifest_hash, created_at=now,
            )
        )  # fmt: skip
    except IntegrityError:
        raise conflict from None


# --- blobs ---------------------------------------------------------------------------------------


async def write_blobs(
    conn: AsyncConnection,
    seal: Sealer,
    *,
    vault: str,
    item: str,
    version: int,
    ciphertexts: Mapping[str, bytes],
    wraps: Mapping[str, Mapping[str, bytes]],
) -> None:
    """Insert a version's blobs, sealed at rest; a taken slot is a conflict (another store)."""
    held = [("", name, data) for name, data in ciphertexts.items()] + [
        (holder, name, data) for holder, fields in wraps.items() for name, data in fields.items()
    ]
    rows = [
        {"vault_id": vault, "item_id": item, "version": version, "holder": holder, "field": name,
         "data": seal(data, vault, item, version, holder, name)}
        for holder, name, data in held
    ]  # fmt: skip
    try:
        await conn.execute(blobs.insert(), rows)
    except IntegrityError:
        raise Conflict(
            "version_taken", f"another store of version {version} of this item came first",
            RETRY_HINT,
        ) from None  # fmt: skip


async def read_blobs(
    conn: AsyncConnection,
    open_: Sealer,
    *,
    vault: str,
    item: str,
    version: int,
    holders: tuple[str, ...] | None = None,
    fields: tuple[str, ...] | None = None,
) -> dict[str, dict[str, bytes]]:
    """holder -> field -> blob, opened from the at-rest layer (holder ``""``: ciphertexts)."""
    query = _BLOBS[(holders is not None, fields is not None)]
    params = {"vault": vault, "item": item, "version": version,
              "holders": list(holders or ()), "fields": list(fields or ())}  # fmt: skip
    out: dict[str, dict[str, bytes]] = {}
    for row in await conn.execute(query, params):
        out.setdefault(row.holder, {})[row.field] = open_(
            row.data, vault, item, version, row.holder, row.field
        )
    return out


async def delete_unstored_blobs(conn: AsyncConnection, vault: str, item: str, version: int) -> None:
    """Delete a waiting upload's blobs (its store request was denied or expired).

    The slot is that request's alone (a second upload to it is refused), and
    the guard on ``item_versions`` keeps a stored version's blobs whatever happens.
    """
    stored = exists().where(
        item_versions.c.vault_id == vault,
        item_versions.c.item_id == item,
        item_versions.c.version == version,
    )
    await conn.execute(
        delete(blobs).where(
            blobs.c.vault_id == vault, blobs.c.item_id == item, blobs.c.version == version, ~stored
        )
    )
