"""A vault's network allowlist for machines and agents, and its cache in each relay process.

The allowlist is read before every signature check of a machine or agent, so
each process keeps it in memory (:class:`Allowlists`).  A change made through
this process drops the cached copy at once; another replica's change is seen
within :data:`FRESH_SECONDS`, when the cached copy's version is compared with
the stored one (one small query per vault and second, not one per request).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.networks import Network, inside, parse_networks
from sealbox.server.store.tables import network_allowlists

__all__ = ["FRESH_SECONDS", "Allowlist", "Allowlists", "load", "lock", "save"]

#: How long a cached allowlist is used before its stored version is compared again: the
#: longest another replica's change can take to be enforced here.
FRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Allowlist:
    """Where a vault's machines and agents may call from."""

    enabled: bool
    """Off: any address (the networks are kept, but not applied)."""
    cidrs: tuple[str, ...]
    """Canonical CIDR text, sorted."""
    version: int
    """0 for a vault that never had one."""
    networks: tuple[Network, ...] = ()

    def allows(self, source: str | None) -> bool:
        """Whether a machine or agent may call from ``source`` (enabled and empty: none may)."""
        return not self.enabled or inside(source, self.networks)


NONE = Allowlist(enabled=False, cidrs=(), version=0)

_GET = select(network_allowlists).where(network_allowlists.c.vault_id == bindparam("vault"))
_VERSION = select(network_allowlists.c.version).where(
    network_allowlists.c.vault_id == bindparam("vault")
)


def _allowlist(row: Any) -> Allowlist:
    if row is None:
        return NONE
    cidrs = tuple(str(c) for c in row.cidrs or ())
    return Allowlist(bool(row.enabled), cidrs, int(row.version), parse_networks(cidrs))


async def load(conn: AsyncConnection, vault: str) -> Allowlist:
    """The vault's allowlist as stored (disabled and empty if it never had one)."""
    return _allowlist((await conn.execute(_GET, {"vault": vault})).first())


async def lock(conn: AsyncConnection, vault: str, now: int) -> Allowlist:
    """The vault's allowlist, its row made if missing and locked for this transaction.

    Two approvers changing it at once then apply their changes one after the other
    (PostgreSQL row lock; SQLite has one writer at a time).
    """
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    await conn.execute(
        insert(network_allowlists)
        .values(vault_id=vault, enabled=False, cidrs=[], version=0, updated_at=now)
        .on_conflict_do_nothing()
    )
    row = (
        await conn.execute(
            select(network_allowlists)
            .where(network_allowlists.c.vault_id == vault)
            .with_for_update()
        )
    ).first()
    return _allowlist(row)


async def save(
    conn: AsyncConnection, vault: str, *, enabled: bool, cidrs: Sequence[str], version: int,
    now: int,
) -> Allowlist:  # fmt: skip
    """Store a new state over the locked ``version``; it gets ``version + 1``."""
    ordered = sorted(set(cidrs), key=lambda c: (":" in c, c))
    await conn.execute(
        update(network_allowlists)
        .where(network_allowlists.c.vault_id == vault, network_allowlists.c.version == version)
        .values(enabled=enabled, cidrs=ordered, version=version + 1, updated_at=now)
    )
    return Allowlist(enabled, tuple(ordered), version + 1, parse_networks(ordered))


class Allowlists:
    """Allowlists by vault, each with when it was last known current.

    :meth:`forget` (after a change commits) drops the copy and makes any load
    that began before it keep its answer to itself: a load that read the old
    row just before the commit can no longer put it back in the cache.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cached: dict[str, tuple[float, Allowlist]] = {}
        self._generation = 0

    def forget(self, vault: str) -> None:
        self._generation += 1
        self._cached.pop(vault, None)

    async def get(self, conn: AsyncConnection, vault: str) -> Allowlist:
        entry = self._cached.get(vault)
        now = self._clock()
        if entry is not None and now - entry[0] < FRESH_SECONDS:
            return entry[1]
        generation = self._generation
        if entry is not None:
            stored = (await conn.execute(_VERSION, {"vault": vault})).scalar()
            if int(stored or 0) == entry[1].version:
                if generation == self._generation:
                    self._cached[vault] = (now, entry[1])
                return entry[1]
        found = await load(conn, vault)
        if generation == self._generation:
            self._cached[vault] = (now, found)
        return found
