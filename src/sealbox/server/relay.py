"""The relay's process-wide state: settings, database engine, wake-up hub, at-rest key, clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sealbox.server.atrest import MasterKey
from sealbox.server.audit import AUDITED
from sealbox.server.config import Settings
from sealbox.server.db.engine import WRITE
from sealbox.server.notify import Hub
from sealbox.server.ratelimit import EventThrottle, RateLimiter
from sealbox.server.replay import ReplayGuard

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
    refusal_audit: EventThrottle = field(init=False)
    """Audit events of refused requests: one a minute per vault, source address and error."""

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = RateLimiter(self.settings.rate_per_second, self.settings.rate_burst)
        self.replay_guard = ReplayGuard(self.engine)
        self.anonymous_limiter = RateLimiter(rate=10 / 60, burst=10)
        self.refusal_audit = EventThrottle(interval=60)

    def now(self) -> int:
        return int(self.clock())

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A write transaction; its wake-ups reach waiters only after it commits."""
        async with self.engine.connect() as conn:
            conn.info[WRITE] = True
            try:
                conn.info.pop(AUDITED, None)
                async with conn.begin():
                    tx = Tx(conn)
                    yield tx
                    for vault in sorted(conn.info.pop(AUDITED, ())):
                        tx.wake(f"vault:{vault}:audit", "event")
                    for channel, message in tx.wakes:
                        await self.hub.publish(conn, channel, message)
            finally:
                conn.info.pop(WRITE, None)
                conn.info.pop(AUDITED, None)
        if not self.is_postgres:
            # One SQLite process: wake local waiters directly, after the commit.
            for channel, message in tx.wakes:
                self.hub.publish_local(channel, message)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn
