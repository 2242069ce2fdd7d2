"""Wake-ups: one in-process hub per relay process; PostgreSQL LISTEN/NOTIFY between replicas.

Waiters (long-polling clients, SSE streams of approvers) subscribe to a
channel name; writers publish to it after their transaction commits.  With
PostgreSQL a writer also sends ``pg_notify('sealbox', channel)`` inside its
transaction, delivered only on commit, and each process keeps exactly one
LISTEN connection that republishes what it hears to its local hub — never one
database connection per waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CHANNEL", "Hub", "PgListener"]

log = logging.getLogger("sealbox.relay")
CHANNEL = "sealbox"


class Hub:
    """Fan-out of wake-ups to local subscribers; each subscriber has a bounded queue."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, maxsize: int = 64) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=maxsize)
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[channel]

    def publish_local(self, channel: str, message: str = "") -> None:
        for queue in list(self._subscribers.get(channel, ())):
            # A wake-up says "look again"; a full queue already holds one.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    async def publish(self, conn: AsyncConnection, channel: str, message: str = "") -> None:
        """Queue a wake-up inside the caller's transaction (cross-replica on PostgreSQL)."""
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"{channel} {message}"}
            )


class PgListener:
    """The one LISTEN connection of this process, feeding the local hub."""

    def __init__(self, dsn: str, hub: Hub, schema: str | None = None) -> None:
        self._dsn = dsn
        self._hub = hub
        self._schema = schema
        self._conn: object | None = None

    async def start(self) -> None:
        import asyncpg  # the relay's PostgreSQL driver

        settings = {"search_path": self._schema} if self._schema else None
        conn = await asyncpg.connect(self._dsn, server_settings=settings)
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        channel, _, message = payload.partition(" ")
        self._hub.publish_local(channel, message)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()  # type: ignore[attr-defined]
            self._conn = None


# --- channel names: the one place each is spelled -------------------------------------------


def approvers_channel(vault: str) -> str:
    """A vault's approvers (their SSE streams): requests, directory, logins, pairings."""
    return f"vault:{vault}:approvers"


def audit_channel(vault: str) -> str:
    """A vault's live audit stream."""
    return f"vault:{vault}:audit"


def request_channel(request_id: str) -> str:
    """One request (its owner's long poll)."""
    return f"request:{request_id}"
