"""The relay-client core's drivers and waits, against scripted relays (httpx.MockTransport).

What is pinned: ``Retry-After`` is honoured (not a hint's wording); a wait rides
out a relay that is away until the request's expiry and says in words what
failed when it gives up; a token that expired is refreshed once; a wait that is
interrupted withdraws its request, and a store found stored while withdrawing is
reported as stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sealbox._relay.calls import Call, Flow, Reply
from sealbox._relay.drive import AsyncDriver, SyncDriver
from sealbox.client import _flows as flows
from sealbox.client._flows import ClientState, WaitState
from sealbox.crypto.keys import SigningKey
from sealbox.errors import RelayRefused, RelayUnreachable, RequestExpired
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead

SERVER = "http://relay.test"
Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _script(*steps: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(steps)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(queue)
        if isinstance(step, Exception):
            raise step
        return step

    return handle, seen


def _driver(handler: Handler, clock: Clock, **kw: Any) -> SyncDriver:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return SyncDriver(http, SERVER, sleep=clock.sleep, clock=clock, **kw)


def _refused_connection() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


def test_retry_after_is_honoured_from_the_header() -> None:
    clock = Clock()
    handler, seen = _script(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": "too_many",
                       "hint": "wait 4.5 s"}),
        httpx.Response(200, json={"ok": True}),
    )  # fmt: skip
    reply = _driver(handler, clock).send(Call("GET", "/v1/x"))
    assert reply.status == 200
    assert len(seen) == 2
    assert clock.slept == [2.0]


def test_a_relay_that_keeps_refusing_ends_the_retries() -> None:
    clock = Clock()
    handler, seen = _script(*[httpx.Response(429, headers={"Retry-After": "60"})] * 4)
    reply = _driver(handler, clock).send(Call("GET", "/v1/x"))
    assert reply.status == 429
    assert len(seen) == 4
    assert clock.slept == [5.0, 5.0, 5.0]  # a relay cannot stall a client for a minute each


def test_an_unreachable_relay_is_said_in_words() -> None:
    clock = Clock()
    handler, _ = _script(_refused_connection())
    with pytest.raises(RelayUnreachable) as caught:
        _driver(handler, clock).send(Call("GET", "/v1/x"))
    assert caught.value.message == f"could not reach the relay at {SERVER}: connection refused"
    assert "ConnectError" not in caught.value.message
    assert clock.slept == []  # a call without `until` fails at once


def test_a_wait_rides_out_a_relay_restart() -> None:
    clock = Clock()
    handler, seen = _script(
        _refused_connection(), httpx.Response(503), _refused_connection(),
        httpx.Response(200, json={"state": "pending"}),
    )  # fmt: skip
    reply = _driver(handler, clock).send(Call("GET", "/v1/x", until=clock() + 60))
    assert reply.body == {"state": "pending"}
    assert len(seen) == 4
    assert clock.slept == [0.5, 1.0, 2.0]


def test_a_wait_gives_up_at_its_deadline_and_says_so() -> None:
    clock = Clock()
    handler, seen = _script(*[_refused_connection()] * 20)
    with pytest.raises(RelayUnreachable) as caught:
        _driver(handler, clock).send(Call("GET", "/v1/x", until=clock() + 10))
    assert "did not come back in time: connection refused" in caught.value.message
    assert sum(clock.slept) <= 10
    assert len(seen) < 20


def test_an_expired_token_is_refreshed_once() -> None:
    clock = Clock()
    tokens = iter(["second", "third"])
    current = {"token": "first"}
    refreshes: list[str] = []

    def refresh() -> None:
        current["token"] = next(tokens)
        refreshes.append(current["token"])

    def authorize(request: httpx.Request) -> None:
        request.headers["authorization"] = f"Bearer {current['token']}"

    expired = httpx.Response(401, json={"error": "token_expired", "message": "expired"})
    handler, seen = _script(expired, httpx.Response(200, json={}), expired, expired)
    driver = _driver(handler, clock, authorize=authorize, refresh=refresh, stale=lambda: False)
    assert driver.send(Call("GET", "/v1/x")).status == 200
    assert [r.headers["authorization"] for r in seen] == ["Bearer first", "Bearer second"]
    # Refreshed once per call: a relay that keeps saying "expired" gets its 401 back.
    assert driver.send(Call("GET", "/v1/x")).status == 401
    assert refreshes == ["second", "third"]


def test_the_relays_words_are_made_safe_to_print() -> None:
    from sealbox._relay.calls import refused

    reply = Reply(403, {"error": "forbidden", "message": "no\x1b[2J way", "hint": "\u202eevil"})
    exc = refused(reply, "reading")
    assert "\x1b" not in exc.message
    assert "\u202e" not in (exc.hint or "")
    assert exc.status == 403
    assert exc.error == "forbidden"
    assert isinstance(exc, RelayRefused)


def test_the_async_driver_rides_out_a_restart_and_honours_retry_after() -> None:
    handler, seen = _script(
        _refused_connection(), httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"state": "pending"}),
    )  # fmt: skip

    async def go() -> Reply:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            driver = AsyncDriver(http, SERVER)
            return await driver.send(Call("GET", "/v1/x", until=2e9))

    assert asyncio.run(go()).status == 200
    assert len(seen) == 3


# --- waits -------------------------------------------------------------------------------


def _state(clock: Clock) -> ClientState:
    return ClientState(
        vault=ids.new_id(ids.VAULT), client_id=ids.new_id(ids.CLIENT), key=SigningKey.generate(),
        fingerprint="sha256:" + "A" * 43, head=DirectoryHead(seq=0, hash="sha256:" + "B" * 43),
        clock=clock,
    )  # fmt: skip


def _run(flow: Flow, answer: Callable[[Call], Reply | BaseException]) -> tuple[Any, list[Call]]:
    """Drive ``flow`` with ``answer`` (a reply, or an exception thrown in as a driver would)."""
    calls: list[Call] = []
    try:
        call = next(flow)
        while True:
            calls.append(call)
            got = answer(call)
            call = flow.throw(got) if isinstance(got, BaseException) else flow.send(got)
    except StopIteration as stop:
        return stop.value, calls


def test_a_wait_reports_what_it_waits_for() -> None:
    clock = Clock()
    states: list[WaitState] = []
    answers = iter([Reply(200, {"state": "pending", "approvals": 1}),
                    Reply(200, {"state": "released"})])  # fmt: skip
    wait = flows._wait(_state(clock), "access", "r" * 43, int(clock()) + 300, states.append, 2,
                       ("shop/prod/db",))  # fmt: skip
    result, calls = _run(wait, lambda call: next(answers))
    assert result == {"state": "released"}
    assert [s.approvals for s in states] == [0, 1]
    assert states[0].paths == ("shop/prod/db",)
    assert states[0].threshold == 2
    assert states[0].expires_at == int(clock()) + 300
    # Each poll may be retried until the request's expiry (a relay restart is waited out).
    assert calls[0].until == int(clock()) + 300 + flows.EXPIRY_SLACK


def test_an_interrupted_wait_withdraws_the_request() -> None:
    clock = Clock()
    state = _state(clock)
    wait = flows._wait(state, "access", "r" * 43, int(clock()) + 300, None, 1, ("a/b/c",))
    tried: list[str] = []

    def answer(call: Call) -> Reply | BaseException:
        tried.append(f"{call.method} {call.path}")
        if call.path.endswith("/cancel"):
            return Reply(200, {"state": "cancelled"})
        return KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        _run(wait, answer)
    assert tried[-1] == f"POST {state.base}/access-requests/{'r' * 43}/cancel"


def test_an_interrupted_wait_withdraws_even_if_the_relay_is_away() -> None:
    clock = Clock()
    wait = flows._wait(_state(clock), "store", "r" * 43, int(clock()) + 300, None, 1, ("a/b/c",))
    tried: list[str] = []

    def answer(call: Call) -> Reply | BaseException:
        tried.append(call.path)
        if call.path.endswith("/cancel"):
            assert call.until is not None  # the withdrawal is retried for a while
            return RelayUnreachable("could not reach the relay")
        return KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):  # the interrupt, not the failed withdrawal
        _run(wait, answer)
    assert tried[-1].endswith("/cancel")


def test_a_store_found_stored_while_withdrawing_is_reported_stored() -> None:
    clock = Clock()
    wait = flows._wait(_state(clock), "store", "r" * 43, int(clock()) + 300, None, 1, ("a/b/c",))

    def answer(call: Call) -> Reply | BaseException:
        if call.path.endswith("/cancel"):
            return Reply(409, {"error": "not_pending"})
        if call.method == "GET" and "wait=" not in call.path:
            return Reply(200, {"state": "stored"})
        return RelayUnreachable("lost the relay")

    result, _calls = _run(wait, answer)
    assert result == {"state": "stored"}


def test_a_wait_past_the_expiry_stops_asking() -> None:
    clock = Clock()
    wait = flows._wait(_state(clock), "access", "r" * 43, int(clock()) - 10, None, 1, ("a/b/c",))
    with pytest.raises(RequestExpired):
        _run(wait, lambda call: Reply(200, {"state": "pending"}))
