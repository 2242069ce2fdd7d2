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

import dataclasses
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sealbox._relay import directory as relay_directory
from sealbox._relay.calls import Call, Flow, Reply
from sealbox._relay.calls import expect_object as _object
from sealbox._relay.calls import field as _get
from sealbox._relay.directory import DirectoryView
from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    Cancelled,
    Denied,
    InvalidInput,
    RelayRefused,
    RequestExpired,
    SealboxError,
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
    "ClientState",
    "Flow",
    "ItemInfo",
    "OnWait",
    "Read",
    "Reply",
    "Stored",
    "VersionInfo",
    "WaitState",
    "Wanted",
    "history_flow",
    "list_flow",
    "read_flow",
    "store_flow",
]

#: Seconds one long poll asks the relay to hold a request open.
POLL_SECONDS = 25
#: How long the relay's effective policy for a path is reused.
POLICY_FRESH = 30.0
#: Store attempts when another store takes the version slot in between.
STORE_ATTEMPTS = 3
#: How long a store request waits for an approver (the statement's validity).
STORE_TTL = 300
#: Seconds past a request's expiry still worth asking about (the relay's clock may lag).
EXPIRY_SLACK = 2
#: Seconds a withdrawal keeps trying to reach a relay that is away.
CANCEL_PATIENCE = 10.0


# --- what a client knows -----------------------------------------------------------------


@dataclass
class ClientState:
    """A client's identity and what it has verified; flows read and update it.

    The directory head and ``seen`` only ever move forward; the SDK persists
    them so a relay cannot roll the directory or an item back between two runs.
    """

    vault: str
    client_id: str
    key: SigningKey = field(repr=False)
    fingerprint: str
    """The pinned vault fingerprint (hash of directory link 0)."""
    head: dataclasses.InitVar[dirs.DirectoryHead]
    seen: MutableMapping[str, int] = field(default_factory=dict)
    """item id -> highest version this client has opened."""
    item_ids: MutableMapping[str, str] = field(default_factory=dict)
    """path -> item id (ids never change; the manifests prove the binding)."""
    policies: MutableMapping[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    """path -> (when fetched, the relay's effective policy for it)."""
    latest: MutableMapping[str, tuple[float, str, ItemManifest]] = field(default_factory=dict)
    """item id -> (when fetched, token, verified manifest) of its newest version, to check
    what a read names before asking an approver."""
    clock: Callable[[], float] = time.time
    manifests: VerifiedManifests = field(default_factory=VerifiedManifests, repr=False)
    """Manifests verified so far, by exact token and directory head: a read of the
    same item version does not verify its manifest again (its bindings it does)."""
    view: DirectoryView = field(init=False, repr=False)

    def __post_init__(self, head: dirs.DirectoryHead) -> None:
        self.view = DirectoryView(vault=self.vault, fingerprint=self.fingerprint, head=head)

    @property
    def directory_head(self) -> dirs.DirectoryHead:
        """The newest directory head verified (starts at the one the profile kept)."""
        assert self.view.head is not None
        return self.view.head

    @property
    def base(self) -> str:
        return f"/v1/vaults/{self.vault}"


def directory_flow(state: ClientState, *, fresh: bool = False) -> Flow:
    """The verified directory (fetched unless a recent one is held and ``fresh`` is not asked)."""
    directory: dirs.Directory = yield from relay_directory.directory_flow(state.view, fresh=fresh)
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


def _latest_manifest(state: ClientState, item: str, path: str, *, reuse: bool = False) -> Flow:
    """(token, manifest) of the newest version, verified; it must be of ``path``.

    ``reuse``: a manifest fetched in the last ``POLICY_FRESH`` seconds will do (to
    check what a read names before asking; the release itself is verified in full).
    """
    cached = state.latest.get(item)
    if reuse and cached is not None and time.monotonic() - cached[0] < POLICY_FRESH:
        return cached[1], cached[2]
    directory = yield from directory_flow(state)
    body = _object((yield Call("GET", f"{state.base}/items/{item}/versions")), f"reading {path}")
    versions = body.get("versions")
    if not isinstance(versions, list) or not versions:
        raise RelayRefused(f"the relay served no versions of {path}",
                           hint="Check the path with `sealbox ls`.")  # fmt: skip
    token = _get(versions[-1], "manifest", str, f"reading {path}")
    manifest = state.manifests.verify(token, directory)
    if manifest.item != item or manifest.path != path:
        raise BindingMismatch(f"the relay served a manifest of another item than {path}")
    if manifest.version < state.seen.get(item, 0):
        raise VersionRollback(f"{path}: version {manifest.version} served, "
                              f"version {state.seen[item]} seen before")  # fmt: skip
    state.latest[item] = (time.monotonic(), token, manifest)
    return token, manifest


def _no_item(path: str) -> RelayRefused:
    return RelayRefused(f"there is no item at {path} (or your grants do not cover it)",
                        hint="List the items you may read with `sealbox ls`.")  # fmt: skip


def _check_fields(path: str, wanted: Wanted, available: Sequence[str]) -> tuple[str, ...]:
    """The fields to ask for, checked against the item's verified manifest before asking:
    an approval spent on a request that cannot give what was meant is a person's time lost."""
    names = ", ".join(sorted(available))
    if wanted.fields is None:
        if wanted.one_field and len(available) != 1:
            raise InvalidInput(
                f"sealbox://{path} has {len(available)} fields ({names}); name the one you want",
                hint=f"Add the field to the reference, e.g. sealbox://{path}/{sorted(available)[0]}.",
            )  # fmt: skip
        return tuple(available)
    unknown = sorted(set(wanted.fields) - set(available))
    if unknown:
        missing = ", ".join(repr(f) for f in unknown)
        raise InvalidInput(
            f"{path} has no field {missing}; its fields are: {names}",
            hint=f"Use one of them, e.g. sealbox://{path}/{sorted(available)[0]}.",
        )
    return wanted.fields


# --- read ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One item to read: its path, and the fields (``None``: every field)."""

    path: str
    fields: tuple[str, ...] | None = None
    version: int | None = None
    one_field: bool = False
    """The caller needs exactly one value (a reference without a field): an item with
    several fields is refused before anything is asked."""


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


@dataclass(frozen=True)
class WaitState:
    """What a wait is waiting for: handed to ``on_wait`` before each long poll."""

    request: str
    """The request's id (what approvers and the relay's audit show)."""
    kind: str
    """``access`` or ``store``."""
    paths: tuple[str, ...]
    approvals: int
    """Approvals given so far."""
    threshold: int
    """Approvals needed."""
    expires_at: int
    """When the request expires unanswered (Unix seconds)."""


OnWait = Callable[[WaitState], None]
"""Called before each long poll with what the wait is waiting for."""


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
        raise InvalidInput("nothing to read", hint="Name at least one sealbox:// reference.")
    merged: dict[str, Wanted] = {}
    for w in wanted:
        ids.check_path(w.path)
        if w.path in merged:
            old = merged[w.path]
            if old.version != w.version:
                raise InvalidInput(f"{w.path} is asked for at two versions",
                                   hint="Ask for each item once.")  # fmt: skip
            fields = None if old.fields is None or w.fields is None else old.fields + w.fields
            merged[w.path] = Wanted(w.path, fields, w.version, old.one_field or w.one_field)
        else:
            merged[w.path] = w
    asked = []
    for path, w in sorted(merged.items()):
        for name in w.fields or ():
            ids.check_field_name(name)
        item = yield from _item_id(state, path)
        if item is None:
            raise _no_item(path)
        _, manifest = yield from _latest_manifest(state, item, path, reuse=True)
        fields = _check_fields(path, w, tuple(manifest.fields))
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
    status = yield from _wait(
        state, "access", request_id, access.statement.exp, on_wait,
        _get(body, "threshold", int, "asking for access"), tuple(sorted(merged)),
    )  # fmt: skip
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
    threshold: int, paths: tuple[str, ...],
) -> Flow:  # fmt: skip
    """Long-poll the request until it leaves ``pending`` (or outlives its expiry).

    Each poll may be retried until the request's expiry: a relay that restarts
    meanwhile is waited for, not reported as a failure.  A wait that ends any
    other way (Ctrl-C, an error) withdraws the request first, so no approver
    answers a process that has stopped waiting; if the withdrawal finds a store
    already stored, that is the outcome, and it is returned.
    """
    url = f"{state.base}/{kind}-requests/{request_id}"
    approvals = 0
    try:
        while True:
            if on_wait is not None:
                on_wait(WaitState(request_id, kind, paths, approvals, threshold, exp))
            # Past its expiry (with a little slack for the relay's clock) a request
            # can no longer be answered: stop asking.
            left = exp - state.clock()
            if left < -EXPIRY_SLACK:
                raise RequestExpired("no approver answered before the request expired")
            wait = max(1, min(POLL_SECONDS, int(left) + 3))
            # An access request is delivered in the same answer once released.
            deliver = "&deliver=true" if kind == "access" else ""
            reply = yield Call("GET", f"{url}?wait={wait}{deliver}", timeout=wait + 15,
                               until=exp + EXPIRY_SLACK)  # fmt: skip
            status = _object(reply, "waiting for an answer")
            state_name = _get(status, "state", str, "waiting for an answer")
            if state_name != "pending":
                return status
            approvals = int(status.get("approvals") or 0)
    except GeneratorExit:
        raise
    except RequestExpired:
        raise  # nothing left to withdraw
    except BaseException:
        outcome = yield from _withdraw(state, kind, url)
        if outcome is not None:
            return outcome
        raise


def _withdraw(state: ClientState, kind: str, url: str) -> Flow:
    """Cancel a request this client stopped waiting for; a final state found instead is
    returned if it is a completed store (else ``None``).  Failing to reach the relay is
    not an error here: the relay expires a request whose waiter is gone."""
    try:
        reply = yield Call("POST", f"{url}/cancel", until=state.clock() + CANCEL_PATIENCE)
        if reply.status == 409 and kind == "store":
            reply = yield Call("GET", url, until=state.clock() + CANCEL_PATIENCE)
            body = reply.body if reply.status == 200 else None
            if isinstance(body, dict) and body.get("state") == "stored":
                return body
    except SealboxError:
        pass
    return None


def _refusal(
    state: ClientState, status: Mapping[str, Any], request_id: str, directory: dirs.Directory
) -> Flow:
    name = status["state"]
    if name == "denied":
        token = status.get("deny")
        reason = "no reason given"
        if isinstance(token, str):
            # (Imported here so that this change stays inside this function.)
            from sealbox.errors import RefusedByApprover
            from sealbox.protocol.statements import DENY_UNVERIFIABLE

            deny = verify_deny(token, directory=directory, request_hash="sha256:" + request_id)
            if deny.grounds == DENY_UNVERIFIABLE:
                # Signed by the approver, so the relay cannot fake it: what the approver was
                # shown is not what this client signed.  Fail now, not at the expiry.
                raise RefusedByApprover(
                    f"approver {deny.approver} refused the request because what it was shown "
                    f"does not verify ({deny.reason!r}): the relay, or something between this "
                    "client and the relay, may be tampering with requests"
                )
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
        raise InvalidInput(
            "nothing to store: give at least one field",
            hint="Give at least one field, e.g. --field password=@FILE.",
        )
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
        now = int(state.clock())
        upload = build_store(
            client=state.client_id, key=state.key, directory=directory, item=item, path=path,
            version=version, prev=prev, values=values, approvers=sorted(approvers),
            threshold=threshold, purpose=purpose, context=context, now=now, item_type=item_type,
            ttl=STORE_TTL,
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
        # The request's id is the statement's hash, computed here: a relay that files it
        # under another id could pass off another request's answers as this one's.
        request_id = jws.statement_hash(upload.statement).removeprefix("sha256:")
        if created.get("id") != request_id:
            raise BindingMismatch("the relay filed the store under another id")
        # The signed statement's expiry bounds the wait; the relay's figure may only shorten it.
        expires_at = now + STORE_TTL
        told = created.get("expires_at")
        if isinstance(told, int) and not isinstance(told, bool):
            expires_at = min(expires_at, told)
        status = yield from _wait(state, "store", request_id, expires_at, on_wait, 1, (path,))
        if status["state"] != "stored":
            yield from _refusal(state, status, request_id, directory)
        # "stored" is only the relay's word: the proof is the version's manifest, signed by
        # an approver over this very request.  Without it the store is not reported done.
        yield from _check_stored(state, item, path, version, request_id)
        state.item_ids[path] = item
        return Stored(path=path, item=item, version=version, request=request_id)
    raise RelayRefused(f"{path} kept changing while storing it")  # pragma: no cover


def _check_stored(state: ClientState, item: str, path: str, version: int, request_id: str) -> Flow:
    """Verify that ``version`` of ``path`` exists, approved by a manifest over this request."""
    directory = yield from directory_flow(state)
    body = _object((yield Call("GET", f"{state.base}/items/{item}/versions")), f"reading {path}")
    entries = body.get("versions")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("version") != version:
            continue
        token = _get(entry, "manifest", str, f"reading {path}")
        manifest = state.manifests.verify(token, directory)
        if (manifest.item, manifest.path, manifest.version) != (item, path, version):
            raise BindingMismatch(f"the relay served a manifest of another item than {path}")
        if manifest.store_request != "sha256:" + request_id:
            raise BindingMismatch(f"version {version} of {path} was not stored by this request")
        return None
    raise BindingMismatch(
        f"the relay says {path} was stored, but it serves no version {version} of it",
        hint="Nothing was stored that this client can verify: run the store again.",
    )


# --- list and history ------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemInfo:
    path: str
    item: str
    type: str
    latest_version: int
    created_at: int
    rotation_due: bool = False
    """Its latest version was released as often as its policy's rotate-after-N allows (the
    relay's word: it counts releases)."""


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
            rotation_due=entry.get("rotation_due") is True,
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
    rotation_due: bool = False
    """The latest version only: due for rotation under its policy (the relay's word)."""


def history_flow(state: ClientState, path: str) -> Flow:
    """Every version of ``path``, each manifest verified (oldest first)."""
    ids.check_path(path)
    item = yield from _item_id(state, path)
    if item is None:
        raise _no_item(path)
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
    if out and body.get("rotation_due") is True:
        out[-1] = dataclasses.replace(out[-1], rotation_due=True)
    return out
