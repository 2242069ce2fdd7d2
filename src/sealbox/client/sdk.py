"""The Python SDK: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both drive the same sans-IO flows (:mod:`sealbox.client._flows`) through the
relay-client core's drivers, with the session of a ``sealbox login`` profile::

    import sealbox

    with sealbox.Client(purpose="nightly report") as vault:
        password = vault.read("sealbox://shop/prod/db/password")
        both = vault.read_many(["sealbox://shop/prod/db/user",
                                "sealbox://shop/prod/db/password"])   # one approval
        vault.store("shop/prod/api", {"token": b"..."})

    async def main() -> None:
        async with sealbox.AsyncClient() as vault:
            password = await vault.read("sealbox://shop/prod/db/password")

Every read is one access request that an approver (a person, or the
organisation's automated approver) answers; the value is released sealed to
a one-time key made for that request.  A read that cannot be verified raises
and returns nothing.  What a read names is checked against the item's
verified manifest before anything is asked, so an approval is never spent on
a request that cannot give what was meant.  When a local cache agent runs
(``sealbox cache start``), values an approver allowed to be kept are served
from it until their signed ``cache_until``.

A wait rides out a relay restart until the request's expiry; a wait that
ends otherwise (Ctrl-C, cancellation of the task) withdraws the request.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sealbox._relay.calls import Call, Flow, expect_object
from sealbox._relay.drive import AsyncDriver, SyncDriver, async_http_client, http_client
from sealbox._relay.files import write_private
from sealbox._relay.httpsig import signer
from sealbox.client import _flows as flows
from sealbox.client import consent as consent_flows
from sealbox.client import identity as identities
from sealbox.client import policies as policy_flows
from sealbox.client import profile as profiles
from sealbox.client._flows import ClientState, ItemInfo, OnWait, Read, Stored, VersionInfo, Wanted
from sealbox.client.consent import ConsentGrant
from sealbox.client.context import process_context
from sealbox.client.login import renew_flow
from sealbox.client.policies import PolicyAxes, PolicyInfo
from sealbox.client.profile import Profile
from sealbox.errors import MalformedInput, NotLoggedIn, RelayRefused, SealboxError
from sealbox.protocol import ids
from sealbox.protocol.statements import NO_CACHE, CacheRequest, RequestContext

__all__ = ["AsyncClient", "Client", "parse_references"]

T = TypeVar("T")
#: Refresh an access token this long before it expires.
REFRESH_MARGIN = 60
SEEN_FORMAT = "sealbox.seen.v1"


# Parsing is pure and a program reads the same few references again and again: a
# cache hit of the local agent is a few dozen microseconds, and parsing was a
# seventh of it.  (A malformed reference raises, and raising is not cached.)
_parse_reference = functools.lru_cache(maxsize=1024)(ids.parse_reference)


def parse_references(references: Iterable[str]) -> list[tuple[str, ids.Reference]]:
    """(reference text, parsed) pairs; a malformed reference raises ``MalformedInput``."""
    return [
        (text, _parse_reference(text) if isinstance(text, str) else ids.parse_reference(text))
        for text in references
    ]


def _pick(read: Read, ref: ids.Reference, text: str) -> bytes:
    values = read.values[ref.path]
    if ref.field is not None:
        return values[ref.field]
    if len(values) != 1:  # checked before asking; a newer version may have grown a field
        raise MalformedInput(
            f"{text}: the item has several fields ({', '.join(sorted(values))}); name one",
            hint=f"Use {text}/FIELD.",
        )
    return next(iter(values.values()))


def _wanted(refs: Sequence[ids.Reference]) -> list[Wanted]:
    """One :class:`Wanted` per path; a reference without a field wants the item's one value."""
    whole: set[str] = set()
    fields: dict[str, set[str]] = {}
    for ref in refs:
        if ref.field is None:
            whole.add(ref.path)
        else:
            fields.setdefault(ref.path, set()).add(ref.field)
    return [
        Wanted(path, None, one_field=True) if path in whole
        else Wanted(path, tuple(sorted(fields[path])))
        for path in sorted(whole | set(fields))
    ]  # fmt: skip


def _purpose(purpose: str | None, default: str | None) -> str:
    chosen = purpose or default or f"{Path(sys.argv[0]).name or 'python'} (sealbox SDK)"
    return chosen[:500]


def _values(fields: Mapping[str, str | bytes]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in fields.items()}


def _report_flow(state: ClientState, hits: Sequence[Mapping[str, Any]]) -> Flow:
    reply = yield Call("POST", f"{state.base}/cache-hits", {"hits": list(hits)})
    expect_object(reply, "reporting cache hits")
    return None


class _Session:
    """A profile's identity, credentials and verified state, shared by both clients."""

    def __init__(self, profile: str | None) -> None:
        # A machine identity (SEALBOX_IDENTITY) is used unless a profile is named explicitly.
        self.identity = identities.from_environment() if profile is None else None
        if self.identity is not None:
            self.profile = identities.to_profile(identities.load(self.identity))
            # Its cache agent and its record of versions seen are its own, by client id.
            self.name = f"machine-{self.profile.client_id[4:16]}"
            self.path = profiles.profile_path(self.name)
        else:
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

    def authorize(self, request: httpx.Request) -> None:
        if self.profile.auth == "signature":
            signer(self.profile.key, self.profile.client_id)(request)
        else:
            request.headers["authorization"] = f"Bearer {self.profile.access_token}"

    def refresher(self, refresh: T) -> T | None:
        """``refresh`` for a session with tokens; ``None`` for a signing identity (no token)."""
        return None if self.profile.auth == "signature" else refresh

    def stale(self) -> bool:
        """Whether the access token lapses soon enough to be refreshed before the next call."""
        if self.profile.auth == "signature":
            return False  # no token: every request is signed afresh
        return self.profile.expires_at <= time.time() + REFRESH_MARGIN

    def _load_seen(self) -> dict[str, int]:
        try:
            document = json.loads(self.seen_path.read_text())
        except (OSError, ValueError):
            return {}
        seen = document.get("seen") if isinstance(document, dict) else None
        if document.get("format") != SEEN_FORMAT or not isinstance(seen, dict):
            return {}
        return {k: v for k, v in seen.items() if isinstance(k, str) and type(v) is int}

    def dirty(self) -> bool:
        """Whether anything that only moves forward has moved since it was last kept."""
        return self.state.directory_head != self.profile.head or (
            bool(self.state.seen) and self.state.seen != self._saved_seen
        )

    def persist(self) -> None:
        """Keep what only moves forward: the directory head, the versions seen."""
        head = self.state.directory_head
        if head != self.profile.head and self.identity is not None:
            identities.remember_head(self.identity, head)
            self.profile = replace(self.profile, head=head)
        elif head != self.profile.head:
            with profiles.locked(self.path):
                current = profiles.load(self.path, name=self.name)
                if head.seq >= current.head.seq:
                    profiles.save(self.path, replace(current, head=head), overwrite=True)
                self.profile = replace(self.profile, head=head)
        seen = dict(self.state.seen)
        if seen and seen != self._saved_seen:
            # Several clients of one profile (threads, processes) write this file:
            # under a lock, merge with what is there (versions only move forward),
            # and write through a temporary file of our own.
            with profiles.locked(self.seen_path):
                merged = self._load_seen()
                for item, version in seen.items():
                    merged[item] = max(merged.get(item, 0), version)
                write_private(self.seen_path, json.dumps({"format": SEEN_FORMAT, "seen": merged}))
                self.state.seen.update(merged)
                self._saved_seen = dict(merged)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The profile's file lock (held across a refresh, by every process)."""
        return profiles.locked(self.path)

    def reload_tokens(self) -> Profile | None:
        """Under the lock: the saved profile if its tokens are still the ones held here (so
        they are to be refreshed), else ``None``: another client or process refreshed them
        meanwhile, and its tokens are taken over (a spent refresh token is never sent)."""
        current = profiles.load(self.path, name=self.name)
        if current.access_token != self.profile.access_token:
            self._take_tokens(current)
            return None
        return current

    def save_tokens(self, fresh: Profile) -> None:
        # At once: the old refresh token is spent, and presenting it again would
        # revoke the whole session.
        profiles.save(self.path, fresh, overwrite=True)
        self._take_tokens(fresh)

    def _take_tokens(self, fresh: Profile) -> None:
        self.profile = replace(self.profile, access_token=fresh.access_token,
                               refresh_token=fresh.refresh_token,
                               expires_at=fresh.expires_at)  # fmt: skip


class _Base:
    """What both clients share: the session, defaults, the cache agent."""

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


#: What a relay answers (401) to a session it no longer accepts: revoked (logged out, the
#: client disabled), or an access token that stays expired after the one refresh.
_ENDED = frozenset({"invalid_token", "token_expired"})


def _session_ended(exc: RelayRefused, *, agent: bool = False) -> SealboxError:
    """A refusal of the session itself as :class:`NotLoggedIn` (exit 6); others unchanged."""
    if exc.status == 401 and exc.error in _ENDED:
        return NotLoggedIn(
            f"the relay no longer accepts this session: {exc.message}",
            hint="Ask an approver whether this agent was disabled or revoked (`sealbox agent "
            "list`)." if agent else "Log in again with `sealbox login`.",
        )  # fmt: skip
    return exc


class Client(_Base):
    """A blocking sealbox client over the session of a ``sealbox login`` profile.

    ``profile`` picks the login (default: ``SEALBOX_PROFILE``, else
    ``default``); ``purpose`` is what approvers are shown when a call does not
    give its own; ``cache=False`` never consults the local cache agent.
    ``on_wait`` (on the calls that wait) is called before each long poll with a
    :class:`~sealbox.WaitState`: what is waited for, and how many approvals so far.
    """

    def __init__(
        self, profile: str | None = None, *, purpose: str | None = None,
        http: httpx.Client | None = None, cache: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(profile, purpose, cache)
        self._http = http or http_client(self._session.server)
        self._owns_http = http is None
        self._refresh_lock = threading.Lock()
        session = self._session
        self._driver = SyncDriver(
            self._http, session.server, authorize=session.authorize,
            refresh=session.refresher(self._refresh), stale=session.stale,
        )  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _refresh(self) -> None:
        # One refresh at a time in this process, and under the profile's file lock
        # across processes: a refresh token presented twice revokes the session.
        with self._refresh_lock, self._session.lock():
            current = self._session.reload_tokens()
            if current is not None:
                plain = SyncDriver(self._http, self._session.server)
                self._session.save_tokens(plain.drive(renew_flow(current)))

    def _drive(self, flow: Flow) -> Any:
        try:
            return self._driver.drive(flow)
        except RelayRefused as exc:
            raise _session_ended(exc, agent=self._session.profile.auth == "agent") from exc
        finally:
            if self._session.dirty():
                self._session.persist()

    # --- the public calls ---

    def fetch(
        self, wanted: Sequence[Wanted], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: OnWait | None = None, ttl: int = 300,
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
        cache_seconds: int | None = None, on_wait: OnWait | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Values of ``sealbox://`` references (UTF-8 text), by reference, in one approval."""
        got = self.read_many_bytes(references, purpose=purpose, cache_seconds=cache_seconds,
                                   on_wait=on_wait)  # fmt: skip
        return {k: v.decode() for k, v in got.items()}

    def read_many_bytes(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: OnWait | None = None,
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

    def read(
        self, reference: str, *, purpose: str | None = None, cache_seconds: int | None = None,
        on_wait: OnWait | None = None,
    ) -> str:  # fmt: skip
        """One value as text, e.g. ``read("sealbox://shop/prod/db/password")``."""
        return self.read_bytes(reference, purpose=purpose, cache_seconds=cache_seconds,
                               on_wait=on_wait).decode()  # fmt: skip

    def read_bytes(
        self, reference: str, *, purpose: str | None = None, cache_seconds: int | None = None,
        on_wait: OnWait | None = None,
    ) -> bytes:  # fmt: skip
        """One value as bytes."""
        return self.read_many_bytes([reference], purpose=purpose, cache_seconds=cache_seconds,
                                    on_wait=on_wait)[reference]  # fmt: skip

    def store(
        self, path: str, fields: Mapping[str, str | bytes], *, purpose: str | None = None,
        on_wait: OnWait | None = None, item_type: str = "secret",
    ) -> Stored:  # fmt: skip
        """Store ``fields`` as the next version of ``path``; returns once an approver signed it.

        ``item_type="canary"`` stores a tripwire: its release alerts and freezes its project.
        """
        result: Stored = self._drive(flows.store_flow(
            self._session.state, path, _values(fields), purpose=_purpose(purpose, self._purpose),
            context=self.context, on_wait=on_wait, item_type=item_type,
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

    def policies(self) -> builtins.list[PolicyInfo]:
        """The release policies this client may see (a member: those of its projects)."""
        result: builtins.list[PolicyInfo] = self._drive(
            policy_flows.list_flow(self._session.state.base)
        )
        return result

    def set_policy(
        self, pattern: str, *, approvers: Sequence[str], threshold: int = 1,
        expiry_seconds: int = 300, max_cache_seconds: int = 0, axes: PolicyAxes | None = None,
    ) -> PolicyInfo:  # fmt: skip
        """Set the policy for ``pattern``: needs the policy-admin role in its project.

        ``axes``: time windows, read-rate cap, co-signer, destroy date, rotate-after-N and
        networks (none by default).
        """
        result: PolicyInfo = self._drive(policy_flows.set_flow(
            self._session.state.base, pattern, approvers=approvers, threshold=threshold,
            expiry_seconds=expiry_seconds, max_cache_seconds=max_cache_seconds, axes=axes,
        ))  # fmt: skip
        return result

    def remove_policy(self, pattern: str) -> None:
        """Remove the policy for exactly ``pattern``: needs the policy-admin role."""
        self._drive(policy_flows.remove_flow(self._session.state.base, pattern))

    def create_bootstrap_token(
        self, name: str, *, grants: Sequence[str], scopes: Sequence[str] = ("read",)
    ) -> dict[str, Any]:
        """A one-time token for one machine: needs machine-admin in every project it names."""
        made: dict[str, Any] = self._drive(policy_flows.bootstrap_token_flow(
            self._session.state.base, name=name, grants=grants, scopes=scopes,
        ))  # fmt: skip
        return made

    def report_cache_hits(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Tell the relay's audit which releases were reused from the local cache."""
        self._drive(_report_flow(self._session.state, hits))

    def request_consent(
        self, action: str, details: Mapping[str, Any], *, purpose: str | None = None,
        ttl: int = 300, on_wait: OnWait | None = None,
    ) -> ConsentGrant:  # fmt: skip
        """Ask an approver to consent to ``action`` with ``details``; wait; verify the consent.

        The grant carries the consent (a compact JWS) and what a third party needs to
        verify it offline (:func:`sealbox.client.consent.verify_grant`).  Raises
        ``Denied``, ``RequestExpired`` or a verification error; never returns an
        unverified consent.
        """
        result: ConsentGrant = self._drive(consent_flows.consent_flow(
            self._session.state, action, details, purpose=_purpose(purpose, self._purpose),
            ttl=ttl, on_wait=on_wait,
        ))  # fmt: skip
        return result


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: the same calls, awaited.

    Nothing here blocks the event loop: profile files and their locks, the
    cache agent's socket and hashing this process's executable run in worker
    threads.
    """

    def __init__(
        self, profile: str | None = None, *, purpose: str | None = None,
        http: httpx.AsyncClient | None = None, cache: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(profile, purpose, cache)
        self._http = http or async_http_client(self._session.server)
        self._owns_http = http is None
        self._refresh_lock = asyncio.Lock()
        session = self._session
        self._driver = AsyncDriver(
            self._http, session.server, authorize=session.authorize,
            refresh=session.refresher(self._refresh), stale=session.stale,
        )  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _refresh(self) -> None:
        async with self._refresh_lock:
            lock = self._session.lock()
            await asyncio.to_thread(lock.__enter__)  # a file lock: never taken on the loop
            try:
                current = await asyncio.to_thread(self._session.reload_tokens)
                if current is not None:
                    plain = AsyncDriver(self._http, self._session.server)
                    fresh = await plain.drive(renew_flow(current))
                    await asyncio.to_thread(self._session.save_tokens, fresh)
            finally:
                await asyncio.to_thread(lock.__exit__, None, None, None)

    async def _drive(self, flow: Flow) -> Any:
        try:
            return await self._driver.drive(flow)
        except RelayRefused as exc:
            raise _session_ended(exc, agent=self._session.profile.auth == "agent") from exc
        finally:
            if self._session.dirty():
                await asyncio.to_thread(self._session.persist)

    async def _process_context(self) -> RequestContext:
        if self._context is None:
            self._context = await asyncio.to_thread(process_context)
        return self._context

    async def fetch(
        self, wanted: Sequence[Wanted], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: OnWait | None = None, ttl: int = 300,
    ) -> Read:  # fmt: skip
        """Ask for several items' fields in ONE access request; wait; open the release."""
        context = await self._process_context()
        result: Read = await self._drive(flows.read_flow(
            self._session.state, wanted, purpose=_purpose(purpose, self._purpose),
            context=context, cache=self._cache_request(cache_seconds), ttl=ttl, on_wait=on_wait,
        ))  # fmt: skip
        return result

    async def read_many_bytes(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: OnWait | None = None,
    ) -> dict[str, bytes]:  # fmt: skip
        refs = parse_references(references)
        found, missing = await asyncio.to_thread(self._from_cache, refs)
        if missing:
            read = await self.fetch(_wanted([r for _, r in missing]), purpose=purpose,
                                    cache_seconds=cache_seconds, on_wait=on_wait)  # fmt: skip
            found.update({t: _pick(read, r, t) for t, r in missing})
            await asyncio.to_thread(self._to_cache, read, missing)
        return {t: found[t] for t, _ in refs}

    async def read_many(
        self, references: Iterable[str], *, purpose: str | None = None,
        cache_seconds: int | None = None, on_wait: OnWait | None = None,
    ) -> dict[str, str]:  # fmt: skip
        """Values of ``sealbox://`` references (UTF-8 text), by reference, in one approval."""
        got = await self.read_many_bytes(references, purpose=purpose,
                                         cache_seconds=cache_seconds, on_wait=on_wait)  # fmt: skip
        return {k: v.decode() for k, v in got.items()}

    async def read(
        self, reference: str, *, purpose: str | None = None, cache_seconds: int | None = None,
        on_wait: OnWait | None = None,
    ) -> str:  # fmt: skip
        """One value as text."""
        value = await self.read_bytes(reference, purpose=purpose, cache_seconds=cache_seconds,
                                      on_wait=on_wait)  # fmt: skip
        return value.decode()

    async def read_bytes(
        self, reference: str, *, purpose: str | None = None, cache_seconds: int | None = None,
        on_wait: OnWait | None = None,
    ) -> bytes:  # fmt: skip
        """One value as bytes."""
        got = await self.read_many_bytes([reference], purpose=purpose,
                                         cache_seconds=cache_seconds, on_wait=on_wait)  # fmt: skip
        return got[reference]

    async def store(
        self, path: str, fields: Mapping[str, str | bytes], *, purpose: str | None = None,
        on_wait: OnWait | None = None, item_type: str = "secret",
    ) -> Stored:  # fmt: skip
        """Store ``fields`` as the next version of ``path``; returns once an approver signed it."""
        context = await self._process_context()
        result: Stored = await self._drive(flows.store_flow(
            self._session.state, path, _values(fields), purpose=_purpose(purpose, self._purpose),
            context=context, on_wait=on_wait, item_type=item_type,
        ))  # fmt: skip
        return result

    async def list(self) -> builtins.list[ItemInfo]:
        """The items this client may ask for."""
        result: builtins.list[ItemInfo] = await self._drive(flows.list_flow(self._session.state))
        return result

    async def history(self, path: str) -> builtins.list[VersionInfo]:
        """Every version of the item at ``path``, manifests verified, oldest first."""
        result: builtins.list[VersionInfo] = await self._drive(
            flows.history_flow(self._session.state, path)
        )
        return result

    async def policies(self) -> builtins.list[PolicyInfo]:
        """The release policies this client may see (a member: those of its projects)."""
        result: builtins.list[PolicyInfo] = await self._drive(
            policy_flows.list_flow(self._session.state.base)
        )
        return result

    async def set_policy(
        self, pattern: str, *, approvers: Sequence[str], threshold: int = 1,
        expiry_seconds: int = 300, max_cache_seconds: int = 0, axes: PolicyAxes | None = None,
    ) -> PolicyInfo:  # fmt: skip
        """Set the policy for ``pattern``: needs the policy-admin role in its project.

        ``axes``: time windows, read-rate cap, co-signer, destroy date, rotate-after-N and
        networks (none by default).
        """
        result: PolicyInfo = await self._drive(policy_flows.set_flow(
            self._session.state.base, pattern, approvers=approvers, threshold=threshold,
            expiry_seconds=expiry_seconds, max_cache_seconds=max_cache_seconds, axes=axes,
        ))  # fmt: skip
        return result

    async def remove_policy(self, pattern: str) -> None:
        """Remove the policy for exactly ``pattern``: needs the policy-admin role."""
        await self._drive(policy_flows.remove_flow(self._session.state.base, pattern))

    async def create_bootstrap_token(
        self, name: str, *, grants: Sequence[str], scopes: Sequence[str] = ("read",)
    ) -> dict[str, Any]:
        """A one-time token for one machine: needs machine-admin in every project it names."""
        made: dict[str, Any] = await self._drive(policy_flows.bootstrap_token_flow(
            self._session.state.base, name=name, grants=grants, scopes=scopes,
        ))  # fmt: skip
        return made

    async def report_cache_hits(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Tell the relay's audit which releases were reused from the local cache."""
        await self._drive(_report_flow(self._session.state, hits))

    async def request_consent(
        self, action: str, details: Mapping[str, Any], *, purpose: str | None = None,
        ttl: int = 300, on_wait: OnWait | None = None,
    ) -> ConsentGrant:  # fmt: skip
        """Ask an approver to consent to ``action`` with ``details``; wait; verify the consent."""
        result: ConsentGrant = await self._drive(consent_flows.consent_flow(
            self._session.state, action, details, purpose=_purpose(purpose, self._purpose),
            ttl=ttl, on_wait=on_wait,
        ))  # fmt: skip
        return result
