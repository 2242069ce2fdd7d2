"""Background work of the relay: :func:`sweeper` runs the housekeeping every few seconds."""

from __future__ import annotations

import asyncio
import logging

from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping

__all__ = ["sweep_once", "sweeper"]

log = logging.getLogger("sealbox.relay")


async def sweep_once(relay: Relay) -> int:
    """Expire overdue requests and purge what is spent; return how many requests expired."""
    swept = await housekeeping.sweep(relay, relay.now())
    return swept.expired


async def sweeper(relay: Relay, every: float | None = None) -> None:
    """Run :func:`sweep_once` every ``every`` (or ``Settings.sweep_seconds``) s until cancelled."""
    every = relay.settings.sweep_seconds if every is None else every
    while True:
        try:
            expired = await sweep_once(relay)
            if expired:
                log.info("expired %d request(s)", expired)
        except Exception:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled mid-sweep, and the database driver turned the cancellation into
                # an error of its own on the way out: stop as asked, or the server's shutdown
                # (which awaits this task) would wait for ever.
                raise asyncio.CancelledError from None
            # A failed sweep (database restarting, say) is retried next round;
            # the relay keeps serving meanwhile.
            log.exception("request sweep failed; retrying in %s s", every)
        await asyncio.sleep(every)
