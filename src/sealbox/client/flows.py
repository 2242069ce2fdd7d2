"""What a client does to store, read, list and look back: sans-IO flows.

Each flow is a generator that yields the HTTP calls it needs (:class:`Call`)
and is sent back the relay's answers (:class:`Reply`); it returns its result
or raises.  The same flows are driven by the blocking :class:`sealbox.Client`
and by :class:`sealbox.AsyncClient` (the shape of httpx's ``auth_flow``), and
in tests by a fake relay, so the logic exists once.

Nothing the relay answers is taken on trust.  The directory is verified from
the pinned link 0 and the cached head; every manifest, release and denial is
verified against it; values come only out of :func:`open_release`, which
returns everything or raises.  What the relay may do is delay, refuse, or
serve metadata (item ids, latest versions, policy) whose lies the approvers
and these checks turn into errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sealbox._relay.text import displayable
from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    Cancelled,
    Denied,
    DirectoryBroken,
    MalformedInput,
    RelayRefused,
    RequestExpired,
    VerificationError,
    VersionRollback,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import AccessRequest, build_access, open_release, verify_deny
from sealbox.protocol.statements import (
    NO_CACHE,
    AccessItem,
    CacheRequest,
    ItemManifest,
    RequestContext,
)
from sealbox.protocol.store import VerifiedManifests, build_store, manifest_hash

__all__ = [
    "Call",
    "Cancelled",
    "ClientState",
    "Denied",
    "ItemInfo",
    "Read",
    "RelayRefused",
    "Reply",
    "RequestExpired",
    "Stored",
    "VersionInfo",
    "Wanted",
    "history_flow",
    "list_flow",
    "read_flow",
    "store_flow",
]

#: Seconds one long poll asks the relay to hold a request open.
POLL_SECONDS = 25
#: How long a verified directory is reused before it is fetched again (a release
#: from an approver added since then makes the client fetch it at once).
DIRECTORY_FRESH = 5.0
#: How long the relay's effective policy for a path is reused.
POLICY_FRESH = 30.0
#: Store attempts when another store takes the version slot in between.
STORE_ATTEMPTS = 3


# --- calls and answers -------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP call a flow needs; the driver adds the base URL and credentials."""

    method: str
    path: str
    json: Any = None
    form: Mapping[str, str] | None = None
    """A form body (the OAuth token endpoint), instead of JSON."""
    auth: bool = True
    """Whether the driver adds the session's credentials."""
    timeout: float | None = None
    """Longer than the default: for long polls."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    """The parsed JSON body (``None`` if it was not JSON)."""


Flow = Generator[Call, Reply, Any]


def _refused(reply: Reply, what: str) -> RelayRefused:
    body = reply.body if isinstance(reply.body, dict) else {}
    message = body.get("message") or body.get("error_description") or f"HTTP {reply.status}"
    hint = body.get("hint") or None
    # The relay's words are printed: never let them carry terminal escapes.
    return RelayRefused(f"{what}: the relay refused: {displayable(message)}",
                        hint=displayable(hint) if hint else None)  # fmt: skip


def _object(reply: Reply, what: str, status: int = 200) -> dict[str, Any]:
    if reply.status != status:
        raise _refused(reply, what)
    if not isinstance(reply.body, dict):
        raise RelayRefused(f"{what}: the relay's answer is not a JSON object")
    return reply.body


def _get(body: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RelayRefused(f"{what}: the relay's answer has no valid {key!r}")
    return value


# --- what a client knows -----------------------------------------------------------------


@dataclass
class ClientState:
    """A client's identity and what it has verified; flows read and update it.

    ``head`` and ``seen`` only ever move forward; the driver persists them so a
    relay cannot roll the directory or an item back between two runs.
    """

    vault: str
    client_id: str
    key: SigningKey = field(repr=False)
    fingerprint: str
    """The pinned vault fingerprint (hash of directory link 0)."""
    head: dirs.DirectoryHead
    seen: MutableMapping[str, int] = field(default_factory=dict)
    """item id -> highest version this client has opened."""
    item_ids: MutableMapping[str, str] = field(default_factory=dict)
    """path -> item id (ids never change; the manifests prove the binding)."""
    directory: dirs.Directory | None = field(default=None, repr=False)
    directory_at: float = 0.0
    policies: MutableMapping[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    """path -> (when fetched, the relay's effective policy for it)."""
    clock: Callable[[], float] = time.time
    manifests: VerifiedManifests = field(default_factory=VerifiedManifests, repr=False)
    """Manifests verified so far, by exact token and directory head: a read of the
    same item version does not verify its manifest again (its bindings it does)."""

    @property
    def base(self) -> str:
        return f"/v1/vaults/{self.vault}"


def directory_flow(state: ClientState, *, fresh: bool = False) -> Flow:
    """The verified directory (fetched unless a recent one is held and ``fresh`` is not asked)."""
    now = time.monotonic()
    if not fresh and state.directory is not None and now - state.directory_at < DIRECTORY_FRESH:
        return state.directory
    body = _object((yield Call("GET", f"{state.base}/directory")), "fetching the directory")
    links = body.get("links")
    if not isinstance(links, list) or not links or not all(isinstance(x, str) for x in links):
        raise DirectoryBroken("the relay served no directory links")
    held = state.directory
    if held is not None and held.head == state.head and tuple(links) == held.tokens:
        # Exactly the chain verified before (every link byte for byte), from the same
        # pinned link 0 and against the same cached head: verifying it again could
        # only give the same directory.  Anything else served is verified in full.
        state.directory_at = now
        return held
    directory = dirs.verify_directory(links, pinned=state.fingerprint, cached_head=state.head)
    if directory.vault != state.vault:
        raise DirectoryBroken("the relay served the directory of another vault")
    state.head, state.directory, state.directory_at = directory.head, directory, now
    return directory


def _item_id(state: ClientState, path: str) -> Flow:
    """The id of the item at ``path`` (``None`` if there is none)."""
    if path in state.item_ids:
        return state.item_ids[path]
    body = _object(
        (yield Call("GET", f"{state.base}/items?path={quote(path, safe='/')}")),
        f"looking up {path}",
    )
    found = [e for e in body.get("items", []) if isinstance(e, dict) and e.get("path") == path]
    if not found:
        return None
    item = ids.check_id(found[0].get("id"), ids.ITEM, what="item id")
    state.item_ids[path] = item
    return item


def _policy(state: ClientState, path: str) -> Flow:
    """The relay's effective policy for ``path`` (cached for a while; it is only advice).

    Nothing in it is trusted for security: the approvers named must be members
    of the verified directory, and the relay enforces the rest on itself.
    """
    cached = state.policies.get(path)
    if cached is not None and time.monotonic() - cached[0] < POLICY_FRESH:
        return cached[1]
    body = _object(
        (yield Call("GET", f"{state.base}/policy?path={quote(path, safe='/')}")),
        f"reading the policy for {path}",
    )
    state.policies[path] = (time.monotonic(), body)
    return body


def _latest_manifest(state: ClientState, item: str, path: str) -> Flow:
    """(token, manifest) of the newest version, verified; it must be of ``path``."""
    directory = yield from directory_flow(state)
    body = _object((yield Call("GET", f"{state.base}/items/{item}/versions")), f"reading {path}")
    versions = body.get("versions")
    if not isinstance(versions, list) or not versions:
        raise RelayRefused(f"the relay served no versions of {path}")
    token = _get(versions[-1], "manifest", str, f"reading {path}")
    manifest = state.manifests.verify(token, directory)
    if manifest.item != item or manifest.path != path:
        raise BindingMismatch(f"the relay served a manifest of another item than {path}")
    if manifest.version < state.seen.get(item, 0):
        raise VersionRollback(f"{path}: version {manifest.version} served, "
                              f"version {state.seen[item]} seen before")  # fmt: skip
    return token, manifest


# --- read ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One item to read: its path, and the fields (``None``: every field)."""

    path: str
    fields: tuple[str, ...] | None = None
    version: int | None = None


@dataclass(frozen=True)
class Read:
    """What a read released: values by path and field, and how long they may be kept."""

    values: Mapping[str, Mapping[str, bytes]] = field(repr=False)
    """path -> field -> value."""
    versions: Mapping[str, int]
    """path -> version released."""
    items: Mapping[str, str]
    """path -> item id."""
    request: str
    """The access request's id (what the relay's audit names)."""
    cache_until: int
    cache_scope: str
    cache_asked: int = 0
    """Seconds of caching the caller asked for, before the policy's cut (0: none asked)."""


OnWait = Callable[[str, int, int], None]
"""Called before each long poll with (request id, approvals so far, threshold)."""


def read_flow(
    state: ClientState,
    wanted: Sequence[Wanted],
    *,
    purpose: str,
    context: RequestContext,
    cache: CacheRequest = NO_CACHE,
    ttl: int = 300,
    on_wait: OnWait | None = None,
) -> Flow:
    """Ask for ``wanted`` in one access request, wait for the approvers, open the release."""
    if not wanted:
        raise MalformedInput("nothing to read")
    merged: dict[str, Wanted] = {}
    for w in wanted:
        ids.check_path(w.path)
        if w.path in merged:
            old = merged[w.path]
            if old.version != w.version:
                raise MalformedInput(f"{w.path} is asked for at two versions")
            fields = None if old.fields is None or w.fields is None else old.fields + w.fields
            merged[w.path] = Wanted(w.path, fields, w.version)
        else:
            merged[w.path] = w
    asked = []
    for path, w in sorted(merged.items()):
        item = yield from _item_id(state, path)
        if item is None:
            raise RelayRefused(f"there is no item at {path}",
                               hint="List the items you may read with `sealbox ls`.")  # fmt: skip
        fields = w.fields
        if fields is None:
            _, manifest = yield from _latest_manifest(state, item, path)
            fields = tuple(manifest.fields)
        for name in fields:
            ids.check_field_name(name)
        asked.append(AccessItem(item=item, path=path, version=w.version,
                                fields=tuple(sorted(set(fields)))))  # fmt: skip
    asked_cache = cache.seconds
    # The strictest policy among the items holds: a statement that outlives a
    # request's allowed wait, or asks to cache longer than allowed, is refused
    # (the wait) or cut (the cache) by the relay anyway.
    for path in merged:
        policy = yield from _policy(state, path)
        ttl = min(ttl, int(policy.get("expiry_seconds") or ttl))
        if cache.seconds:
            allowed = int(policy.get("max_cache_seconds") or 0)
            cache = CacheRequest(seconds=min(cache.seconds, allowed), scope=cache.scope)
    if not cache.seconds:
        cache = NO_CACHE
    directory = yield from directory_flow(state)
    access = build_access(
        client=state.client_id, key=state.key, vault=state.vault, items=asked, purpose=purpose,
        context=context, now=int(state.clock()), cache=cache, ttl=ttl,
    )  # fmt: skip
    created = yield Call("POST", f"{state.base}/access-requests", {"statement": access.token})
    body = _object(created, "asking for access", status=201)
    request_id = access.hash.removeprefix("sha256:")
    if body.get("id") != request_id:
        raise BindingMismatch("the relay filed the request under another id")
    status = yield from _wait(state, "access", request_id, access.statement.exp, on_wait,
                              _get(body, "threshold", int, "asking for access"))  # fmt: skip
    if status["state"] == "delivered" and isinstance(status.get("envelope"), dict):
        # Delivered in the long poll's own answer (``deliver=true``).
        envelope = status["envelope"]
    elif status["state"] == "released":
        envelope = _object(
            (yield Call("POST", f"{state.base}/access-requests/{request_id}/envelope")),
            "taking delivery",
        )
    else:
        yield from _refusal(state, status, request_id, directory)
    released = yield from _open(state, access, envelope, directory)
    for item, version in released.versions.items():
        state.seen[item] = max(state.seen.get(item, 0), version)
    by_path = {released.paths[i]: v for i, v in released.values.items()}
    return Read(
        values=by_path,
        versions={released.paths[i]: v for i, v in released.versions.items()},
        items={p: i for i, p in released.paths.items()}, request=request_id,
        cache_until=released.cache_until, cache_scope=cache.scope, cache_asked=asked_cache,
    )  # fmt: skip


def _open(
    state: ClientState, access: AccessRequest, envelope: Mapping[str, Any],
    directory: dirs.Directory,
) -> Flow:  # fmt: skip
    releases = envelope.get("releases")
    manifests = envelope.get("manifests")
    served = envelope.get("ciphertexts")
    if not isinstance(releases, list) or not isinstance(manifests, dict):
        raise RelayRefused("the relay's envelope is malformed")
    if not isinstance(served, dict) or not all(isinstance(v, dict) for v in served.values()):
        raise RelayRefused("the relay's envelope is malformed")
    ciphertexts = {
        item: {name: b64u_decode(ct) for name, ct in fields.items()}
        for item, fields in served.items()
    }
    try:
        return open_release(access, releases=releases, manifests=manifests,
                            ciphertexts=ciphertexts, directory=directory,
                            known_versions=dict(state.seen),
                            verified_manifests=state.manifests)  # fmt: skip
    except VerificationError:
        # A release signed by an approver added since the directory was fetched:
        # fetch it again, and open against the new one if it grew.
        newer = yield from directory_flow(state, fresh=True)
        if newer.head == directory.head:
            raise
        return open_release(access, releases=releases, manifests=manifests,
                            ciphertexts=ciphertexts, directory=newer,
                            known_versions=dict(state.seen),
                            verified_manifests=state.manifests)  # fmt: skip


def _wait(
    state: ClientState, kind: str, request_id: str, exp: int, on_wait: OnWait | None,
    threshold: int,
) -> Flow:  # fmt: skip
    """Long-poll the request until it leaves ``pending`` (or outlives its expiry)."""
    url = f"{state.base}/{kind}-requests/{request_id}"
    approvals = 0
    try:
        while True:
            if on_wait is not None:
                on_wait(request_id, approvals, threshold)
            # Past its expiry (with a little slack for the relay's clock) a request
            # can no longer be answered: stop asking.
            left = exp - state.clock()
            if left < -2:
                raise RequestExpired("no approver answered before the request expired")
            wait = max(1, min(POLL_SECONDS, int(left) + 3))
            # An access request is delivered in the same answer once released.
            deliver = "&deliver=true" if kind == "access" else ""
            status = _object(
                (yield Call("GET", f"{url}?wait={wait}{deliver}", timeout=wait + 15)), "waiting"
            )
            state_name = _get(status, "state", str, "waiting")
            if state_name != "pending":
                return status
            approvals = int(status.get("approvals") or 0)
    except GeneratorExit:
        raise
    except BaseException:
        if kind == "access":
            # Interrupted (Ctrl-C) or failed while waiting: withdraw the request,
            # so no approver releases anything to a process that is gone.
            yield Call("POST", f"{url}/cancel")
        raise


def _refusal(
    state: ClientState, status: Mapping[str, Any], request_id: str, directory: dirs.Directory
) -> Flow:
    name = status["state"]
    if name == "denied":
        token = status.get("deny")
        reason = "no reason given"
        if isinstance(token, str):
            deny = verify_deny(token, directory=directory, request_hash="sha256:" + request_id)
            reason = f"{deny.reason!r} (signed by approver {deny.approver})"
        raise Denied(f"an approver denied the request: {reason}")
    if name == "expired":
        raise RequestExpired("no approver answered before the request expired")
    if name == "cancelled":
        raise Cancelled("the request was cancelled")
    raise RelayRefused(f"the request is {name}; nothing was delivered")
    yield  # pragma: no cover - a generator, for `yield from`


# --- store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    path: str
    item: str
    version: int
    request: str


def store_flow(
    state: ClientState,
    path: str,
    values: Mapping[str, bytes],
    *,
    purpose: str,
    context: RequestContext,
    item_type: str = "secret",
    on_wait: OnWait | None = None,
) -> Flow:
    """Seal ``values`` as the next version of ``path`` and wait for an approver to sign it."""
    ids.check_path(path)
    if not values:
        raise MalformedInput("nothing to store: give at least one field")
    for name in values:
        ids.check_field_name(name)
    for attempt in range(STORE_ATTEMPTS):
        directory = yield from directory_flow(state, fresh=True)
        item = yield from _item_id(state, path)
        if item is None:
            item, version, prev = ids.new_id(ids.ITEM), 1, None
        else:
            token, manifest = yield from _latest_manifest(state, item, path)
            version, prev = manifest.version + 1, manifest_hash(token)
        state.policies.pop(path, None)
        policy = yield from _policy(state, path)
        approvers = _get(policy, "approvers", list, "reading the policy")
        threshold = _get(policy, "threshold", int, "reading the policy")
        for approver in approvers:
            directory.approver(approver)  # each must be a verified member
        if not approvers or not 1 <= threshold <= len(approvers):
            raise RelayRefused(f"the policy for {path} names no approvers that can hold shares",
                               hint="Ask an approver to fix the policy.")  # fmt: skip
        upload = build_store(
            client=state.client_id, key=state.key, directory=directory, item=item, path=path,
            version=version, prev=prev, values=values, approvers=sorted(approvers),
            threshold=threshold, purpose=purpose, context=context, now=int(state.clock()),
            item_type=item_type,
        )  # fmt: skip
        body = {
            "statement": upload.statement,
            "ciphertexts": {f: b64u_encode(c) for f, c in upload.ciphertexts.items()},
            "wraps": {a: {f: b64u_encode(w) for f, w in fs.items()}
                      for a, fs in upload.wraps.items()},
        }  # fmt: skip
        reply = yield Call("POST", f"{state.base}/store-requests", body)
        if reply.status == 409 and attempt + 1 < STORE_ATTEMPTS:
            state.item_ids.pop(path, None)
            continue  # another version was stored meanwhile: seal the next one
        created = _object(reply, f"storing {path}", status=201)
        request_id = _get(created, "id", str, "storing")
        statement_exp = int(state.clock()) + 300
        status = yield from _wait(state, "store", request_id, statement_exp, on_wait, 1)
        if status["state"] != "stored":
            yield from _refusal(state, status, request_id, directory)
        state.item_ids[path] = item
        return Stored(path=path, item=item, version=version, request=request_id)
    raise RelayRefused(f"{path} kept changing while storing it")  # pragma: no cover


# --- list and history ------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemInfo:
    path: str
    item: str
    type: str
    latest_version: int
    created_at: int


def list_flow(state: ClientState) -> Flow:
    """The items this client may ask for (metadata the relay holds; nothing secret)."""
    body = _object((yield Call("GET", f"{state.base}/items")), "listing items")
    out = []
    for entry in body.get("items", []):
        if not isinstance(entry, dict):
            continue
        out.append(ItemInfo(
            path=ids.check_path(entry.get("path")),
            item=ids.check_id(entry.get("id"), ids.ITEM, what="item id"),
            type=str(entry.get("type")), latest_version=int(entry.get("latest_version") or 0),
            created_at=int(entry.get("created_at") or 0),
        ))  # fmt: skip
    return out


@dataclass(frozen=True)
class VersionInfo:
    version: int
    fields: tuple[str, ...]
    stored_at: int
    """When the approver signed the manifest."""
    signed_by: str
    """The approver that signed the manifest (verified)."""
    requested: bool
    """Stored through a client's store request (else by an approver directly)."""
    holders: tuple[str, ...]
    threshold: int


def history_flow(state: ClientState, path: str) -> Flow:
    """Every version of ``path``, each manifest verified (oldest first)."""
    ids.check_path(path)
    item = yield from _item_id(state, path)
    if item is None:
        raise RelayRefused(f"there is no item at {path}")
    directory = yield from directory_flow(state)
    body = _object((yield Call("GET", f"{state.base}/items/{item}/versions")), f"reading {path}")
    out = []
    for entry in body.get("versions", []):
        token = _get(entry, "manifest", str, "reading history")
        manifest: ItemManifest = state.manifests.verify(token, directory)
        if manifest.item != item or manifest.path != path:
            raise BindingMismatch(f"the relay served a manifest of another item than {path}")
        out.append(VersionInfo(
            version=manifest.version, fields=tuple(manifest.fields), stored_at=manifest.at,
            signed_by=jws.read_header(token).kid, requested=manifest.store_request is not None,
            holders=tuple(manifest.keyset.approvers), threshold=manifest.keyset.threshold,
        ))  # fmt: skip
    versions = [v.version for v in out]
    if versions != list(range(1, len(versions) + 1)):
        raise BindingMismatch(f"the relay served a broken version chain for {path}")
    return out
