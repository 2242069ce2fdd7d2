"""The background sweeper stops when cancelled, even if the cancellation comes back as an error."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from sealbox.server import jobs


def test_a_cancel_turned_into_an_error_still_stops_the_sweeper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = asyncio.Event()

    async def sweep_once(_: Any) -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            # What a database driver may do when cancelled mid-query: raise its own error.
            raise RuntimeError("another operation is in progress") from None
        return 0

    monkeypatch.setattr(jobs, "sweep_once", sweep_once)
    relay = SimpleNamespace(settings=SimpleNamespace(sweep_seconds=0.01))

    async def main() -> None:
        task = asyncio.create_task(jobs.sweeper(relay))  # type: ignore[arg-type]
        await started.wait()
        task.cancel()
        # Not wait_for: it would wait for the task's end for ever if it never came.
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled(), "the sweeper kept running after it was cancelled"

    asyncio.run(main())


def test_a_failed_sweep_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def sweep_once(_: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database restarting")
        return 0

    monkeypatch.setattr(jobs, "sweep_once", sweep_once)
    relay = SimpleNamespace(settings=SimpleNamespace(sweep_seconds=0.01))

    async def main() -> None:
        task = asyncio.create_task(jobs.sweeper(relay))  # type: ignore[arg-type]
        while calls < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
