"""The audit log, for approvers: pages of it, following it live, exporting it, verifying it.

Reads are bounded by the head of the log read first: appends to a vault's log
are serialised and commit in sequence order, so every event up to that head
is visible, and a page never skips one still being written.

Nothing here writes: looking at the log leaves no trace in it, and what is
shown is exactly what was appended (ids, paths, codes, counts; never secrets,
see :mod:`sealbox.server.store.audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.errors import Conflict
from sealbox.server.notify import CLOSED, Mailbox, audit_channel
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import directory as directories
from sealbox.server.store.audit import Event, Filter

__all__ = [
    "IDLE",
    "PAGE",
    "ChainCheck",
    "Event",
    "Filter",
    "Idle",
    "Page",
    "Revoked",
    "export",
    "follow",
    "mine",
    "page",
    "verify",
]

#: Events read from the database at a time by the live stream and the export.
PAGE = 500


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_after: int
    """The seq to continue after; a page shorter than asked is the last one for now."""


@dataclass(frozen=True)
class Idle:
    """Nothing new came for a while (a transport may say it is still there)."""


IDLE = Idle()


@dataclass(frozen=True)
class Revoked:
    """The follower left the approver set: nothing more follows."""

    reason: str = "not an approver"


@dataclass(frozen=True)
class ChainCheck:
    events: int
    """How many events the chain has; each one's seq, link and hash matched."""
    head_seq: int
    head_hash: str


async def _page(conn: AsyncConnection, vault: str, f: Filter, after: int, limit: int) -> Page:
    # The head is read first: every event up to it has committed (appends to
    # one vault are serialised), so continuing after it loses nothing.
    head = await audit.head(conn, vault)
    found = await audit.events(conn, vault, f, after=after, upto=head, limit=limit)
    if len(found) == limit:
        return Page(found, found[-1].seq)
    return Page(found, max(after, head))


async def page(relay: Relay, *, vault: str, filters: Filter, after: int, limit: int) -> Page:
    """Up to ``limit`` matching events after ``after``, oldest first."""
    async with relay.read() as conn:
        return await _page(conn, vault, filters, after, limit)


async def _still_approver(relay: Relay, vault: str, approver_id: str) -> bool:
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        if (directory.head.seq, directory.head.hash) != await directories.head(conn, vault):
            # The cache may answer without asking the database for a moment after an
            # append (its freshness window; and with PostgreSQL the append's commit can
            # wake this stream before the appender drops the entry): a revocation must
            # be seen now, so judge by the stored head.
            relay.directories.forget(vault)
            directory = await relay.directories.load(conn, vault)
    return approver_id in directory.approvers


async def mine(relay: Relay, *, vault: str, client_id: str, limit: int) -> list[Event]:
    """A client's own recent events (its ``client_id``), oldest of them first.

    What others did about the client's requests (an approver's release or
    denial) is the client's to know; where they did it from is not, so a
    source address is kept only on the client's own actions.
    """
    async with relay.read() as conn:
        found = await audit.latest(conn, vault, Filter(client_id=client_id), limit=limit)
    return [e if e.actor == client_id else dataclasses.replace(e, source_ip=None) for e in found]


@contextlib.asynccontextmanager
async def follow(
    relay: Relay, *, vault: str, filters: Filter, after: int, approver_id: str,
    idle_seconds: float,
) -> AsyncIterator[AsyncIterator[Event | Idle | Revoked]]:  # fmt: skip
    """Matching events after ``after``, then each new one as it is appended.

    Subscribed on entry: an event committed once inside is never missed.
    Iterating yields events, :data:`IDLE` after ``idle_seconds`` without a
    wake-up, and a final :class:`Revoked` once ``approver_id`` is no longer an
    approver of the vault.
    """
    async with relay.hub.subscribe(audit_channel(vault)) as queue:
        items = _follow(relay, queue, vault, filters, after, approver_id, idle_seconds)
        async with contextlib.aclosing(items):
            yield items


async def _follow(
    relay: Relay, queue: Mailbox, vault: str, filters: Filter, cursor: int,
    approver_id: str, idle_seconds: float,
) -> AsyncGenerator[Event | Idle | Revoked, None]:  # fmt: skip
    while True:
        while True:  # catch up, a page at a time, without holding a connection
            found = await page(relay, vault=vault, filters=filters, after=cursor, limit=PAGE)
            cursor = found.next_after
            for event in found.events:
                yield event
            if len(found.events) < PAGE:
                break
        message: object = None
        try:
            message = await asyncio.wait_for(queue.get(), timeout=idle_seconds)
        except TimeoutError:
            yield IDLE
        while message is not CLOSED and not queue.empty():  # one read answers them all
            message = queue.get_nowait()
        if message is CLOSED:
            return  # the relay is stopping: a client resumes from its Last-Event-ID
        # Directory changes are audited too, so a removed approver is seen
        # here at once (and at the next idle tick otherwise).
        if not await _still_approver(relay, vault, approver_id):
            yield Revoked()
            return


async def export(
    relay: Relay, *, vault: str, filters: Filter, after: int
) -> AsyncIterator[list[Event]]:
    """Every matching event after ``after`` up to the head of the log now, a page at a time."""
    async with relay.read() as conn:
        end = await audit.head(conn, vault)
    return _export(relay, vault, filters, after, end)


async def _export(
    relay: Relay, vault: str, filters: Filter, cursor: int, end: int
) -> AsyncGenerator[list[Event], None]:
    while True:
        async with relay.read() as conn:
            found = await audit.events(conn, vault, filters, after=cursor, upto=end, limit=PAGE)
        yield found
        if len(found) < PAGE:
            return
        cursor = found[-1].seq


async def verify(relay: Relay, *, vault: str) -> ChainCheck:
    """Recompute the whole hash chain; raises :class:`Conflict` at the first break."""
    async with relay.read() as conn:
        await audit.one_snapshot(conn)  # the walk and the head from one snapshot
        try:
            count = await audit.verify_chain(conn, vault)
        except ValueError as exc:
            found = re.search(r"event (\d+)", str(exc))
            where = f" at event {found.group(1)}" if found else ""
            raise Conflict(
                "audit_chain_broken", f"the audit chain breaks{where}",
                "An event was edited or removed after it was written. Compare with an "
                "earlier export or checkpoint to see what changed.",
            ) from None  # fmt: skip
        seq, hash_ = await audit.last(conn, vault)
    return ChainCheck(count, seq, hash_)
