"""The audit log: append-only (database triggers refuse UPDATE and DELETE), hash-chained.

Each event's hash covers the previous event's hash and every field of the
event, so deleting or editing an event breaks the chain from there on; an
approver-signed checkpoint of a head makes truncation detectable too.  An
event is written in the same transaction as the operation it records: if the
audit write fails, the operation fails.  No secret material enters an event:
callers pass ids, paths, field names, codes and counts only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import labels
from sealbox.crypto.encoding import canonical_json, length_prefixed
from sealbox.server.db.tables import audit_events

__all__ = ["GENESIS", "append", "event_hash", "verify_chain"]

GENESIS = "0" * 64
#: Connection-info key: the vaults that got audit events in the current transaction.
AUDITED = "sealbox_audited"
SEVERITIES = frozenset({"info", "notice", "warning", "alert"})


def event_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    data = length_prefixed(
        labels.HASH_AUDIT, prev_hash, int(row["seq"]), int(row["at"]), row["actor"], row["action"],
        row["severity"], row["client_id"] or "", row["item_id"] or "", row["source_ip"] or "",
        canonical_json(row["detail"]),
    )  # fmt: skip
    return hashlib.sha256(data).hexdigest()


async def append(
    conn: AsyncConnection,
    *,
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
    """Append one event in the caller's transaction; return its sequence number."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    if conn.dialect.name == "postgresql":
        # Serialise appends per vault across replicas: the chain has one head.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:v))"), {"v": vault})
    last = (
        await conn.execute(
            select(audit_events.c.seq, audit_events.c.hash)
            .where(audit_events.c.vault_id == vault)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    row: dict[str, Any] = {
        "vault_id": vault, "seq": seq, "at": at, "actor": actor, "action": action,
        "severity": severity, "client_id": client_id, "item_id": item_id,
        "source_ip": source_ip, "detail": dict(detail or {}),
    }  # fmt: skip
    row["prev_hash"] = prev
    row["hash"] = event_hash(prev, row)
    await conn.execute(audit_events.insert().values(**row))
    # Relay.tx() wakes the vault's live audit stream once this commits.
    conn.info.setdefault(AUDITED, set()).add(vault)
    return seq


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
