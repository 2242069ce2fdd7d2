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
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, Reply
from sealbox.errors import RelayUnreachable

__all__ = [
    "AsyncDriver",
    "Authorize",
    "SyncDriver",
    "async_http_client",
    "describe",
    "http_client",
    "reply_of",
    "unreachable",
]

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
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


def _verify(server: str) -> Any:
    """TLS verification for ``server``: the system's trust store for https://.

    Loading the trust store costs a command about 60-90 ms.  A relay reached
    over plain http:// never uses it, so its client gets a TLS context that
    trusts nothing: should a call ever go to https:// it fails closed.
    """
    if server.lower().startswith("http://"):
        import ssl

        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and trusts no one
    return True


def http_client(server: str, *, timeout: float = 30) -> httpx.Client:
    """A blocking connection pool for calls to ``server``."""
    return httpx.Client(timeout=timeout, verify=_verify(server))


def async_http_client(server: str, *, timeout: float = 30) -> httpx.AsyncClient:
    """An asyncio connection pool for calls to ``server``."""
    return httpx.AsyncClient(timeout=timeout, verify=_verify(server))


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


def _cause(exc: BaseException) -> str:
    """The operating system's words for a transport failure ("connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            text = seen.strerror
            break
        seen = seen.__cause__ or seen.__context__
    else:
        text = _ERRNO.sub("", str(exc)).strip() or "the connection failed"
    return text[:1].lower() + text[1:]


def describe(exc: httpx.HTTPError) -> str:
    """What a transport failure means, for a person."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, httpx.ConnectError):
        return _cause(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "it stopped answering (timed out)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed before the answer was complete"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the server URL is not an http:// or https:// URL"
    return _cause(exc)


def unreachable(
    server: str, exc: httpx.TransportError, *, waited: bool = False
) -> RelayUnreachable:
    detail = describe(exc)
    if waited:
        return RelayUnreachable(f"lost the relay at {server} and it did not come back in time: "
                                f"{detail}")  # fmt: skip
    return RelayUnreachable(f"could not reach the relay at {server}: {detail}")


class _Attempts:
    """What to do after each attempt at one call: the one retry policy both drivers follow."""

    RETURN, SLEEP, REFRESH = "return", "sleep", "refresh"

    def __init__(self, driver: _Common, call: Call) -> None:
        self.driver, self.call = driver, call
        self.backoff, self.limited, self.refreshed, self.waited = BACKOFF_FIRST, 0, False, False

    def _may_wait_out(self) -> bool:
        return self.call.until is not None and self.driver.clock() + self.backoff < self.call.until

    def _back_off(self, at_least: float = 0.0) -> float:
        pause = max(self.backoff, at_least)
        self.backoff, self.waited = min(self.backoff * 2, BACKOFF_MOST), True
        return pause

    def after_failure(self, exc: httpx.TransportError) -> float:
        """Seconds to sleep before trying again; raises if the call may not wait that out."""
        if not self._may_wait_out():
            raise unreachable(self.driver.server, exc, waited=self.waited) from None
        return self._back_off()

    def after(self, reply: Reply) -> tuple[str, float]:
        """(``RETURN`` | ``SLEEP`` | ``REFRESH``, seconds to sleep) after a reply."""
        if reply.status in _GATEWAY and self._may_wait_out():
            return self.SLEEP, self._back_off(min(reply.retry_after or 0, MAX_RETRY_AFTER))
        if reply.status == 429 and self.limited < RETRIES_429:
            self.limited += 1
            return self.SLEEP, min(MAX_RETRY_AFTER, reply.retry_after or 1.0)
        expired = (
            reply.status == 401
            and isinstance(reply.body, dict)
            and reply.body.get("error") == "token_expired"
        )
        if expired and self.call.auth and self.driver.can_refresh and not self.refreshed:
            self.refreshed = True
            return self.REFRESH, 0.0
        return self.RETURN, 0.0


class _Common:
    can_refresh = False

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

    def _refresh_first(self, call: Call) -> bool:
        return call.auth and self.can_refresh and self.stale is not None and self.stale()


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
        self.can_refresh = refresh is not None
        self.sleep = sleep

    def response(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """One attempt: the raw response (transport errors raise as httpx's)."""
        if self._refresh_first(call):
            assert self.refresh is not None
            self.refresh()
        return self.http.send(self.build(self.http, call), stream=stream)

    def send(self, call: Call) -> Reply:
        attempts = _Attempts(self, call)
        while True:
            try:
                reply = reply_of(self.response(call))
            except httpx.TransportError as exc:
                self.sleep(attempts.after_failure(exc))
                continue
            action, pause = attempts.after(reply)
            if action == _Attempts.RETURN:
                return reply
            if action == _Attempts.REFRESH:
                assert self.refresh is not None
                self.refresh()
            else:
                self.sleep(pause)

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
        self.can_refresh = refresh is not None

    async def response(self, call: Call) -> httpx.Response:
        if self._refresh_first(call):
            assert self.refresh is not None
            await self.refresh()
        return await self.http.send(self.build(self.http, call))

    async def send(self, call: Call) -> Reply:
        attempts = _Attempts(self, call)
        while True:
            try:
                reply = reply_of(await self.response(call))
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_failure(exc))
                continue
            action, pause = attempts.after(reply)
            if action == _Attempts.RETURN:
                return reply
            if action == _Attempts.REFRESH:
                assert self.refresh is not None
                await self.refresh()
            else:
                await asyncio.sleep(pause)

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
