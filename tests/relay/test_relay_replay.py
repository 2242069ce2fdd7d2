"""Nonce first-use with group commit: the database is the judge, batches agree with it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from sealbox.server.relay import Relay
from sealbox.server.store.tables import replay

pytestmark = pytest.mark.anyio


async def test_concurrent_first_uses_are_batched_and_exact(relay: Relay) -> None:
    guard = relay.replay_guard
    keys = [f"apv_x nonce-{i % 40}" for i in range(120)]  # every key three times
    results = await asyncio.gather(*(guard.first_use("vlt_v", "nonce", k, 10**10) for k in keys))
    assert sum(results) == 40
    for key in set(keys):
        assert sum(r for k, r in zip(keys, results, strict=True) if k == key) == 1
    async with relay.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(replay))).scalar_one() == 40
    # Seen before, in a later batch, and from a fresh guard (as after a restart).
    assert await guard.first_use("vlt_v", "nonce", keys[0], 10**10) is False
    from sealbox.server.store.replay import ReplayGuard

    assert await ReplayGuard(relay.engine).first_use("vlt_v", "nonce", keys[1], 10**10) is False
    # Scopes and vaults are separate namespaces.
    assert await guard.first_use("vlt_v", "jti", keys[0], 10**10) is True
    assert await guard.first_use("vlt_w", "nonce", keys[0], 10**10) is True


async def test_a_database_failure_reaches_every_waiter(relay: Relay) -> None:
    from sealbox.server.store.replay import ReplayGuard

    await relay.engine.dispose()
    broken = ReplayGuard(relay.engine)
    broken._insert = _fail  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(broken.first_use("vlt_v", "nonce", f"k{i}", 1) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def _fail(_: object) -> set[tuple[str, str, str]]:
    raise RuntimeError("database unavailable")
