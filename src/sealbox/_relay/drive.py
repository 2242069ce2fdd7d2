"""Drivers: send a flow's calls to the relay over httpx, blocking or with asyncio.

Both drivers do the same things, in the same order, so a flow behaves alike
under the SDK's :class:`~sealbox.Client` and :class:`~sealbox.AsyncClient`, the
CLI and the approvers:

- add this device's credentials (a bearer token, or an RFC 9421 signature made
  with the device key) to calls that want them, refreshing a session's token
  first when it is about to lapse, and once more on ``token_expired``;
- honour ``Retry-After`` on 429 (too many requests), a few times, bounded;
- for a call with an ``until`` (a wait on a request), ride out a relay that
  cannot be reached or answers 502/503/504: retry with exponential backoff
  until then, so a relay restart does not end a wait;
- turn a transport failure into :class:`~sealbox.errors.RelayUnreachable`
  saying, in words, what failed (never a bare exception class name).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, Reply
from sealbox.errors import RelayUnreachable

__all__ = ["AsyncDriver", "Authorize", "SyncDriver", "describe", "reply_of", "unreachable"]

Authorize = Callable[[httpx.Request], None]
"""Adds this device's credentials to a request built for a call with ``auth=True``."""

#: Times a call refused with 429 is tried again, after the relay's Retry-After.
RETRIES_429 = 3
#: The longest a driver waits on one Retry-After (a relay cannot stall a client for long).
MAX_RETRY_AFTER = 5.0
#: Backoff while the relay cannot be reached during a wait: from FIRST doubling to MOST.
BACKOFF_FIRST = 0.5
BACKOFF_MOST = 5.0
_GATEWAY = frozenset({502, 503, 504})


def reply_of(response: httpx.Response) -> Reply:
    """A :class:`Reply` from an httpx response (its body read as JSON if it is JSON)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    retry_after = None
    header = response.headers.get("retry-after")
    if header is not None:
        with contextlib.suppress(ValueError):
            retry_after = max(0.0, float(header))
    return Reply(response.status_code, body, retry_after)


def describe(exc: httpx.HTTPError) -> str:
    """What a transport failure means, for a person."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, httpx.ConnectError):
        cause = str(exc).strip()
        # "[Errno 111] Connection refused" -> "connection refused"
        cause = cause.split("] ", 1)[-1] if cause.startswith("[Errno") else cause
        return (cause[:1].lower() + cause[1:]) if cause else "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "it stopped answering (timed out)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed before the answer was complete"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the server URL is not an http:// or https:// URL"
    return str(exc) or "the connection failed"


def unreachable(
    server: str, exc: httpx.TransportError, *, waited: bool = False
) -> RelayUnreachable:
    detail = describe(exc)
    if waited:
        return RelayUnreachable(f"lost the relay at {server} and it did not come back in time: "
                                f"{detail}")  # fmt: skip
    return RelayUnreachable(f"could not reach the relay at {server}: {detail}")


class _Common:
    def __init__(
        self, server: str, *, authorize: Authorize | None = None,
        stale: Callable[[], bool] | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.server = server.rstrip("/")
        self.authorize = authorize
        self.stale = stale
        """Whether the credentials should be refreshed before the next call."""
        self.clock = clock

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        kwargs: dict[str, Any] = {}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.form is not None:
            kwargs["data"] = dict(call.form)
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        request = http.build_request(call.method, self.server + call.path, **kwargs)
        if call.auth and self.authorize is not None:
            self.authorize(request)
        return request

    def _retry_transport(self, call: Call, backoff: float) -> bool:
        return call.until is not None and self.clock() + backoff < call.until

    @staticmethod
    def _expired_token(reply: Reply) -> bool:
        return (
            reply.status == 401
            and isinstance(reply.body, dict)
            and reply.body.get("error") == "token_expired"
        )


def _next_call(flow: Flow, step: Callable[[], Call]) -> tuple[bool, Any]:
    try:
        return False, step()
    except StopIteration as stop:
        return True, stop.value


class SyncDriver(_Common):
    """Sends calls with a blocking ``httpx.Client``."""

    def __init__(
        self, http: httpx.Client, server: str, *, authorize: Authorize | None = None,
        refresh: Callable[[], None] | None = None, stale: Callable[[], bool] | None = None,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        super().__init__(server, authorize=authorize, stale=stale, clock=clock)
        self.http = http
        self.refresh = refresh
        self.sleep = sleep

    def response(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """One attempt: the raw response (transport errors raise as httpx's)."""
        if call.auth and self.refresh is not None and self.stale is not None and self.stale():
            self.refresh()
        return self.http.send(self.build(self.http, call), stream=stream)

    def send(self, call: Call) -> Reply:
        backoff, limited, refreshed, waited = BACKOFF_FIRST, 0, False, False
        while True:
            try:
                reply = reply_of(self.response(call))
            except httpx.TransportError as exc:
                if not self._retry_transport(call, backoff):
                    raise unreachable(self.server, exc, waited=waited) from None
                self.sleep(backoff)
                backoff, waited = min(backoff * 2, BACKOFF_MOST), True
                continue
            if reply.status in _GATEWAY and self._retry_transport(call, backoff):
                self.sleep(max(backoff, min(reply.retry_after or 0, MAX_RETRY_AFTER)))
                backoff, waited = min(backoff * 2, BACKOFF_MOST), True
                continue
            if reply.status == 429 and limited < RETRIES_429:
                limited += 1
                self.sleep(min(MAX_RETRY_AFTER, reply.retry_after or 1.0))
                continue
            if (
                call.auth
                and self.refresh is not None
                and not refreshed
                and self._expired_token(reply)
            ):
                refreshed = True
                self.refresh()
                continue
            return reply

    def drive(self, flow: Flow) -> Any:
        """Run ``flow`` to its end: its result, or what it raised."""
        done, value = _next_call(flow, lambda: next(flow))
        while not done:
            call: Call = value
            try:
                reply = self.send(call)
            except BaseException as exc:
                done, value = _next_call(flow, lambda e=exc: flow.throw(e))  # type: ignore[misc]
                continue
            done, value = _next_call(flow, lambda r=reply: flow.send(r))  # type: ignore[misc]
        return value


class AsyncDriver(_Common):
    """Sends calls with an ``httpx.AsyncClient``; never blocks the event loop."""

    def __init__(
        self, http: httpx.AsyncClient, server: str, *, authorize: Authorize | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
        stale: Callable[[], bool] | None = None, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        super().__init__(server, authorize=authorize, stale=stale, clock=clock)
        self.http = http
        self.refresh = refresh

    async def response(self, call: Call) -> httpx.Response:
        if call.auth and self.refresh is not None and self.stale is not None and self.stale():
            await self.refresh()
        return await self.http.send(self.build(self.http, call))

    async def send(self, call: Call) -> Reply:
        backoff, limited, refreshed, waited = BACKOFF_FIRST, 0, False, False
        while True:
            try:
                reply = reply_of(await self.response(call))
            except httpx.TransportError as exc:
                if not self._retry_transport(call, backoff):
                    raise unreachable(self.server, exc, waited=waited) from None
                await asyncio.sleep(backoff)
                backoff, waited = min(backoff * 2, BACKOFF_MOST), True
                continue
            if reply.status in _GATEWAY and self._retry_transport(call, backoff):
                await asyncio.sleep(max(backoff, min(reply.retry_after or 0, MAX_RETRY_AFTER)))
                backoff, waited = min(backoff * 2, BACKOFF_MOST), True
                continue
            if reply.status == 429 and limited < RETRIES_429:
                limited += 1
                await asyncio.sleep(min(MAX_RETRY_AFTER, reply.retry_after or 1.0))
                continue
            if (
                call.auth
                and self.refresh is not None
                and not refreshed
                and self._expired_token(reply)
            ):
                refreshed = True
                await self.refresh()
                continue
            return reply

    async def drive(self, flow: Flow) -> Any:
        done, value = _next_call(flow, lambda: next(flow))
        while not done:
            call: Call = value
            try:
                reply = await self.send(call)
            except BaseException as exc:
                done, value = _next_call(flow, lambda e=exc: flow.throw(e))  # type: ignore[misc]
                continue
            done, value = _next_call(flow, lambda r=reply: flow.send(r))  # type: ignore[misc]
        return value
