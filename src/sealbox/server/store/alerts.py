"""Alert targets and the outbox of their deliveries: the only SQL of alerts.

:func:`enqueue` runs inside every audit append (:func:`sealbox.server.store.audit.append`):
one outbox row per enabled target that selects the event, written in the
event's own transaction, so an event that rolls back leaves no delivery and
one that commits cannot lose its deliveries to a crash.  With no target in
the vault it costs one indexed read.

Deliveries leave by target: a relay process claims a target with a lease (a
compare-and-set on the target's row, the same on SQLite and PostgreSQL), sends
its rows oldest first and releases it.  Another replica cannot claim it while
the lease holds, so one delivery is sent by one replica and a target's
deliveries arrive in order; a process that dies mid-lease is replaced once
the lease runs out.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.alerts import selects
from sealbox.server.store.tables import alert_outbox, alert_targets

__all__ = [
    "DISABLED_ACTION",
    "Delivery",
    "Target",
    "any_due",
    "claim",
    "count",
    "delete_target",
    "delivered",
    "drop_dead",
    "enqueue",
    "enqueue_one",
    "failed",
    "get",
    "insert",
    "listing",
    "next_delivery",
    "pending",
    "release",
    "renew",
    "set_enabled",
]

#: The audit action written when a target is disabled after failing; it never goes to that
#: target (which is disabled in the same transaction anyway).
DISABLED_ACTION = "alert.target_disabled"


@dataclass(frozen=True)
class Target:
    """One alert target as stored (its secret still sealed)."""

    vault: str
    id: str
    kind: str
    """``webhook`` or ``email``."""
    url: str | None
    addresses: tuple[str, ...]
    events: tuple[str, ...]
    min_severity: str
    enabled: bool
    failures: int
    """Failed deliveries in a row."""
    created_at: int
    created_by: str
    disabled_at: int | None
    delivered_at: int | None
    last_error: str | None
    pending: int = 0
    """Deliveries waiting in the outbox."""
    secret_sealed: bytes | None = None


@dataclass(frozen=True)
class Delivery:
    """One outbox row: an event on its way to one target."""

    row: int
    delivery_id: str
    seq: int | None
    event: dict[str, Any]
    attempts: int


def _target(row: Any, pending: int = 0) -> Target:
    return Target(
        row.vault_id, row.id, row.kind, row.url, tuple(row.addresses or ()),
        tuple(row.events or ()), row.min_severity, bool(row.enabled), int(row.failures),
        int(row.created_at), row.created_by, row.disabled_at, row.delivered_at, row.last_error,
        pending, row.secret_sealed,
    )  # fmt: skip


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(16)


# Built once: the query every audit append runs (an index range on the primary key).
_SELECTORS = select(alert_targets.c.id, alert_targets.c.events, alert_targets.c.min_severity).where(
    alert_targets.c.vault_id == bindparam("vault"), alert_targets.c.enabled.is_(True)
)


async def enqueue(conn: AsyncConnection, row: Mapping[str, Any]) -> int:
    """Queue the audit event ``row`` (as just inserted) for every enabled target selecting it.

    Called by the audit append, in its transaction; returns the rows queued.
    """
    vault = row["vault_id"]
    targets = (await conn.execute(_SELECTORS, {"vault": vault})).all()
    if not targets:
        return 0
    action, severity = row["action"], row["severity"]
    detail = dict(row["detail"] or {})
    # Never to the target the event is about: a target disabled for failing is not told so.
    skip = detail.get("target") if action == DISABLED_ACTION else None
    event = {
        "vault": vault, "seq": int(row["seq"]), "at": int(row["at"]), "action": action,
        "severity": severity, "actor": row["actor"], "client_id": row["client_id"],
        "item_id": row["item_id"], "detail": detail, "hash": row["hash"],
    }  # fmt: skip
    rows = [
        {"vault_id": vault, "target_id": t.id, "delivery_id": new_delivery_id(),
         "seq": event["seq"], "event": event, "attempts": 0, "created_at": event["at"]}
        for t in targets
        if t.id != skip and selects(tuple(t.events or ()), t.min_severity, action, severity)
    ]  # fmt: skip
    if rows:
        await conn.execute(alert_outbox.insert(), rows)
    return len(rows)


async def enqueue_one(
    conn: AsyncConnection, vault: str, target: str, event: Mapping[str, Any], now: int
) -> str:
    """Queue ``event`` for one target only (a test delivery); return its delivery id."""
    delivery = new_delivery_id()
    await conn.execute(
        alert_outbox.insert().values(
            vault_id=vault, target_id=target, delivery_id=delivery, seq=None, event=dict(event),
            attempts=0, created_at=now,
        )
    )  # fmt: skip
    return delivery


# --- targets -------------------------------------------------------------------------------------


async def insert(
    conn: AsyncConnection, *, vault: str, id: str, kind: str, url: str | None,
    addresses: Sequence[str], secret_sealed: bytes | None, events: Sequence[str],
    min_severity: str, now: int, by: str,
) -> None:  # fmt: skip
    await conn.execute(
        alert_targets.insert().values(
            vault_id=vault, id=id, kind=kind, url=url, addresses=list(addresses) or None,
            secret_sealed=secret_sealed, events=list(events), min_severity=min_severity,
            enabled=True, failures=0, created_at=now, created_by=by,
        )
    )  # fmt: skip


async def count(conn: AsyncConnection, vault: str) -> int:
    query = select(func.count()).where(alert_targets.c.vault_id == vault)
    return int((await conn.execute(query)).scalar_one())


def _pending_counts(vault: str) -> Any:
    return (
        select(alert_outbox.c.target_id, func.count().label("n"))
        .where(alert_outbox.c.vault_id == vault)
        .group_by(alert_outbox.c.target_id)
    )


async def listing(conn: AsyncConnection, vault: str) -> list[Target]:
    """The vault's targets, oldest first, each with its pending deliveries."""
    counts = {r.target_id: int(r.n) for r in await conn.execute(_pending_counts(vault))}
    rows = await conn.execute(
        select(alert_targets)
        .where(alert_targets.c.vault_id == vault)
        .order_by(alert_targets.c.created_at, alert_targets.c.id)
    )
    return [_target(row, counts.get(row.id, 0)) for row in rows]


async def get(
    conn: AsyncConnection, vault: str, target: str, *, lock: bool = False
) -> Target | None:
    query = select(alert_targets).where(
        alert_targets.c.vault_id == vault, alert_targets.c.id == target
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return _target(row, await pending(conn, vault, target))


async def pending(conn: AsyncConnection, vault: str, target: str) -> int:
    query = select(func.count()).where(
        alert_outbox.c.vault_id == vault, alert_outbox.c.target_id == target
    )
    return int((await conn.execute(query)).scalar_one())


async def delete_target(conn: AsyncConnection, vault: str, target: str) -> int:
    """Remove a target and its undelivered rows; return how many rows were dropped."""
    dropped = await conn.execute(
        delete(alert_outbox).where(
            alert_outbox.c.vault_id == vault, alert_outbox.c.target_id == target
        )
    )
    await conn.execute(
        delete(alert_targets).where(alert_targets.c.vault_id == vault, alert_targets.c.id == target)
    )
    return int(dropped.rowcount or 0)


async def set_enabled(conn: AsyncConnection, vault: str, target: str, now: int) -> None:
    """Enable a target again: its failure count starts over and its rows are due now."""
    await conn.execute(
        update(alert_targets)
        .where(alert_targets.c.vault_id == vault, alert_targets.c.id == target)
        .values(enabled=True, failures=0, retry_at_ms=None, disabled_at=None)
    )


# --- delivering ----------------------------------------------------------------------------------


async def drop_dead(conn: AsyncConnection, vault: str, target: str, attempts: int) -> int:
    """Drop a target's deliveries tried at least ``attempts`` times; return how many."""
    o = alert_outbox.c
    done = await conn.execute(
        delete(alert_outbox).where(o.vault_id == vault, o.target_id == target,
                                   o.attempts >= attempts)
    )  # fmt: skip
    return int(done.rowcount or 0)


async def claim(
    conn: AsyncConnection, *, owner: str, now_ms: int, lease_ms: int, limit: int
) -> list[tuple[str, str]]:
    """Claim up to ``limit`` enabled targets with due deliveries for ``owner``; return them.

    A compare-and-set: a target whose lease is held by another process is left
    alone.  On PostgreSQL a concurrent claim of the same row waits for this one
    and then finds the lease taken (the ``WHERE`` is checked again).
    """
    t = alert_targets.c
    has_rows = (
        select(alert_outbox.c.id)
        .where(alert_outbox.c.vault_id == t.vault_id, alert_outbox.c.target_id == t.id)
        .exists()
    )
    free, due = _free(now_ms), _due(now_ms)
    candidates = (
        await conn.execute(
            select(t.vault_id, t.id)
            .where(t.enabled.is_(True), free, due, has_rows)
            .order_by(t.lease_until_ms.nulls_first(), t.vault_id, t.id)
            .limit(limit)
        )
    ).all()
    claimed: list[tuple[str, str]] = []
    for vault, target in candidates:
        done = await conn.execute(
            update(alert_targets)
            .where(t.vault_id == vault, t.id == target, t.enabled.is_(True), free, due)
            .values(lease_until_ms=now_ms + lease_ms, lease_owner=owner)
        )
        if done.rowcount == 1:
            claimed.append((vault, target))
    return claimed


def _held(vault: str, target: str, owner: str) -> Any:
    t = alert_targets.c
    return and_(t.vault_id == vault, t.id == target, t.lease_owner == owner)


async def release(conn: AsyncConnection, *, owner: str, vault: str | None = None,
                  target: str | None = None) -> None:  # fmt: skip
    """Give up ``owner``'s lease on one target (or, with neither given, on all of them)."""
    t = alert_targets.c
    where = _held(vault, target, owner) if vault and target else t.lease_owner == owner
    await conn.execute(update(alert_targets).where(where).values(lease_until_ms=None,
                                                                  lease_owner=None))  # fmt: skip


async def renew(
    conn: AsyncConnection, *, owner: str, vault: str, target: str, now_ms: int, lease_ms: int
) -> bool:
    """Extend ``owner``'s lease on a target before another send; ``False``: it was lost (it ran
    out and another process claimed the target), so this one must stop sending to it."""
    done = await conn.execute(
        update(alert_targets)
        .where(_held(vault, target, owner), alert_targets.c.lease_until_ms >= now_ms)
        .values(lease_until_ms=now_ms + lease_ms)
    )
    return done.rowcount == 1


async def next_delivery(conn: AsyncConnection, vault: str, target: str) -> Delivery | None:
    """The target's oldest undelivered row."""
    row = (
        await conn.execute(
            select(alert_outbox)
            .where(alert_outbox.c.vault_id == vault, alert_outbox.c.target_id == target)
            .order_by(alert_outbox.c.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return Delivery(int(row.id), row.delivery_id, row.seq, dict(row.event), int(row.attempts))


async def delivered(conn: AsyncConnection, *, vault: str, target: str, row: int, now: int) -> None:
    """The row was accepted: drop it and start the target's failure count over."""
    await conn.execute(delete(alert_outbox).where(alert_outbox.c.id == row))
    await conn.execute(
        update(alert_targets)
        .where(alert_targets.c.vault_id == vault, alert_targets.c.id == target)
        .values(failures=0, retry_at_ms=None, delivered_at=now, last_error=None)
    )


async def failed(
    conn: AsyncConnection, *, vault: str, target: str, row: int, error: str, failures: int,
    retry_at_ms: int, disable_at: int | None,
) -> None:  # fmt: skip
    """The row was not accepted: count the try, set the target's ``failures`` in a row and
    hold it until ``retry_at_ms`` (with ``disable_at``, disable it)."""
    await conn.execute(
        update(alert_outbox)
        .where(alert_outbox.c.id == row)
        .values(attempts=alert_outbox.c.attempts + 1)
    )
    values: dict[str, Any] = {
        "failures": failures, "retry_at_ms": retry_at_ms, "last_error": error[:200],
    }  # fmt: skip
    if disable_at is not None:
        values.update(enabled=False, disabled_at=disable_at)
    await conn.execute(
        update(alert_targets)
        .where(alert_targets.c.vault_id == vault, alert_targets.c.id == target)
        .values(**values)
    )


async def any_due(conn: AsyncConnection, now_ms: int) -> bool:
    """Whether a claim could find work now: a read, before the claim (which writes).

    Rows waiting for a disabled target, or one still backing off or leased,
    do not count, so a quiet relay's rounds write nothing.
    """
    t = alert_targets.c
    query = (
        select(alert_outbox.c.id)
        .join(alert_targets, and_(t.vault_id == alert_outbox.c.vault_id,
                                  t.id == alert_outbox.c.target_id))
        .where(t.enabled.is_(True), _free(now_ms), _due(now_ms))
        .limit(1)
    )  # fmt: skip
    return (await conn.execute(query)).first() is not None


def _free(now_ms: int) -> Any:
    t = alert_targets.c
    return or_(t.lease_until_ms.is_(None), t.lease_until_ms < now_ms)


def _due(now_ms: int) -> Any:
    t = alert_targets.c
    return or_(t.retry_at_ms.is_(None), t.retry_at_ms <= now_ms)
