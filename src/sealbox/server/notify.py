"""Wake-ups: one in-process hub per relay process; PostgreSQL LISTEN/NOTIFY between replicas.

Waiters (long-polling clients, SSE streams of approvers) subscribe to a
channel name; writers publish to it after their transaction commits.  With
PostgreSQL a writer also sends ``pg_notify('sealbox', channel)`` inside its
transaction, delivered only on commit, and each process keeps exactly one
LISTEN connection that republishes what it hears to its local hub — never one
database connection per waiter.

At shutdown the hub is closed: every waiter then receives :data:`CLOSED`
and must end (a long poll answers the state as it is; a stream returns), so
the server is not held open by connections that would otherwise wait for
minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store import wakeups

__all__ = ["CHANNEL", "CLOSED", "Closed", "Hub", "Mailbox", "PgListener"]

log = logging.getLogger("sealbox.relay")
CHANNEL = "sealbox"
#: Largest NOTIFY payload sent (PostgreSQL refuses 8000 bytes and more).
NOTIFY_MAX = 7000


class Closed(enum.Enum):
    """The type of :data:`CLOSED`; an enum so that ``is CLOSED`` narrows a message to ``str``."""

    CLOSED = "closed"


CLOSED = Closed.CLOSED
"""What a subscriber's queue yields once the hub is closed: stop waiting and end.

Not a string, so no published message (a request id, a name from another
replica's NOTIFY) can ever be mistaken for it.
"""


class Mailbox:
    """A subscriber's bounded queue of messages, for one reader.

    ``asyncio.Queue``'s interface (``get``, ``get_nowait``, ``put_nowait``,
    ``empty``) without its three deques and waiter lists: a long-polling
    client holds one of these for its whole wait, and ten thousand waiters
    should cost memory for the wait, not for queue machinery.
    """

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._items: list[str | Closed] = []
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= self._maxsize

    def put_nowait(self, item: str | Closed) -> None:
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> str | Closed:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> str | Closed:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Hub:
    """Fan-out of wake-ups to local subscribers; each subscriber has a bounded mailbox."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Mailbox]] = defaultdict(set)
        self._closed = False

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, maxsize: int = 64) -> AsyncIterator[Mailbox]:
        """A mailbox of the channel's messages, then :data:`CLOSED` once the hub closes.

        Whoever reads it must check every message it takes for :data:`CLOSED`,
        and end when it sees it: it comes once.
        """
        queue = Mailbox(maxsize)
        if self._closed:
            # Subscribed while the relay stops: end at once rather than wait.
            queue.put_nowait(CLOSED)
        self._subscribers[channel].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[channel]

    def close(self) -> None:
        """Wake every subscriber, now and later, with :data:`CLOSED`.  Idempotent.

        What was still queued is dropped: a waiter that ends reads the
        database once more or not at all, so a wake-up no longer matters, and
        clearing the queue makes room for :data:`CLOSED` even in a full one.
        """
        if self._closed:
            return
        self._closed = True
        for subscribers in self._subscribers.values():
            for queue in subscribers:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(CLOSED)

    def publish_local(self, channel: str, message: str = "") -> None:
        if self._closed:
            return  # CLOSED is the last thing a subscriber receives
        for queue in list(self._subscribers.get(channel, ())):
            # A wake-up says "look again"; a full queue already holds one.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    async def publish(self, conn: AsyncConnection, channel: str, message: str = "") -> None:
        """Queue a wake-up inside the caller's transaction (cross-replica on PostgreSQL)."""
        await self.publish_all(conn, [(channel, message)])

    async def publish_all(self, conn: AsyncConnection, wakes: list[tuple[str, str]]) -> None:
        """Queue a transaction's wake-ups: one ``NOTIFY`` for all of them, a line each.

        One statement instead of one per wake-up (a release wakes its client and
        the approvers); payloads stay under PostgreSQL's 8000-byte limit.  No
        channel or message holds a line break (ids, names, compact JSON).
        """
        batch: list[str] = []
        size = 0
        for channel, message in wakes:
            line = f"{channel} {message}"
            if "\n" in line:
                raise ValueError("a wake-up cannot hold a line break")
            if batch and size + len(line) + 1 > NOTIFY_MAX:
                await wakeups.notify(conn, CHANNEL, "\n".join(batch))
                batch, size = [], 0
            batch.append(line)
            size += len(line) + 1
        if batch:
            await wakeups.notify(conn, CHANNEL, "\n".join(batch))


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
        for line in payload.split("\n"):  # one wake-up a line (Hub.publish_all)
            channel, _, message = line.partition(" ")
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
