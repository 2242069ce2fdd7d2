"""The wake-up hub: closing it ends every wait, at once and for later subscribers too."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sealbox.server.notify import CLOSED, Hub, Mailbox


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


def test_a_mailbox_is_bounded_and_wakes_its_reader() -> None:
    async def run() -> None:
        box = Mailbox(maxsize=2)
        reader = asyncio.create_task(box.get())
        await asyncio.sleep(0)
        box.put_nowait("one")
        assert await reader == "one"
        box.put_nowait("two")
        box.put_nowait("three")
        with pytest.raises(asyncio.QueueFull):
            box.put_nowait("four")
        assert [box.get_nowait(), box.get_nowait()] == ["two", "three"]
        with pytest.raises(asyncio.QueueEmpty):
            box.get_nowait()
        # A reader cancelled while it waits leaves the mailbox usable.
        waiting = asyncio.create_task(box.get())
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        box.put_nowait("five")
        assert await box.get() == "five"

    asyncio.run(run())


def test_a_transactions_wake_ups_go_in_one_notify_and_come_out_one_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sealbox.server import notify

    sent: list[str] = []

    async def record(_conn: object, channel: str, payload: str) -> None:
        assert channel == notify.CHANNEL
        sent.append(payload)

    monkeypatch.setattr(notify.wakeups, "notify", record)

    async def run() -> None:
        hub = Hub()
        wakes = [("request:abc", '{"id":"abc","state":"released"}'), ("vault:v:approvers", "abc")]
        await hub.publish_all(object(), wakes)  # type: ignore[arg-type]
        assert sent == ['request:abc {"id":"abc","state":"released"}\nvault:v:approvers abc']
        # Many, or large, wake-ups: several payloads, each under the limit, none lost.
        sent.clear()
        many = [(f"request:{n}", "x" * 1000) for n in range(20)]
        await hub.publish_all(object(), many)  # type: ignore[arg-type]
        assert len(sent) > 1
        assert all(len(p) <= notify.NOTIFY_MAX for p in sent)
        assert [line.split(" ")[0] for p in sent for line in p.split("\n")] == [c for c, _ in many]
        with pytest.raises(ValueError, match="line break"):
            await hub.publish_all(object(), [("request:a", "two\nlines")])  # type: ignore[arg-type]
        # The listener hands each line to the local hub.
        listener = notify.PgListener("postgresql://unused", hub)
        async with (
            hub.subscribe("request:abc") as first,
            hub.subscribe("vault:v:approvers") as second,
        ):
            payload = 'request:abc {"id":"abc"}\nvault:v:approvers abc'
            listener._on_notify(None, 0, notify.CHANNEL, payload)
            assert first.get_nowait() == '{"id":"abc"}'
            assert second.get_nowait() == "abc"

    asyncio.run(run())
