"""The relay's process-wide state: settings, database engine, wake-up hub, at-rest key, caches."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sealbox.protocol.store import VerifiedManifests
from sealbox.server.atrest import MasterKey
from sealbox.server.config import Settings
from sealbox.server.notify import Hub, audit_channel
from sealbox.server.ratelimit import EventThrottle, RateLimiter
from sealbox.server.store.audit import AUDITED, HEAD_CACHE, HEADS, Heads
from sealbox.server.store.directory import Directories
from sealbox.server.store.engine import writing
from sealbox.server.store.network import Allowlists
from sealbox.server.store.replay import ReplayGuard

__all__ = ["Relay", "Tx"]


@dataclass
class Tx:
    """One database transaction, and the wake-ups to send once it commits."""

    conn: AsyncConnection
    wakes: list[tuple[str, str]] = field(default_factory=list)

    def wake(self, channel: str, message: str = "") -> None:
        self.wakes.append((channel, message))


@dataclass
class Relay:
    settings: Settings
    engine: AsyncEngine
    master_key: MasterKey
    hub: Hub = field(default_factory=Hub)
    clock: Callable[[], float] = time.time
    limiter: RateLimiter | None = None

    replay_guard: ReplayGuard = field(init=False)
    anonymous_limiter: RateLimiter = field(init=False)
    """For unauthenticated endpoints that write (starting a login): per source address."""
    directories: Directories = field(init=False)
    """Verified directories by vault (every signed request needs the approver set)."""
    allowlists: Allowlists = field(init=False)
    """Network allowlists by vault (read before every machine's or agent's credential check)."""
    audit_heads: Heads = field(init=False)
    """The audit chains' heads, so appending reads nothing back."""
    certificate_verdicts: dict[tuple[str, str], int] = field(init=False)
    """(certificate hash, directory head hash) -> until when the certificate verifies."""
    manifests: VerifiedManifests = field(init=False)
    """Stored manifests verified once per directory head (every access request pins some)."""
    refusal_budget: RateLimiter = field(init=False)
    """All refusal events of one vault: 60 a minute, whatever their senders."""
    refusal_audit: EventThrottle = field(init=False)
    """Audit events of refused requests: one a minute per vault, source address and error."""

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = RateLimiter(self.settings.rate_per_second, self.settings.rate_burst)
        self.replay_guard = ReplayGuard(self.engine)
        self.anonymous_limiter = RateLimiter(rate=10 / 60, burst=10)
        self.directories = Directories()
        self.allowlists = Allowlists()
        self.audit_heads = Heads()
        self.certificate_verdicts = {}
        self.manifests = VerifiedManifests()
        self.refusal_audit = EventThrottle(interval=60)
        self.refusal_budget = RateLimiter(rate=1.0, burst=60)

    def now(self) -> int:
        return int(self.clock())

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A write transaction; its wake-ups reach waiters only after it commits."""
        heads: dict[str, tuple[int, str]] = {}
        try:
            async with writing(self.engine) as conn:
                conn.info.pop(AUDITED, None)
                conn.info[HEADS] = heads
                conn.info[HEAD_CACHE] = self.audit_heads
                try:
                    tx = Tx(conn)
                    yield tx
                    for vault in sorted(conn.info.pop(AUDITED, ())):
                        tx.wake(audit_channel(vault), "event")
                    await self.hub.publish_all(conn, tx.wakes)
                finally:
                    conn.info.pop(AUDITED, None)
                    conn.info.pop(HEADS, None)
                    conn.info.pop(HEAD_CACHE, None)
        except BaseException:
            # Rolled back: whatever this transaction appended never happened.
            self.audit_heads.forget(set(heads))
            raise
        self.audit_heads.committed(heads)
        if not self.is_postgres:
            # One SQLite process: wake local waiters directly, after the commit.
            for channel, message in tx.wakes:
                self.hub.publish_local(channel, message)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn
