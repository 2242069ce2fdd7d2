"""The audit log: append-only (database triggers refuse UPDATE and DELETE), hash-chained.

Each event's hash covers the previous event's hash and every field of the
event, so deleting or editing an event breaks the chain from there on; an
approver-signed checkpoint of a head makes truncation detectable too.  An
event is written in the same transaction as the operation it records: if the
audit write fails, the operation fails.  No secret material enters an event:
callers pass ids, paths, field names, codes and counts only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.audit import GENESIS as _GENESIS
from sealbox.protocol.audit import event_hash
from sealbox.protocol.severities import SEVERITIES as SEVERITY_ORDER
from sealbox.server.store import alerts
from sealbox.server.store.tables import audit_events

__all__ = [
    "AUDITED",
    "GENESIS",
    "HEADS",
    "HEAD_CACHE",
    "SEVERITY_ORDER",
    "Event",
    "Filter",
    "Heads",
    "append",
    "event_hash",
    "events",
    "head",
    "last",
    "latest",
    "one_snapshot",
    "verify_chain",
]

GENESIS = _GENESIS
#: Connection-info key: the vaults that got audit events in the current transaction.
AUDITED = "sealbox_audited"
#: Connection-info key: the chain heads this transaction wrote, applied once it commits.
HEADS = "sealbox_audit_heads"
#: Connection-info key: the process's :class:`Heads` cache, set by ``Relay.tx``.
HEAD_CACHE = "sealbox_audit_head_cache"


class Heads:
    """The last event (seq, hash) of each vault's chain, as this process last wrote or read it.

    Appending then needs no read of the chain's head.  The cache may be stale
    (another replica appended): the insert of ``seq + 1`` then finds its slot
    taken (``ON CONFLICT DO NOTHING`` inserts nothing), and the append reads
    the real head and tries again, in the same transaction.  A head is taken
    into the cache only after its transaction committed (``Relay.tx``), so a
    rolled-back append never leaves a head that does not exist.
    """

    def __init__(self) -> None:
        self._heads: dict[str, tuple[int, str]] = {}

    def get(self, vault: str) -> tuple[int, str] | None:
        return self._heads.get(vault)

    def committed(self, written: dict[str, tuple[int, str]]) -> None:
        self._heads.update(written)

    def forget(self, vaults: set[str] | None = None) -> None:
        if vaults is None:
            self._heads.clear()
        for vault in vaults or ():
            self._heads.pop(vault, None)


SEVERITIES = frozenset(SEVERITY_ORDER)


#: Built once: ``ON CONFLICT DO NOTHING`` finds a stale cached head without aborting the
#: transaction (see :class:`Heads`).
_APPEND = {
    "sqlite": sqlite.insert(audit_events).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(audit_events).on_conflict_do_nothing(),
}


async def _read_head(conn: AsyncConnection, vault: str) -> tuple[int, str]:
    last = (
        await conn.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .where(audit_events.c.vault_id == vault)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


async def append(
    conn: AsyncConnection,
    *,
    heads: Heads | None = None,
    vault: str,
    at: int,
    actor: str,
    action: str,
    severity: str = "info",
    client_id: str | None = None,
    item_id: str | None = None,
    source_ip: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one event in the caller's transaction; return its sequence number.

    With ``heads``, the head this transaction last appended (or the cached one)
    is used without reading it back; see :class:`Heads`.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    written: dict[str, tuple[int, str]] = conn.info.setdefault(HEADS, {})
    heads = heads if heads is not None else conn.info.get(HEAD_CACHE)
    if conn.dialect.name == "postgresql" and vault not in written:
        # Serialise appends per vault across replicas: the chain has one head.
        # Taken last in a transaction (callers audit after their row changes), so
        # every writer takes its locks in the same order.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:v))"), {"v": vault})
    known = written.get(vault) or (heads.get(vault) if heads is not None else None)
    for _attempt in range(2):
        last_seq, prev = known if known is not None else await _read_head(conn, vault)
        row: dict[str, Any] = {
            "vault_id": vault, "seq": last_seq + 1, "at": at, "actor": actor, "action": action,
            "severity": severity, "client_id": client_id, "item_id": item_id,
            "source_ip": source_ip, "detail": dict(detail or {}),
        }  # fmt: skip
        row["prev_hash"] = prev
        row["hash"] = event_hash(prev, row)
        done = await conn.execute(_APPEND[conn.dialect.name], row)
        if done.rowcount == 1:
            break
        known = None  # the cached head was stale: read the real one
    else:  # pragma: no cover - the head was read under the chain's lock
        raise RuntimeError("the audit chain's head moved under its lock")
    written[vault] = (row["seq"], row["hash"])
    # The event's alerts, queued in its own transaction: committed together or not at all.
    await alerts.enqueue(conn, row)
    # Relay.tx() wakes the vault's live audit stream once this commits.
    conn.info.setdefault(AUDITED, set()).add(vault)
    return int(row["seq"])


#: Rows walked between turns given to the rest of the event loop.
YIELD_EVERY = 500


async def verify_chain(conn: AsyncConnection, vault: str) -> int:
    """Recompute the chain; return the number of events, raise ValueError at the first break."""
    prev = GENESIS
    count = 0
    result = await conn.stream(
        select(audit_events).where(audit_events.c.vault_id == vault).order_by(audit_events.c.seq)
    )
    async for row in result.mappings():
        count += 1
        if (
            row["seq"] != count
            or row["prev_hash"] != prev
            or event_hash(prev, dict(row)) != row["hash"]
        ):
            raise ValueError(f"audit chain breaks at event {row['seq']}")
        prev = row["hash"]
        if count % YIELD_EVERY == 0:
            # SQLite answers inline (store.engine): give waiting requests a turn.
            await asyncio.sleep(0)
    return count


async def head(conn: AsyncConnection, vault: str) -> int:
    return int(
        (
            await conn.execute(
                select(func.coalesce(func.max(audit_events.c.seq), 0)).where(
                    audit_events.c.vault_id == vault
                )
            )
        ).scalar_one()
    )


# --- reading the log ---------------------------------------------------------------------------

#: Severities, least to most severe; a minimum keeps its level and those above.


@dataclass(frozen=True)
class Event:
    """One audit event as stored (fields in the order every reader shows them)."""

    seq: int
    at: int
    actor: str
    action: str
    severity: str
    client_id: str | None
    item_id: str | None
    source_ip: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Filter:
    """What to select events on; every criterion given must match."""

    action: str | None = None
    """An action, or a prefix ending in ``*`` (matched literally, ``%`` and ``_`` included)."""
    actor: str | None = None
    client_id: str | None = None
    item_id: str | None = None
    severity: str | None = None
    """The minimum severity, see :data:`SEVERITY_ORDER`."""
    since: int | None = None
    """Events at or after this time (unix seconds)."""
    until: int | None = None
    """Events before this time (unix seconds)."""


def _where(query: Select[Any], vault: str, f: Filter, after: int, upto: int) -> Select[Any]:
    c = audit_events.c
    query = query.where(c.vault_id == vault, c.seq > after, c.seq <= upto)
    if f.action is not None:
        if f.action.endswith("*"):
            query = query.where(c.action.startswith(f.action[:-1], autoescape=True))
        else:
            query = query.where(c.action == f.action)
    if f.actor is not None:
        query = query.where(c.actor == f.actor)
    if f.client_id is not None:
        query = query.where(c.client_id == f.client_id)
    if f.item_id is not None:
        query = query.where(c.item_id == f.item_id)
    if f.severity is not None:
        query = query.where(c.severity.in_(SEVERITY_ORDER[SEVERITY_ORDER.index(f.severity) :]))
    if f.since is not None:
        query = query.where(c.at >= f.since)
    if f.until is not None:
        query = query.where(c.at < f.until)
    return query


async def events(
    conn: AsyncConnection, vault: str, f: Filter, *, after: int, upto: int, limit: int
) -> list[Event]:
    """Up to ``limit`` events matching ``f`` with ``after < seq <= upto``, in order."""
    query = _where(select(audit_events), vault, f, after, upto)
    rows = await conn.execute(query.order_by(audit_events.c.seq).limit(limit))
    return [_event(row) for row in rows]


async def latest(conn: AsyncConnection, vault: str, f: Filter, *, limit: int) -> list[Event]:
    """The last ``limit`` events matching ``f``, oldest of them first."""
    query = _where(select(audit_events), vault, f, 0, 2**63 - 1)
    rows = await conn.execute(query.order_by(audit_events.c.seq.desc()).limit(limit))
    return [_event(row) for row in rows][::-1]


def _event(row: Any) -> Event:
    return Event(
        row.seq, row.at, row.actor, row.action, row.severity, row.client_id, row.item_id,
        row.source_ip, row.detail, row.prev_hash, row.hash,
    )  # fmt: skip


async def last(conn: AsyncConnection, vault: str) -> tuple[int, str]:
    """The chain's last (seq, hash) as stored; (0, :data:`GENESIS`) while it is empty."""
    return await _read_head(conn, vault)


async def one_snapshot(conn: AsyncConnection) -> None:
    """Have every later read on ``conn`` see one snapshot, even while events are appended.

    Call it before the connection's first statement.  PostgreSQL needs
    REPEATABLE READ for this; a SQLite read transaction is one snapshot already.
    """
    if conn.dialect.name == "postgresql":
        await conn.execution_options(isolation_level="REPEATABLE READ")
