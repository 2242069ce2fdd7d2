"""One MCP session: its random id, the values released to it, the requests it made.

**Agent-session cache scope.**  A ``sealbox mcp`` process serves one MCP
session (stdio: one client, one connection).  Its reads carry a random
``agent_session`` id in their signed context and ask for cache scope
``agent-session``; approvers see both.  Values an approver allowed to be kept
are held by :class:`SessionCache` in this process's memory only, until the
release's signed ``cache_until``, and served to this session's later calls
only: never written to disk, never given to the local cache agent (which other
processes of the user may ask), never to another session (another process,
with another id and an empty cache).  When the session ends they are dropped.

:class:`SessionClient` is the SDK's :class:`~sealbox.client.sdk.AsyncClient`
with that cache in place of the local cache agent, and the few relay calls
the tools need that the SDK does not make (a request's status, withdrawing
it, the client's own audit events, the relay's policy for a path).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sealbox._relay.calls import Call, Flow, expect_object
from sealbox.client._flows import Read
from sealbox.client.sdk import AsyncClient
from sealbox.errors import InvalidInput
from sealbox.protocol.statements import NO_CACHE, CacheRequest, RequestContext

__all__ = ["SCOPE", "SessionCache", "SessionClient", "SessionState"]

SCOPE = "agent-session"
#: A request's id: its statement's SHA-256, base64url without padding.
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass
class _Kept:
    value: bytes = field(repr=False)
    until: int
    request: str


class SessionCache:
    """Released values by reference, in memory, until their signed ``cache_until``.

    It stands where the SDK would use the local cache agent (``get``/``put``),
    and is called from worker threads, hence the lock.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()
        self._hits: dict[str, list[int]] = {}

    def get(self, refs: Iterable[str]) -> dict[str, bytes]:
        """The values still within their window, by reference; each one served is a hit."""
        now = self._clock()
        found: dict[str, bytes] = {}
        with self._lock:
            for ref in refs:
                kept = self._kept.get(ref)
                if kept is None:
                    continue
                if kept.until <= now:
                    del self._kept[ref]
                    continue
                found[ref] = kept.value
                hit = self._hits.setdefault(kept.request, [0, int(now), int(now)])
                hit[0] += 1
                hit[2] = int(now)
        return found

    def put(self, read: Read, values: Mapping[str, bytes]) -> int:
        """Keep ``values`` until the release's ``cache_until``, if it was released to this scope."""
        if read.cache_scope != SCOPE or read.cache_until <= self._clock():
            return 0
        with self._lock:
            for ref, value in values.items():
                self._kept[ref] = _Kept(value, read.cache_until, read.request)
        return len(values)

    def take_hits(self) -> list[dict[str, int | str]]:
        """The hits since the last call, as the relay's ``cache-hits`` report takes them."""
        with self._lock:
            hits, self._hits = self._hits, {}
        return [{"request": r, "hits": n, "first_at": first, "last_at": last}
                for r, (n, first, last) in sorted(hits.items())]  # fmt: skip

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._hits.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(k.until > self._clock() for k in self._kept.values())


@dataclass
class SessionState:
    """What one MCP session holds: its id, its cache, the requests it made (id -> kind)."""

    profile: str | None
    agent_session: str = field(default_factory=lambda: "mcp-" + secrets.token_urlsafe(18))
    cache: SessionCache = field(default_factory=SessionCache)
    requests: dict[str, str] = field(default_factory=dict)

    def client(self, context: RequestContext) -> SessionClient:
        """A client of this session's profile whose statements carry ``context``."""
        return SessionClient(self.profile, cache=self.cache, context=context)

    def kind_of(self, request_id: str) -> str:
        """``access`` or ``store`` for a request this session made; else a clear refusal."""
        kind = self.requests.get(request_id) if REQUEST_ID.fullmatch(request_id) else None
        if kind is None:
            raise InvalidInput(
                "this MCP session made no request with that id",
                hint="Use an id that run_with_secrets, store_secret or request_consent returned "
                "or reported in its progress.",
            )  # fmt: skip
        return kind


def _request_url(client: SessionClient, kind: str, request_id: str) -> str:
    return f"/v1/vaults/{client.vault}/{kind}-requests/{request_id}"


def _status_flow(url: str) -> Flow:
    body = expect_object((yield Call("GET", url)), "reading the request's state")
    # Only what says where the request stands: never an envelope or a statement.
    return {k: body[k] for k in ("id", "kind", "state", "approvals", "threshold", "expires_at",
                                 "version") if k in body}  # fmt: skip


def _cancel_flow(url: str) -> Flow:
    body = expect_object((yield Call("POST", f"{url}/cancel")), "withdrawing the request")
    return {k: body[k] for k in ("id", "state") if k in body}


def _mine_flow(vault: str, limit: int) -> Flow:
    body = expect_object((yield Call("GET", f"/v1/vaults/{vault}/audit/mine?limit={limit}")),
                         "reading your audit events")  # fmt: skip
    events = body.get("events")
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def _policy_flow(vault: str, path: str) -> Flow:
    body = expect_object(
        (yield Call("GET", f"/v1/vaults/{vault}/policy?path={quote(path, safe='/')}")),
        f"reading the policy for {path}",
    )
    return {k: body[k] for k in ("approvers", "threshold", "expiry_seconds", "max_cache_seconds",
                                 "store_needs_approval") if k in body}  # fmt: skip


class SessionClient(AsyncClient):
    """The SDK's asyncio client, with the MCP session's cache and scope."""

    def __init__(self, profile: str | None, *, cache: SessionCache,
                 context: RequestContext) -> None:  # fmt: skip
        super().__init__(profile, cache=True)
        self._session_cache = cache
        self.context = context

    async def __aenter__(self) -> SessionClient:
        return self

    def _agent(self) -> Any:
        # The session's own memory, not the user's cache agent: values released to this
        # session are served to this session only.
        return self._session_cache

    def _cache_request(self, cache_seconds: int | None) -> CacheRequest:
        if not cache_seconds:
            return NO_CACHE
        return CacheRequest(seconds=int(cache_seconds), scope=SCOPE)

    async def request_status(self, kind: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._drive(
            _status_flow(_request_url(self, kind, request_id))
        )
        return result

    async def cancel_request(self, kind: str, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._drive(
            _cancel_flow(_request_url(self, kind, request_id))
        )
        return result

    async def my_events(self, limit: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._drive(_mine_flow(self.vault, limit))
        return result

    async def relay_policy(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._drive(_policy_flow(self.vault, path))
        return result
