"""The relay's own bookkeeping: expiring requests and purging what is spent.

A pending request expires when its ``exp`` passes, and also when its client has
stopped waiting for it (no long poll for longer than the waiter grace: see
``RequestRow.abandoned``); such an expiry is audited with ``abandoned: true``.

Every replica may run it: each expiry is a compare-and-set through the state
table, so a request is expired (and audited, and its waiters woken) exactly
once however many sweepers see it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sealbox.protocol.state import Event, State, StoreEvent
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.services import consents, destruction, policy_axes
from sealbox.server.services import shares as share_links
from sealbox.server.services.access import waiter_since, wake_owner
from sealbox.server.store import agents as agent_store
from sealbox.server.store import audit, replay, tokens
from sealbox.server.store import consents as consent_store
from sealbox.server.store import items as item_store
from sealbox.server.store import machines as machine_store
from sealbox.server.store import policy_axes as axes_store
from sealbox.server.store import requests as request_store

__all__ = ["BATCH", "Swept", "sweep"]

#: Requests expired (or purged) per transaction: bounds how long one sweep holds row locks.
BATCH = 200
#: Expired tokens are kept this long, so a late refresh still reads as expired, then deleted.
TOKEN_GRACE_SECONDS = 86400
#: Spent and expired bootstrap tokens and machine registrations are kept this long (a late
#: or second use still reads as what it is; the machine can still fetch its certificate).
MACHINE_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class Swept:
    expired: int
    purged_requests: int
    purged_tokens: int


async def _expire_batch(relay: Relay, now: int) -> tuple[int, bool]:
    """Expire up to one batch of overdue requests; return (expired, more may be due)."""
    async with relay.read() as conn:
        due = await request_store.due_for_expiry(conn, now, relay.settings.delivery_seconds, BATCH,
                                                 waiter_since(relay, now))  # fmt: skip
    if not due:
        return 0, False
    async with relay.tx() as tx:
        expired = []
        for row in due:
            event = Event.EXPIRED if row.kind == "access" else StoreEvent.EXPIRED
            state = await request_store.transition(tx.conn, row.vault, row.id, row.kind,
                                                   row.state, event, now)  # fmt: skip
            if state is not None:  # else answered, cancelled or expired elsewhere meanwhile
                expired.append(row)
        for row in expired:
            # Partial quorums, undelivered releases and waiting store blobs can never be used now.
            await request_store.drop_releases(tx.conn, row.vault, row.id)
            if row.kind == "store":
                await item_store.delete_unstored_blobs(tx.conn, row.vault, row.store.item,
                                                       row.store.version)  # fmt: skip
        # Audit last: on PostgreSQL it takes the vault's chain lock, which every
        # other writer also takes after its row locks, never before.
        for row in expired:
            detail: dict[str, object] = {"request": row.id}
            if row.state == State.RELEASED:
                detail["undelivered"] = True
            elif row.expires_at >= now:  # pending, not past its exp: its client is gone
                detail["abandoned"] = True
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor="relay", action=f"{row.kind}.expired",
                client_id=row.client_id, detail=detail,
            )  # fmt: skip
            wake_owner(tx, row, State.EXPIRED.value)
            tx.wake(approvers_channel(row.vault), row.id)
    return len(expired), len(due) == BATCH


async def sweep(relay: Relay, now: int) -> Swept:
    """Expire overdue requests; purge finished requests, expired tokens and spent replay rows."""
    # Items past their policy's destroy date: versions and blobs deleted, a tombstone kept,
    # the requests naming them ended (before expiry, which would end them without saying why).
    await destruction.destroy_due(relay, now)
    total = 0
    more = True
    while more:
        expired, more = await _expire_batch(relay, now)
        total += expired
        # SQLite answers inline (store.engine): give waiting requests a turn.
        await asyncio.sleep(0)
    # Consent requests past their expiry, in the same batches.
    more = True
    while more:
        expired = await consents.expire_due(relay, now, BATCH)
        total += expired
        more = expired == BATCH
        await asyncio.sleep(0)
    # Share links past their TTL lose their ciphertext; long-spent ones are forgotten.
    await share_links.sweep(relay, now, BATCH)
    purged = 0
    more = True
    while more:
        async with relay.tx() as tx:
            count = await request_store.purge_finished(
                tx.conn, now - relay.settings.retention_seconds, BATCH
            )
        purged += count
        more = count == BATCH
        await asyncio.sleep(0)
    async with relay.tx() as tx:
        # A jti or nonce past its expiry is refused by its time window anyway.
        await replay.purge_spent(tx.conn, now)
        dropped = await tokens.purge_expired(tx.conn, now - TOKEN_GRACE_SECONDS)
        # Bootstrap tokens and machine registrations, an hour after they expired.
        await machine_store.purge(tx.conn, None, before=now - MACHINE_GRACE_SECONDS)
        # Agent requests that expired waiting or were denied (with any secret hash), likewise.
        await agent_store.purge_unanswered(tx.conn, before=now - MACHINE_GRACE_SECONDS)
        # Finished consent requests, as finished access requests (their consents live on
        # with their holders; the audit log keeps the record).
        await consent_store.purge_finished(tx.conn, now - relay.settings.retention_seconds)
        # Reads older than the longest read-rate period count against no cap.
        await axes_store.purge_reads(tx.conn, now - policy_axes.READS_KEPT_SECONDS)
    return Swept(total, purged, dropped)
