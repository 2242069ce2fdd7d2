"""First-use checks for signature nonces, persisted, with group commit.

Each signed request's nonce must be stored before the request is served, so a
replay is refused even after a restart or on another replica.  One transaction
per nonce makes that the most expensive step of a signed request; here the
nonces of all requests that arrive while a write is in flight are written
together in the next one (``INSERT … ON CONFLICT DO NOTHING RETURNING``),
and each request learns from the returned keys whether its nonce was new.
The database stays the judge, so replicas and restarts see the same answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sealbox.server.errors import Conflict
from sealbox.server.store.engine import writing
from sealbox.server.store.tables import replay

__all__ = ["ReplayGuard", "insert_jti", "purge_spent"]

MAX_BATCH = 512


@dataclass
class _Pending:
    row: dict[str, Any]
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ReplayGuard:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def first_use(self, vault: str, scope: str, key: str, expires_at: int) -> bool:
        """Record ``key`` in ``scope``; True if it was new, False if seen before."""
        pending = _Pending(
            {"vault_id": vault, "scope": scope, "key": key, "expires_at": expires_at}
        )
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await pending.done

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                fresh = await self._insert(batch)
            except Exception as exc:  # the database failed: every waiter must hear it
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            for p in batch:
                ident = (p.row["vault_id"], p.row["scope"], p.row["key"])
                if not p.done.done():
                    p.done.set_result(ident in fresh)
                fresh.discard(ident)  # a second copy in the same batch is a replay

    async def _insert(self, batch: list[_Pending]) -> set[tuple[str, str, str]]:
        rows = list(
            {(p.row["vault_id"], p.row["scope"], p.row["key"]): p.row for p in batch}.values()
        )
        # One prebuilt statement, executed for the batch: SQLAlchemy sends it as one
        # multi-row INSERT … RETURNING, and compiles it once rather than per batch size.
        statement = _FIRST_USES[self._engine.dialect.name]
        async with writing(self._engine) as conn:
            result = await conn.execute(statement, rows)
            return {(r.vault_id, r.scope, r.key) for r in result}


_FIRST_USES = {
    name: dialect.insert(replay)
    .on_conflict_do_nothing()
    .returning(replay.c.vault_id, replay.c.scope, replay.c.key)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_INSERT_ONCE = {
    "sqlite": sqlite.insert(replay).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(replay).on_conflict_do_nothing(),
}


async def insert_jti(conn: AsyncConnection, vault: str, jti: str, exp: int) -> None:
    """Record a statement's jti until it expires; a second use is a replay (conflict).

    ``ON CONFLICT DO NOTHING`` rather than catching the integrity error: the
    caller's transaction stays usable, with no savepoint (pysqlite's legacy
    transaction handling makes savepoints unsafe).
    """
    done = await conn.execute(
        _INSERT_ONCE[conn.dialect.name],
        {"vault_id": vault, "scope": "jti", "key": jti, "expires_at": exp},
    )
    if done.rowcount != 1:
        raise Conflict(
            "replay", "this statement (its jti) was already used",
            "Sign a fresh statement for each request.",
        )  # fmt: skip


async def purge_spent(conn: AsyncConnection, now: int) -> int:
    """Forget jtis and nonces past their expiry (their time window refuses them anyway)."""
    done = await conn.execute(delete(replay).where(replay.c.expires_at < now))
    return int(done.rowcount or 0)
