"""The wake-up hub: closing it ends every wait, at once and for later subscribers too."""

from __future__ import annotations

import asyncio

from sealbox.server.notify import CLOSED, Hub


def test_close_wakes_every_waiting_subscriber() -> None:
    async def run() -> None:
        hub = Hub()
        async with hub.subscribe("a") as a, hub.subscribe("a") as a2, hub.subscribe("b") as b:
            waiting = [asyncio.create_task(q.get()) for q in (a, a2, b)]
            await asyncio.sleep(0)
            assert not any(task.done() for task in waiting)
            hub.close()
            async with asyncio.timeout(1):
                assert await asyncio.gather(*waiting) == [CLOSED, CLOSED, CLOSED]

    asyncio.run(run())


def test_close_reaches_a_full_queue_first() -> None:
    async def run() -> None:
        hub = Hub()
        async with hub.subscribe("r", maxsize=1) as queue:
            hub.publish_local("r", "req_1")
            assert queue.full()
            hub.close()
            # The wake-up no longer matters; the waiter must learn that it should stop.
            assert queue.get_nowait() is CLOSED
            assert queue.empty()

    asyncio.run(run())


def test_after_close_new_subscribers_end_at_once_and_nothing_follows() -> None:
    async def run() -> None:
        hub = Hub()
        hub.close()
        hub.close()  # idempotent: one CLOSED, not two
        async with hub.subscribe("a") as queue:
            async with asyncio.timeout(1):
                assert await queue.get() is CLOSED
            hub.publish_local("a", "late")
            assert queue.empty()
        assert hub.subscriber_count() == 0

    asyncio.run(run())


def test_closed_is_no_message() -> None:
    # A message with the same text, e.g. from another replica's NOTIFY, is still a message.
    text = "".join(["clo", "sed"])  # a fresh string, as a NOTIFY payload would be
    assert text == CLOSED.value
    assert text != CLOSED
