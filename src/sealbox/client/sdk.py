"""The Python SDK: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both drive the same sans-IO flows (:mod:`sealbox.client.flows`) over httpx,
with the session of a ``sealbox login`` profile::

    import sealbox

    with sealbox.Client(purpose="nightly report") as vault:
        password = vault.read("sealbox://shop/prod/db/password")
        both = vault.read_many(["sealbox://shop/prod/db/user",
                                "sealbox://shop/prod/db/password"])   # one approval
        vault.store("shop/prod/api", {"token": b"..."})

    async with sealbox.AsyncClient() as vault:
        password = await vault.read("sealbox://shop/prod/db/password")

Every read is one access request that an approver (a person, or the
organisation's automated approver) answers; the value is released sealed to
a one-time key made for that request.  A read that cannot be verified raises
and returns nothing.  When a local cache agent runs (``sealbox cache
start``), values an approver allowed to be kept are served from it until
their signed ``cache_until``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sealbox._relay.files import write_private
from sealbox.client import flows
from sealbox.client import profile as profiles
from sealbox.client.context import process_context
from sealbox.client.flows import (
    Call,
    ClientState,
    Flow,
    ItemInfo,
    Read,
    Reply,
    Stored,
    VersionInfo,
    Wanted,
)
from sealbox.errors import MalformedInput
from sealbox.protocol import ids
from sealbox.protocol.statements import NO_CACHE, CacheRequest, RequestContext

__all__ = ["AsyncClient", "Client", "parse_references"]

T = TypeVar("T")
#: Refresh an access token this long before it expires.
REFRESH_MARGIN = 60
SEEN_FORMAT = "sealbox.seen.v1"
#: Times a call refused with 429 (too many requests) is tried again after the relay's hint.
RETRIES_429 = 3
MAX_RETRY_WAIT = 5.0


def parse_references(references: Iterable[str]) -> list[tuple[str, ids.Reference]]:
    """(reference text, parsed) pairs; a malformed reference raises ``MalformedInput``."""
    return [(text, ids.parse_reference(text)) for text in references]


def _pick(read: Read, ref: ids.Reference, text: str) -> bytes:
    values = read.values[ref.path]
    if ref.field is not None:
        return values[ref.field]
    if len(values) != 1:
        raise MalformedInput(
            f"{text}: the item has several fields ({', '.join(sorted(values))}); name one",
            hint=f"Use {text}/FIELD.",
        )
    return next(iter(values.values()))


def _wanted(refs: Sequence[ids.Reference]) -> list[Wanted]:
    by_path: dict[str, set[str] | None] = {}
    for ref in refs:
        if ref.field is None or by_path.get(ref.path, set()) is None:
            by_path[ref.path] = None
        else:
            fields = by_path.setdefault(ref.path, set())
            assert fields is not None
            fields.add(ref.field)
    return [Wanted(path, None if f is None else tuple(sorted(f))) for path, f in by_path.items()]


class _Session:
    """A profile's identity, credentials and verified state, shared by both clients."""

    def __init__(self, profile: str | None) -> None:
        self.name = profiles.profile_name(profile)
        self.path = profiles.profile_path(self.name)
        self.profile = profiles.load(self.path, name=self.name)
        p = self.profile
        self.seen_path = self.path.with_name(f"{self.name}.seen.json")
        self.state = ClientState(
            vault=p.vault, client_id=p.client_id, key=p.key, fingerprint=p.fingerprint,
            head=p.head, seen=self._load_seen(),
        )  # fmt: skip
        self._saved_seen = dict(self.state.seen)

    @property
    def server(self) -> str:
        return self.profile.server

    def _load_seen(self) -> dict[str, int]:
        try:
            document = json.loads(self.seen_path.read_text())
        except (OSError, ValueError):
            return {}
        seen = document.get("seen") if isinstance(document, dict) else None
        if document.get("format") != SEEN_FORMAT or not isinstance(seen, dict):
            return {}
        return {k: v for k, v in seen.items() if isinstance(k, str) and type(v) is int}

    def persist(self) -> None:
        """Keep what only moves forward: the directory head, the versions seen."""
        if self.state.head != self.profile.head:
            with profiles.locked(self.path):
                current = profiles.load(self.path, name=self.name)
                if self.state.head.seq >= current.head.seq:
                    profiles.save(self.path, replace(current, head=self.state.head),
                                  overwrite=True)  # fmt: skip
                self.profile = replace(self.profile, head=self.state.head)
        if self.state.seen and self.state.seen != self._saved_seen:
            # Several clients of one profile (threads, processes) write this file:
            # under a lock, merge with what is there (versions only move forward),
            # and write through a temporary file of our own.
            with profiles.locked(self.seen_path):
                merged = self._load_seen()
                for item, version in self.state.seen.items():
                    merged[item] = max(merged.get(item, 0), version)
                write_private(self.seen_path, json.dumps({"format": SEEN_FORMAT, "seen": merged}))
                self.state.seen.update(merged)
                self._saved_seen = dict(merged)

    def needs_refresh(self) -> bool:
        return self.profile.expires_at <= time.time() + REFRESH_MARGIN

    def refresh_flow(self) -> Flow:
        """Rotate the tokens, under the profile's lock (another process may have already)."""
        with profiles.locked(self.path):
            current = profiles.load(self.path, name=self.name)
            if current.expires_at > time.time() + REFRESH_MARGIN:
                self.profile = replace(self.profile, access_token=current.access_token,
                                       refresh_token=current.refresh_token,
                                       expires_at=current.expires_at)  # fmt: skip
                return None
            reply = yield Call(
                "POST", "/oauth/token", auth=False,
                form={"grant_type": "refresh_token", "refresh_token": current.refresh_token,
                      "client_id": current.client_id},
            )  # fmt: skip
            if reply.status != 200 or not isinstance(reply.body, dict):
                error = reply.body.get("error") if isinstance(reply.body, dict) else None
                if error == "invalid_grant":
                    raise profiles.NotLoggedIn(
                        "the session has ended (logged out, revoked, or expired)",
                        hint="Log in again with `sealbox login`.",
                    )
                raise flows.RelayRefused(f"refreshing the session: HTTP {reply.status}")
            body = reply.body
            fresh = current.with_tokens(
                str(body["access_token"]), str(body["refresh_token"]),
                int(time.time()) + int(body["expires_in"]),
            )  # fmt: skip
            profiles.save(self.path, fresh, overwrite=True)
            self.profile = replace(self.profile, access_token=fresh.access_token,
                                   refresh_token=fresh.refresh_token,
                                   expires_at=fresh.expires_at)  # fmt: skip
        return None

    def request(self, call: Call) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``AsyncClient.request``."""
        kwargs: dict[str, Any] = {"method": call.method, "url": self.server + call.path}
        headers = {}
        if call.auth:
            headers["authorization"] = f"Bearer {self.profile.access_token}"
        if call.json is not None:
            kwargs["json"] = call.json
        if call.form is not None:
            kwargs["data"] = dict(call.form)
        if call.timeout is not None:
            kwargs["timeout"] = call.timeout
        kwargs["headers"] = headers
        return kwargs


def _reply(response: httpx.Response) -> Reply:
    try:
        body = response.json()
    except ValueError:
        body = None
    return Reply(response.status_code, body)


def _retry_after(reply: Reply) -> float:
    """Seconds the relay asked this client to wait (a 429's hint), bounded."""
    hint = reply.body.get("hint") if isinstance(reply.body, dict) else None
    found = re.search(r"([0-9]+(?:\.[0-9]+)?) s", hint or "")
    return min(MAX_RETRY_WAIT, max(0.2, float(found.group(1)) if found else 1.0))


def _expired_token(reply: Reply) -> bool:
    return (
        reply.status == 401
        and isinstance(reply.body, dict)
        and reply.body.get("error") == "token_expired"
    )


def _purpose(purpose: str | None, default: str | None) -> str:
    chosen = purpose or default or f"{Path(sys.argv[0]).name or 'python'} (sealbox SDK)"
    return chosen[:500]


def _first(flow: Flow) -> Call | None:
    try:
        return next(flow)
    except StopIteration as stop:
        raise _Done(stop.value) from None


class _Done(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Base:
    """What both clients share: the session, defaults, the cache agent, the read logic."""

    def __init__(self, profile: str | None, purpose: str | None, cache: bool) -> None:
        self._session = _Session(profile)
        self._purpose = purpose
        self._use_cache = cache
        self._context: RequestContext | None = None

    @property
    def context(self) -> RequestContext:
        """The context every statement carries (this process, by default).

        Made on first use: hashing the executable is wasted on a read the cache answers.
        """
        if self._context is None:
            self._context = process_context()
        return self._context

    @context.setter
    def context(self, value: RequestContext) -> None:
        self._context = value

    @property
    def vault(self) -> str:
        return self._session.state.vault

    @property
    def client_id(self) -> str:
        return self._session.state.client_id

    def _cache_request(self, cache_seconds: int | None) -> CacheRequest:
        if not cache_seconds:
            return NO_CACHE
        return CacheRequest(seconds=int(cache_seconds), scope="user")

    def _agent(self) -> Any:
        """This process's kept connection to the profile's cache agent; ``None``: cache off."""
        if not self._use_cache:
            return None
        try:  # looked up once per client: a cache hit is a few dozen microseconds
            return self.__dict__["_cache_agent"]
        except KeyError:
            from sealbox.client import cache

            agent = self.__dict__["_cache_agent"] = cache.shared(self._session.name)
            return agent

    def _from_cache(
        self, refs: Sequence[tuple[str, ids.Reference]]
    ) -> tuple[dict[str, bytes], list[tuple[str, ids.Reference]]]:
        agent = self._agent()
        if agent is None:
            return {}, list(refs)
        found: dict[str, bytes] = agent.get([text for text, _ in refs])
        return found, [(t, r) for t, r in refs if t not in found]

    def _to_cache(self, read: Read, refs: Sequence[tuple[str, ids.Reference]]) -> None:
        agent = self._agent()
        if agent is None:
            return
        kept = read.cache_until > time.time() and agent.put(
            read, {t: _pick(read, r, t) for t, r in refs}
        )
        if read.cache_asked and not kept:
            # Asked to cache, and nothing was: say why, or the user is left guessing.
            from sealbox.client import cache

            cache.explain_not_cached(self._session.name, read, self._session.state.policies)


class Client(_Base):
    """A blocking sealbox client over the session of a ``sealbox login`` profile.

    ``profile`` picks the login (default: ``SEALBOX_PROFILE``, else
    ``default``); ``purpose`` is what approvers are shown when a call does not
    give its own; ``cache=False`` never consults the local cache agent.
    """

    def __init__(
        self, profile: str | None = None, *, purpose: str | None = None,
        http: httpx.Client | None = None, cache: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(profile, purpose, cache)
        self._http = http or httpx.Client(timeout=30)
        self._owns_http = http is None
        self._refresh_lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # --- driving flows ---

    def _send(self, call: Call) -> Reply:
        if call.auth and self._session.needs_refresh():
            with self._refresh_lock:
                if self._session.needs_refresh():
                    self._drive(self._session.refresh_flow(), persist=False)
        reply = _reply(self._http.request(**self._session.request(call)))
        if call.auth and _expired_token(reply):
            with self._refresh_lock:
                self._drive(self._session.refresh_flow(), persist=False)
            reply = _reply(self._http.request(**self._session.request(call)))
        for _ in range(RETRIES_429):
            if reply.status != 429:
                break
            time.sleep(_retry_after(reply))
            reply = _reply(self._http.request(**self._session.request(call)))
        return reply

    def _drive(self, flow: Flow, *, persist: bool = True) -> Any:
        try:
            call = _first(flow)
            while True:
                assert call is not None
                try:
                    reply = self._send(call)
                except BaseException as exc:
                    call = flow.throw(exc)
                    continue
                call = flow.send(reply)
        except _Done as done:
            return done.value
        except StopIteration as stop:
            return stop.value
        finally:
            if persist:
                self._session.persist()

    # --- the public calls ---

    def fetch(
        self, wanted: Sequence[Wanted], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: flows.OnWait | None = None, ttl: int = 300,
    ) -> Read:  # fmt: skip
        """Ask for several items' fields in ONE access request; wait; open the release."""
        result: Read = self._drive(flows.read_flow(
            self._session.state, wanted, purpose=_purpose(purpose, self._purpose),
            context=self.context, cache=self._cache_request(cache_seconds), ttl=ttl,
            on_wait=on_wait,
        ))  # fmt: skip
        return result

    def read_many(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: flows.OnWait | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Values of ``sealbox://`` references (UTF-8 text), by reference, in one approval."""
        return {
            k: v.decode()
            for k, v in self.read_many_bytes(
                references, purpose=purpose, cache_seconds=cache_seconds, on_wait=on_wait
            ).items()
        }

    def read_many_bytes(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: flows.OnWait | None = None,
    ) -> dict[str, bytes]:  # fmt: skip
        refs = parse_references(references)
        found, missing = self._from_cache(refs)
        if missing:
            read = self.fetch(_wanted([r for _, r in missing]), purpose=purpose,
                              cache_seconds=cache_seconds, on_wait=on_wait)  # fmt: skip
            fresh = {t: _pick(read, r, t) for t, r in missing}
            self._to_cache(read, missing)
            found.update(fresh)
        return {t: found[t] for t, _ in refs}

    def read(self, reference: str, *, purpose: str | None = None,
             cache_seconds: int | None = None) -> str:  # fmt: skip
        """One value as text, e.g. ``read("sealbox://shop/prod/db/password")``."""
        return self.read_bytes(reference, purpose=purpose, cache_seconds=cache_seconds).decode()

    def read_bytes(self, reference: str, *, purpose: str | None = None,
                   cache_seconds: int | None = None) -> bytes:  # fmt: skip
        return self.read_many_bytes([reference], purpose=purpose,
                                    cache_seconds=cache_seconds)[reference]  # fmt: skip

    def store(
        self, path: str, fields: Mapping[str, str | bytes], *, purpose: str | None = None,
        on_wait: flows.OnWait | None = None,
    ) -> Stored:  # fmt: skip
        """Store ``fields`` as the next version of ``path``; returns once an approver signed it."""
        values = {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in fields.items()}
        result: Stored = self._drive(flows.store_flow(
            self._session.state, path, values, purpose=_purpose(purpose, self._purpose),
            context=self.context, on_wait=on_wait,
        ))  # fmt: skip
        return result

    def list(self) -> builtins.list[ItemInfo]:
        """The items this client may ask for."""
        result: builtins.list[ItemInfo] = self._drive(flows.list_flow(self._session.state))
        return result

    def history(self, path: str) -> builtins.list[VersionInfo]:
        """Every version of the item at ``path``, manifests verified, oldest first."""
        result: builtins.list[VersionInfo] = self._drive(
            flows.history_flow(self._session.state, path)
        )
        return result

    def report_cache_hits(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Tell the relay's audit which releases were reused from the local cache."""
        self._drive(_report_flow(self._session.state, hits))


def _report_flow(state: ClientState, hits: Sequence[Mapping[str, Any]]) -> Flow:
    reply = yield Call("POST", f"{state.base}/cache-hits", {"hits": list(hits)})
    if reply.status != 200:
        raise flows.RelayRefused(f"reporting cache hits: HTTP {reply.status}")
    return None


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: the same calls, awaited."""

    def __init__(
        self, profile: str | None = None, *, purpose: str | None = None,
        http: httpx.AsyncClient | None = None, cache: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(profile, purpose, cache)
        self._http = http or httpx.AsyncClient(timeout=30)
        self._owns_http = http is None
        self._refresh_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _refresh(self, *, force: bool) -> None:
        # One refresh at a time in this event loop: the profile's file lock is held
        # across the token call, and a second task blocking on it would stall the loop.
        async with self._refresh_lock:
            if force or self._session.needs_refresh():
                await self._drive(self._session.refresh_flow(), persist=False)

    async def _send(self, call: Call) -> Reply:
        if call.auth and self._session.needs_refresh():
            await self._refresh(force=False)
        reply = _reply(await self._http.request(**self._session.request(call)))
        if call.auth and _expired_token(reply):
            await self._refresh(force=True)
            reply = _reply(await self._http.request(**self._session.request(call)))
        for _ in range(RETRIES_429):
            if reply.status != 429:
                break
            await asyncio.sleep(_retry_after(reply))
            reply = _reply(await self._http.request(**self._session.request(call)))
        return reply

    async def _drive(self, flow: Flow, *, persist: bool = True) -> Any:
        try:
            call = _first(flow)
            while True:
                assert call is not None
                try:
                    reply = await self._send(call)
                except BaseException as exc:
                    call = flow.throw(exc)
                    continue
                call = flow.send(reply)
        except _Done as done:
            return done.value
        except StopIteration as stop:
            return stop.value
        finally:
            if persist:
                self._session.persist()

    async def fetch(
        self, wanted: Sequence[Wanted], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: flows.OnWait | None = None, ttl: int = 300,
    ) -> Read:  # fmt: skip
        result: Read = await self._drive(flows.read_flow(
            self._session.state, wanted, purpose=_purpose(purpose, self._purpose),
            context=self.context, cache=self._cache_request(cache_seconds), ttl=ttl,
            on_wait=on_wait,
        ))  # fmt: skip
        return result

    async def read_many_bytes(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None,
    ) -> dict[str, bytes]:  # fmt: skip
        refs = parse_references(references)
        found, missing = self._from_cache(refs)
        if missing:
            read = await self.fetch(_wanted([r for _, r in missing]), purpose=purpose,
                                    cache_seconds=cache_seconds)  # fmt: skip
            found.update({t: _pick(read, r, t) for t, r in missing})
            self._to_cache(read, missing)
        return {t: found[t] for t, _ in refs}

    async def read_many(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None,
    ) -> dict[str, str]:  # fmt: skip
        got = await self.read_many_bytes(references, purpose=purpose, cache_seconds=cache_seconds)
        return {k: v.decode() for k, v in got.items()}

    async def read(self, reference: str, *, purpose: str | None = None,
                   cache_seconds: int | None = None) -> str:  # fmt: skip
        got = await self.read_many_bytes([reference], purpose=purpose,
                                         cache_seconds=cache_seconds)  # fmt: skip
        return got[reference].decode()

    async def store(
        self, path: str, fields: Mapping[str, str | bytes], *, purpose: str | None = None
    ) -> Stored:
        values = {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in fields.items()}
        result: Stored = await self._drive(flows.store_flow(
            self._session.state, path, values, purpose=_purpose(purpose, self._purpose),
            context=self.context,
        ))  # fmt: skip
        return result

    async def list(self) -> builtins.list[ItemInfo]:
        result: builtins.list[ItemInfo] = await self._drive(flows.list_flow(self._session.state))
        return result

    async def history(self, path: str) -> builtins.list[VersionInfo]:
        result: builtins.list[VersionInfo] = await self._drive(
            flows.history_flow(self._session.state, path)
        )
        return result
