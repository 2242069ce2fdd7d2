"""Background work of the relay: expiring requests and forgetting spent replay entries.

:func:`sweeper` runs :func:`sweep_once` every few seconds for the life of the
app.  Every replica may run one: each expiry is a compare-and-set through the
request-state table, so a request is expired (and audited, and its waiters
woken) exactly once however many sweepers see it.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import delete, select

from sealbox.protocol.state import Event, State
from sealbox.server.relay import Relay
from sealbox.server.routes.items import (
    approvers_channel,
    discard_pending_blobs,
    request_channel,
    transition,
)
from sealbox.server.store import audit
from sealbox.server.store.tables import answers, replay, requests

__all__ = ["sweep_once", "sweeper"]

log = logging.getLogger("sealbox.relay")

#: Requests expired per transaction: bounds how long one sweep holds row locks.
BATCH = 200


async def _expire_batch(relay: Relay, now: int) -> tuple[int, bool]:
    """Expire up to one batch of overdue requests; return (expired, more may be due)."""
    async with relay.read() as conn:
        due = list(
            await conn.execute(
                select(requests.c.vault_id, requests.c.id, requests.c.kind,
                       requests.c.client_id, requests.c.detail)
                .where(requests.c.state == State.PENDING.value, requests.c.expires_at < now)
                # One order for every sweeper, so two replicas never lock rows crosswise.
                .order_by(requests.c.vault_id, requests.c.id)
                .limit(BATCH)
            )
        )  # fmt: skip
    if not due:
        return 0, False
    async with relay.tx() as tx:
        expired = []
        for row in due:
            state = await transition(tx.conn, row.vault_id, row.id, State.PENDING, Event.EXPIRED,
                                     now)  # fmt: skip
            if state is not None:  # else answered, cancelled or expired elsewhere meanwhile
                expired.append(row)
        for row in expired:
            # Partial quorums and waiting store blobs can never be used now.
            await tx.conn.execute(
                delete(answers).where(
                    answers.c.vault_id == row.vault_id,
                    answers.c.request_id == row.id,
                    answers.c.kind == "release",
                )
            )
            if row.kind == "store":
                await discard_pending_blobs(tx.conn, row.vault_id, row.detail)
        # Audit last: on PostgreSQL it takes the vault's chain lock, which every
        # other writer also takes after its row locks, never before.
        for row in expired:
            await audit.append(
                tx.conn, vault=row.vault_id, at=now, actor="relay", action=f"{row.kind}.expired",
                client_id=row.client_id, detail={"request": row.id},
            )  # fmt: skip
            tx.wake(request_channel(row.id), State.EXPIRED.value)
            tx.wake(approvers_channel(row.vault_id), row.id)
    return len(expired), len(due) == BATCH


async def sweep_once(relay: Relay) -> int:
    """Expire every pending request past its expiry; drop spent replay rows.

    Returns how many requests this call expired.
    """
    now = relay.now()
    total = 0
    more = True
    while more:
        expired, more = await _expire_batch(relay, now)
        total += expired
    async with relay.tx() as tx:
        # A jti or nonce past its expiry is refused by its time window anyway.
        await tx.conn.execute(delete(replay).where(replay.c.expires_at < now))
    return total


async def sweeper(relay: Relay, every: float = 5.0) -> None:
    """Run :func:`sweep_once` every ``every`` seconds until cancelled."""
    while True:
        try:
            expired = await sweep_once(relay)
            if expired:
                log.info("expired %d request(s)", expired)
        except Exception:
            # A failed sweep (database restarting, say) is retried next round;
            # the relay keeps serving meanwhile.
            log.exception("request sweep failed; retrying in %s s", every)
        await asyncio.sleep(every)
