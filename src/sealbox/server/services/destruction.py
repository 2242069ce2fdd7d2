"""Housekeeping: destroying the items whose policy's destroy date has passed.

Versions and blobs are deleted, a tombstone kept, and the open requests that name a destroyed
item expired (nothing could ever deliver or complete them).  Kept apart from
:mod:`sealbox.server.services.policy_axes` because it wakes requests' owners, which the access
service does, and the access service itself checks the axes.
"""

from __future__ import annotations

import logging
from typing import Any

from sealbox.protocol.state import Event, State, StoreEvent
from sealbox.server.notify import approvers_channel
from sealbox.server.policy import policy_for
from sealbox.server.relay import Relay
from sealbox.server.services.access import wake_owner
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import items as item_store
from sealbox.server.store import policy_axes as store
from sealbox.server.store import requests as request_store

__all__ = ["destroy_due"]

log = logging.getLogger("sealbox.relay")


async def destroy_due(relay: Relay, now: int) -> int:
    """Destroy every item whose policy's destroy date has passed; the number destroyed."""
    async with relay.read() as conn:
        vaults = await store.vaults_destroying(conn, now)
    done = 0
    for vault in vaults:
        done += await _destroy_in(relay, vault, now)
    return done


async def _destroy_in(relay: Relay, vault: str, now: int) -> int:
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        rows = await client_store.policy_rows(conn, vault)
        listed = await item_store.list_items(conn, vault)
    doomed = []
    for item in listed:
        policy = policy_for(item.path, rows, directory)
        if policy.destroy_at is not None and policy.destroy_at <= now:
            doomed.append((item, policy))
    done = 0
    for item, policy in doomed:
        async with relay.tx() as tx:
            if not await store.destroy(tx.conn, vault, item=item.id, path=item.path,
                                       pattern=policy.pattern or "", now=now):  # fmt: skip
                continue
            ended = await _end_requests(tx, vault, item.id, now)
            await audit.append(
                tx.conn, vault=vault, at=now, actor="relay", action="item.destroyed",
                severity="warning", item_id=item.id,
                detail={"path": item.path, "pattern": policy.pattern,
                        "destroy_at": policy.destroy_at, "versions": item.latest_version},
            )  # fmt: skip
            for row in ended:
                await audit.append(
                    tx.conn, vault=vault, at=now, actor="relay", action=f"{row.kind}.expired",
                    client_id=row.client_id, detail={"request": row.id, "destroyed": item.id},
                )  # fmt: skip
        done += 1
        log.info("destroyed item %s of vault %s under its policy", item.id, vault)
    return done


async def _end_requests(tx: Any, vault: str, item: str, now: int) -> list[Any]:
    """Expire the open access and store requests that name a destroyed item (nothing can
    deliver or complete them)."""
    found = await store.open_requests(
        tx.conn,
        vault,
        kinds=("access", "store"),
        states=(State.PENDING.value, State.RELEASED.value),
    )
    ended = []
    for rid, kind, state, detail in found:
        # An access request naming the item, or a store of a new version of it (a store is
        # never completed onto a destroyed item: nothing could ever read it).
        names = (detail or {}).get("items", ()) if kind == "access" else [detail or {}]
        if not any(entry.get("item") == item for entry in names):
            continue
        row = await request_store.get(tx.conn, vault, rid)
        if row is None:  # pragma: no cover - read in this transaction just above
            continue
        event = Event.EXPIRED if kind == "access" else StoreEvent.EXPIRED
        if await request_store.transition(tx.conn, vault, rid, kind, state, event,
                                          now) is None:  # fmt: skip
            continue
        await request_store.drop_releases(tx.conn, vault, rid)
        if kind == "store":
            await item_store.delete_unstored_blobs(tx.conn, vault, row.store.item,
                                                   row.store.version)  # fmt: skip
        ended.append(row)
        wake_owner(tx, row, State.EXPIRED.value)
        tx.wake(approvers_channel(vault), rid)
    return ended
