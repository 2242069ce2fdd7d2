"""Access requests: ask, wait, answer, and take delivery exactly once.

A client posts a signed access statement; the relay checks what only it can
(transport identity, grant, policy, replay, pending cap, source address) and
wakes the approvers the policy names.  The item versions are pinned when the
request is made: approvers see, release and the client receives exactly those
manifests, even if a newer version is stored in between.

Every state change goes through the request store's compare-and-set along the
state table (:mod:`sealbox.protocol.state`), so two concurrent releases or two
concurrent fetches can never release or deliver twice.  The release envelopes
are deleted as they are delivered: one access request, one delivery.

The relay's checks of releases and denials are the ones clients and approvers
make again for themselves (docs/protocol.md section 9); they exist to refuse
junk early and to count only answers that can count.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.errors import BindingMismatch, Expired, NotAuthorized, SealboxError
from sealbox.protocol import scopes
from sealbox.protocol.access import verify_access, verify_deny
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.directory import Directory
from sealbox.protocol.policy_rules import cosign_reached
from sealbox.protocol.state import Event, State, StoreEvent, StoreState
from sealbox.protocol.statements import ReleaseStatement, verify_statement
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Gone, Invalid, NotFound
from sealbox.server.notify import CLOSED, approvers_channel, request_channel
from sealbox.server.policy import policy_for
from sealbox.server.relay import Relay
from sealbox.server.services import fatigue, freeze, members, policy_axes
from sealbox.server.services.caller import (
    check_policy_network,
    check_source,
    load_caller,
    project_key,
    require_grant,
    require_scope,
)
from sealbox.server.store import audit, replay
from sealbox.server.store import clients as client_store
from sealbox.server.store import items as item_store
from sealbox.server.store import members as member_store
from sealbox.server.store import requests as request_store
from sealbox.server.store.fatigue import Recent
from sealbox.server.store.requests import AccessDetail, Kind, PinnedItem, RequestRow

__all__ = [
    "MAX_WAIT",
    "Approval",
    "Created",
    "Envelope",
    "Released",
    "Status",
    "cancel",
    "client_gone",
    "create_access",
    "deny_request",
    "get_approval",
    "list_approvals",
    "record_cache_hits",
    "release",
    "take_envelope",
    "wait_status",
    "waiter_since",
    "wake_owner",
]

#: Longest a long poll holds a request open (seconds).
MAX_WAIT = 60.0
#: Most pending requests one approvals listing returns (oldest first).
APPROVALS_MAX = 100
#: A request's ``waiter_until`` is written only when a poll moves it by at least this many
#: seconds: a client polling in a tight loop costs a write per this, not one per poll.
WAITER_REFRESH = 5
#: A long poll still unanswered after this many seconds records its end as the client's
#: ``waiter_until``.  A poll answered sooner writes nothing: on the release path (the
#: approver answers within a moment of the request) the request was made just before, and
#: its creation already counts as its client being seen.
RECORD_AFTER = 2.0


@dataclass(frozen=True)
class Created:
    id: str
    state: str
    expires_at: int
    threshold: int


@dataclass(frozen=True)
class Status:
    id: str
    kind: Kind
    state: str
    expires_at: int
    threshold: int
    approvals: int
    item: str | None = None
    """Store requests: the item and version being stored."""
    version: int | None = None
    deny: str | None = None
    """Denied: the approver's signed refusal (the client verifies it and shows its reason)."""

    def to_message(self) -> str:
        """The wake-up its owner's long poll gets: the new status itself, so no waiter reads it.

        Published only after the change commits, by the relay itself (in process,
        or through ``pg_notify`` from another replica): a waiter may answer with it.
        """
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_message(cls, message: object, request_id: str, kind: str) -> Status | None:
        """The status a wake-up carries for this request, or None (then read it instead)."""
        if not isinstance(message, str) or not message.startswith("{"):
            return None
        try:
            data = json.loads(message)
            status = cls(**data)
        except (ValueError, TypeError):
            return None
        if status.id != request_id or status.kind != kind:
            return None
        return status


def _status_as(row: RequestRow, state: str, *, deny: str | None = None,
               approvals: int = 0) -> Status:  # fmt: skip
    store = row.store if row.kind == "store" else None
    return Status(
        row.id, row.kind, state, row.expires_at, row.threshold, approvals,
        item=store.item if store else None, version=store.version if store else None, deny=deny,
    )  # fmt: skip


def wake_owner(tx: Any, row: RequestRow, state: str, *, deny: str | None = None,
                approvals: int = 0) -> None:  # fmt: skip
    """Wake the request's owner with its new status (see :meth:`Status.to_message`)."""
    status = _status_as(row, state, deny=deny, approvals=approvals)
    tx.wake(request_channel(row.id), status.to_message())


def waiter_since(relay: Relay, now: int) -> int:
    """The earliest ``waiter_until`` of a request its client has not abandoned at ``now``."""
    return now - relay.settings.waiter_grace_seconds


@dataclass(frozen=True)
class Envelope:
    releases: list[str]
    manifests: dict[str, str]
    ciphertexts: dict[str, dict[str, bytes]]


@dataclass(frozen=True)
class Released:
    id: str
    state: str
    approvals: int
    threshold: int


@dataclass(frozen=True)
class Approval:
    """Everything an approver needs to verify and answer one request, and nothing of others'."""

    row: RequestRow
    certificate: str | None
    enrollment: str | None
    approvals: int
    answered: bool
    manifests: dict[str, str] = field(default_factory=dict)
    """Access: item -> its pinned manifest."""
    wraps: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Access: item -> this approver's wraps of the requested fields.  Store: holder -> wraps."""
    ciphertexts: dict[str, bytes] = field(default_factory=dict)
    """Store: the uploaded field ciphertexts."""
    prev_manifest: str | None = None
    """Store: the manifest of the version before."""
    recent: Recent | None = None
    """The requester's requests and denials lately, as the relay counts them (unsigned)."""


def not_pending(state: str) -> Conflict:
    return Conflict("not_pending", f"the request is no longer waiting for answers (it is {state})")


def client_gone() -> Gone:
    """The refusal of an answer to a request whose client stopped waiting (it is abandoned)."""
    return Gone(
        "client_gone", "the client that asked is no longer waiting",
        "Nothing was released or stored; the request expires. The client asks again if it "
        "still needs this.",
    )  # fmt: skip


def check_answerable(relay: Relay, row: RequestRow, now: int) -> None:
    """Refuse early an answer to a request that no longer takes one."""
    if not row.waiting(now):
        raise not_pending(row.state if row.state != State.PENDING else "past its expiry")
    if row.abandoned(now, relay.settings.waiter_grace_seconds):
        raise client_gone()


async def refusal(relay: Relay, conn: AsyncConnection, vault: str, request_id: str,
                  now: int) -> Conflict | Gone:  # fmt: skip
    """Why a compare-and-set on a pending request found nothing to change."""
    row = await request_store.get(conn, vault, request_id)
    if row is None:
        return not_pending("gone")
    try:
        check_answerable(relay, row, now)
    except (Conflict, Gone) as refused:
        return refused
    return not_pending(row.state)  # pragma: no cover - the compare-and-set would have held


async def insert_request(
    relay: Relay, conn: AsyncConnection, row: RequestRow, jti: str, now: int
) -> None:
    """Insert a new request within its client's limits, its statement's jti used once.

    The limits (lockout, prompt rate, pending cap: :func:`fatigue.admit_prompt`) are
    checked under the client's creation lock, so they hold across replicas.
    """
    await request_store.lock_client(conn, row.vault, row.client_id)
    storm = await fatigue.admit_prompt(relay, conn, vault=row.vault, client_id=row.client_id,
                                       now=now, kind=row.kind)  # fmt: skip
    await replay.insert_jti(conn, row.vault, jti, row.expires_at)
    await request_store.insert(conn, row)
    await fatigue.report_storm(conn, storm, vault=row.vault, now=now)


# --- a client asks -------------------------------------------------------------------------------


async def create_access(
    relay: Relay, *, vault: str, principal: Principal, statement_token: str, now: int,
    source_ip: str | None,
) -> Created:  # fmt: skip
    """Ask for fields of items with a signed access statement; approvers are woken.

    The request id is the statement hash without its ``sha256:`` prefix.  The
    threshold is the largest any item needs (its policy's, or its key set's
    if that is higher: fewer shares could not open it); only approvers that
    every item's policy names and that hold a share of every item can answer.
    An item whose policy names networks is asked for only from one of them.
    """
    async with relay.read() as conn:
        caller = await load_caller(relay, conn, vault, principal.id)
        directory = caller.directory
        verified = verify_access(statement_token, directory=directory,
                                 certificate=caller.row.certificate, now=now,
                                 enrollment=caller.row.enrollment)  # fmt: skip
    check_source(verified.certificate, source_ip)
    s = verified.statement
    if s.client != principal.id:
        raise NotAuthorized("the access statement names another client than the caller")
    # A member asks only in projects where a role lets it (a viewer never does).
    members.require_ask(scopes.roles(verified.certificate.scopes),
                        [asked.path for asked in s.items], "read")  # fmt: skip
    require_scope(verified.certificate, "read")
    async with relay.read() as conn:
        for asked in s.items:
            require_grant(asked.path, caller.access)
            check_policy_network(policy_for(asked.path, caller.policies, directory), asked.path,
                                 source_ip)  # fmt: skip
            policy_axes.check_request(policy_for(asked.path, caller.policies, directory),
                                      asked.path, now)  # fmt: skip
        await policy_axes.refuse_destroyed(conn, vault, [a.item for a in s.items])
        # A frozen project answers nothing: refused before any approver is asked.
        await freeze.refuse_frozen(conn, vault, [asked.path for asked in s.items])
        found = await item_store.items_with_latest(conn, vault, [a.item for a in s.items])
        wanted = []
        for asked in s.items:
            row = found.get(asked.item)
            if row is None:
                raise NotFound("no_such_item", f"no item {asked.item}")
            if row.path != asked.path:
                raise BindingMismatch(f"{asked.item} is stored at another path than was asked for")
            wanted.append((asked.item, asked.version or row.latest_version))
        stored = await item_store.manifests(conn, vault, wanted)

    eligible = set(directory.approvers)
    threshold = 1
    applied = []
    pinned = []
    for asked, key in zip(s.items, wanted, strict=True):
        version_row = stored.get(key)
        if version_row is None:
            raise NotFound("no_such_version", f"{key[0]} has no version {key[1]}")
        manifest = relay_verified_manifest(relay, version_row.manifest, directory, key)
        missing = set(asked.fields) - set(manifest.fields)
        if missing:
            raise Invalid("no_such_field", f"{asked.path} has no field(s) {sorted(missing)}")
        policy = policy_for(asked.path, caller.policies, directory)
        eligible &= set(policy.approvers) & set(manifest.keyset.approvers)
        threshold = max(threshold, policy.threshold, manifest.keyset.threshold)
        applied.append(policy)
        pinned.append(PinnedItem(asked.item, asked.path, key[1], tuple(asked.fields),
                                 version_row.manifest_hash))  # fmt: skip
    # Co-signers (any item's) must release on top of the threshold: they must be able to.
    cosigners = sorted({p.cosigner for p in applied if p.cosigner is not None})
    if len(cosigners) > 1 or (cosigners and cosigners[0] not in eligible):
        raise policy_axes.Unsatisfiable(
            "policy_unsatisfiable",
            "the items' policies name co-signers that cannot all answer this request",
            "Ask for these items in separate requests, or ask an approver to fix the policies.",
        )  # fmt: skip
    cosigner = cosigners[0] if cosigners else None
    # The strictest of the items' policies holds for the whole bundle.
    expiry = min(p.expiry_seconds for p in applied)
    max_cache = min(p.max_cache_seconds for p in applied)
    if s.exp - s.at > expiry:
        raise Invalid(
            "expiry_beyond_policy", f"the policy lets a request wait at most {expiry} seconds",
            "Sign the statement with a shorter validity.",
        )  # fmt: skip
    if len(eligible - ({cosigner} if cosigner else set())) < threshold:
        raise policy_axes.Unsatisfiable(
            "policy_unsatisfiable",
            f"{threshold} approvals are needed but only {len(eligible)} approvers can give one",
            "Ask an approver to fix the policy or re-store the item for the current approvers.",
        )  # fmt: skip

    request_id = verified.hash.removeprefix("sha256:")
    # The latest cache_until a release may carry under the policy.
    cache_until_max = s.at + max_cache
    # Nothing is cached past the earliest destroy date of the items' policies.
    cap = policy_axes.destroy_cap(applied)
    if cap is not None:
        cache_until_max = min(cache_until_max, cap)
    detail = AccessDetail(tuple(pinned), tuple(sorted(eligible)), cache_until_max, cosigner)
    request = RequestRow(
        vault=vault, id=request_id, kind="access", client_id=principal.id,
        statement=statement_token, detail=detail, state=State.PENDING.value,
        threshold=threshold, source_ip=source_ip, created_at=now, expires_at=s.exp,
        updated_at=now, waiter_until=now,
    )  # fmt: skip
    async with (
        fatigue.auditing_refusals(relay, vault=vault, client_id=principal.id, now=now,
                                  kind="access", source_ip=source_ip),
        relay.tx() as tx,
    ):  # fmt: skip
        # Counted against the items' read-rate caps under the same transaction: over a cap,
        # it rolls back and nobody is asked.  First: its item row locks come before the
        # client's lock and the audit chain's (which insert_request may take).
        capped = [(p.item, pol) for p, pol in zip(pinned, applied, strict=True)]
        await policy_axes.take_reads(tx.conn, vault, request_id, capped, now)
        await insert_request(relay, tx.conn, request, s.jti, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.requested",
            client_id=principal.id, item_id=pinned[0].item if len(pinned) == 1 else None,
            source_ip=source_ip,
            detail={"request": request_id, "threshold": threshold,
                    "items": [{"item": p.item, "path": p.path, "version": p.version,
                               "fields": list(p.fields)} for p in pinned]},
        )  # fmt: skip
        # Asking for a canary is the alarm, whatever happens to the request next.
        await freeze.note_requested(tx.conn, vault=vault, row=request, now=now,
                                    manifests=[stored[k].manifest for k in wanted])  # fmt: skip
        tx.wake(approvers_channel(vault), request_id)
    return Created(request_id, State.PENDING.value, s.exp, threshold)


def relay_verified_manifest(
    relay: Relay, token: str, directory: Directory, key: tuple[str, int]
) -> Any:
    """A stored manifest, verified against the current directory (cached per directory head)."""
    try:
        return relay.manifests.verify(token, directory)
    except SealboxError:
        # Its signer has left the directory: no approver or client would accept it.
        raise Conflict(
            "manifest_unverifiable",
            f"version {key[1]} of {key[0]} was signed by an approver no longer in the directory",
            "Ask an approver to store the item again.",
        ) from None  # fmt: skip


# --- a client waits, cancels, takes delivery -----------------------------------------------------


async def _status(conn: AsyncConnection, row: RequestRow) -> Status:
    answers = await request_store.answer_kinds(conn, row.vault, row.id)
    approvals = sum(1 for _, kind in answers if kind == "release")
    deny = None
    if row.state == State.DENIED and any(kind == "deny" for _, kind in answers):
        deny = await request_store.deny_token(conn, row.vault, row.id)
    if row.kind == "store":
        return Status(row.id, row.kind, row.state, row.expires_at, row.threshold, approvals,
                      item=row.store.item, version=row.store.version, deny=deny)  # fmt: skip
    return Status(row.id, row.kind, row.state, row.expires_at, row.threshold, approvals, deny=deny)


async def _settled(
    relay: Relay, vault: str, request_id: str, kind: Kind, principal: Principal, *, now: int,
    final: bool,
) -> tuple[Status | None, int]:  # fmt: skip
    """The caller's request's status unless it is pending and not ``final``; its waiter_until.

    A pending request its client had abandoned reads as ``expired`` (which the
    sweeper is about to make it): a client back after the grace cannot revive
    it, since its answers may already have been refused.  A function of its own
    so that nothing of the database (nor the row, which holds the statement)
    outlives the read while the caller waits.
    """
    async with relay.read() as conn:
        row = await request_store.get(conn, vault, request_id, kind=kind, client_id=principal.id)
        if row is None:
            # Someone else's request is as absent as one that does not exist.
            raise NotFound("no_such_request", f"you have no {kind} request with this id")
        if row.abandoned(now, relay.settings.waiter_grace_seconds):
            return _status_as(row, State.EXPIRED.value), row.waiter_until
        if row.state == State.PENDING and not final:
            return None, row.waiter_until
        return await _status(conn, row), row.waiter_until


async def _record_waiter(relay: Relay, vault: str, request_id: str, now: int, until: int) -> None:
    async with relay.tx() as tx:
        await request_store.record_waiter(tx.conn, vault, request_id, until=until,
                                          waiter_since=waiter_since(relay, now),
                                          refresh=WAITER_REFRESH)  # fmt: skip


async def wait_status(
    relay: Relay, *, vault: str, request_id: str, kind: Kind, principal: Principal, wait: float
) -> Status:
    """The caller's request; held until it leaves ``pending`` or ``wait`` seconds pass.

    Each poll is also the relay's evidence that the client still waits for the
    answer: it records its own end as the request's ``waiter_until`` (see
    :meth:`RequestRow.abandoned`), at once if the client had not been seen for
    :data:`WAITER_REFRESH` seconds, else only once it has been held for
    :data:`RECORD_AFTER` seconds.  A poll held to its end thus counts the
    client as waiting throughout, with no write while it is held, and a relay
    that dies mid-poll leaves the client its whole grace to come back.
    """
    loop = asyncio.get_running_loop()
    hold = min(wait, MAX_WAIT)
    deadline = loop.time() + hold
    now = relay.now()
    # The end of this poll in the relay's clock (which tests can set): the client's lease.
    lease = now + math.ceil(hold)
    # Subscribed before the first read: a change committed after that read
    # still wakes this waiter, so no wake-up is lost in between.
    # A wake-up only says "look again", so one queued is enough (maxsize=1).
    async with relay.hub.subscribe(request_channel(request_id), maxsize=1) as queue:
        status, waiter_until = await _settled(relay, vault, request_id, kind, principal, now=now,
                                              final=hold <= 0)  # fmt: skip
        record_at: float | None = None  # when to record the lease; None once done
        if status is None or status.state == State.PENDING:
            if waiter_until < now - WAITER_REFRESH:
                await _record_waiter(relay, vault, request_id, now, lease)
            else:
                record_at = loop.time() + RECORD_AFTER
        if status is not None:
            return status
        while True:
            if record_at is not None and loop.time() >= record_at:
                record_at = None
                await _record_waiter(relay, vault, request_id, relay.now(), lease)
            left = deadline - loop.time()
            timeout = left if record_at is None else min(left, record_at - loop.time())
            woken = False
            # asyncio.timeout, not wait_for: no extra task per waiter.
            with contextlib.suppress(TimeoutError):  # at the deadline, read the state once more
                async with asyncio.timeout(max(timeout, 0)):
                    message = await queue.get()
                    woken = True
                    if message is CLOSED:  # the relay is stopping: answer as it is
                        deadline = loop.time()
                    # A wake-up that carries the new status answers without a read:
                    # a burst of releases wakes thousands of waiters at once.
                    carried = Status.from_message(message, request_id, kind)
                    if carried is not None and carried.state != State.PENDING:
                        return carried
            final = loop.time() >= deadline
            if woken or final:  # (else it was time to record the lease)
                status, _ = await _settled(relay, vault, request_id, kind, principal,
                                           now=relay.now(), final=final)  # fmt: skip
                if status is not None:
                    return status


async def cancel(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, now: int,
    source_ip: str | None, kind: Kind = "access",
) -> str:  # fmt: skip
    """Withdraw the caller's pending request; releases (or a store's upload) are discarded.

    A store request withdrawn is never stored after: its client has told its
    user that the store did not happen.
    """
    pending, event = (
        (State.PENDING, Event.CANCELLED) if kind == "access"
        else (StoreState.PENDING, StoreEvent.CANCELLED)
    )  # fmt: skip
    async with relay.tx() as tx:
        cancelled = await request_store.transition(
            tx.conn, vault, request_id, kind, pending, event, now, client_id=principal.id,
        )  # fmt: skip
        row = await request_store.get(tx.conn, vault, request_id, kind=kind,
                                      client_id=principal.id)  # fmt: skip
        if row is None:
            raise NotFound("no_such_request", f"you have no {kind} request with this id")
        if cancelled is None:
            raise not_pending(row.state if row.state != State.PENDING else "past its expiry")
        await request_store.drop_releases(tx.conn, vault, request_id)
        if kind == "store":
            detail = row.store
            await item_store.delete_unstored_blobs(tx.conn, vault, detail.item, detail.version)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action=f"{kind}.cancelled",
            client_id=principal.id, source_ip=source_ip, detail={"request": request_id},
        )  # fmt: skip
        wake_owner(tx, row, cancelled)
        tx.wake(approvers_channel(vault), request_id)
    return cancelled


async def take_envelope(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, now: int,
    source_ip: str | None,
) -> Envelope:  # fmt: skip
    """Take the releases, manifests and ciphertexts of the caller's released request: once.

    The relay deletes the releases as it hands them out; a second fetch is
    gone.  If the answer is lost on the way, the client asks again with a new
    request.
    """
    async with relay.read() as conn:
        row = await request_store.get(conn, vault, request_id, kind="access",
                                      client_id=principal.id)  # fmt: skip
        if row is None:
            raise NotFound("no_such_request", "you have no access request with this id")
        access = await client_store.access(conn, vault, principal.id)
        roles = await member_store.roles(conn, vault, principal.id)
        directory = await relay.directories.load(conn, vault)
    pinned = row.access.items
    # The grant (and a member's role) is checked again at delivery: removing it
    # stops a request that was asked (or even released) while it still stood.
    for entry in pinned:
        require_grant(entry.path, access)
    members.require_ask(roles, [entry.path for entry in pinned], "read")
    keys = {project: await project_key(relay, vault, path)
            for project, path in row.projects.items()}  # fmt: skip
    async with relay.tx() as tx:
        # A release waits for its client only so long: past that it is not handed out,
        # even before the sweeper has expired it.
        fresh_since = now - relay.settings.delivery_seconds
        # Past an item's destroy date nothing is delivered, even before the sweeper ran.
        await policy_axes.refuse_destroyed_pinned(
            tx.conn, vault, directory, [(e.item, e.path) for e in pinned], now
        )
        delivered = await request_store.transition(
            tx.conn, vault, request_id, "access", State.RELEASED, Event.FETCHED, now,
            client_id=principal.id, fresh_since=fresh_since,
        )  # fmt: skip
        if delivered is None:
            state = await request_store.state_of(tx.conn, vault, request_id)
            if state == State.DELIVERED:
                raise Gone("already_delivered",
                           "this request's envelope was delivered once and is gone",
                           "Make a new access request.")  # fmt: skip
            if state == State.RELEASED:
                raise Conflict("not_released",
                               "the release waited too long for delivery and has expired",
                               "Make a new access request.")  # fmt: skip
            raise Conflict("not_released", f"the request is {state}: nothing to deliver")
        releases = await request_store.take_releases(tx.conn, vault, request_id)
        stored = await item_store.manifests(tx.conn, vault, [(e.item, e.version) for e in pinned])
        manifests: dict[str, str] = {}
        ciphertexts: dict[str, dict[str, bytes]] = {}
        for entry in pinned:
            manifests[entry.item] = stored[(entry.item, entry.version)].manifest
            held = await item_store.read_blobs(
                tx.conn, relay.master_key.opener(keys[entry.project]), vault=vault,
                item=entry.item, version=entry.version, holders=("",), fields=entry.fields,
            )  # fmt: skip
            ciphertexts[entry.item] = held.get("", {})
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.delivered",
            client_id=principal.id, source_ip=source_ip,
            detail={"request": request_id, "releases": len(releases)},
        )  # fmt: skip
        wake_owner(tx, row, delivered)
    return Envelope(releases, manifests, ciphertexts)


@dataclass(frozen=True)
class CacheHit:
    request: str
    hits: int
    first_at: int
    last_at: int


async def record_cache_hits(
    relay: Relay, *, vault: str, principal: Principal, hits: list[CacheHit], now: int,
    source_ip: str | None,
) -> int:  # fmt: skip
    """Record that values released by the caller's delivered requests were read from its cache.

    The relay never sees a value, only which release was reused, how often and
    when.  Each report must name a delivered request of the caller's.
    """
    wanted = sorted({hit.request for hit in hits})
    async with relay.read() as conn:
        found = await request_store.delivered_ids(conn, vault, principal.id, wanted)
    unknown = [r for r in wanted if r not in found]
    if unknown:
        raise NotFound(
            "no_such_request", "you have no delivered request with this id: " + unknown[0],
            "Report hits only for releases this client received.",
        )  # fmt: skip
    async with relay.tx() as tx:
        for hit in hits:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action="access.cache_hit",
                client_id=principal.id, source_ip=source_ip,
                detail={"request": hit.request, "hits": hit.hits, "first_at": hit.first_at,
                        "last_at": hit.last_at},
            )  # fmt: skip
    return len(hits)


# --- approvers see and answer --------------------------------------------------------------------


async def _approval(
    relay: Relay, conn: AsyncConnection, row: RequestRow, approver: str,
    keys: Mapping[str, bytes], recent: dict[str, Recent], now: int,
) -> Approval:  # fmt: skip
    """Access: the statement, the client's certificate (and enrollment), each pinned manifest
    and this approver's wrapped shares of exactly the requested fields.  Store: the statement,
    the ciphertexts and every wrap (``verify_store`` checks them all against the signed
    hashes), and the previous manifest."""
    vault = row.vault
    # Clients are disabled, never deleted; absent, there is nothing to verify with.
    holder = await client_store.get(conn, vault, row.client_id)
    answers = await request_store.answer_kinds(conn, vault, row.id)
    if row.client_id not in recent:  # once per requester in a listing
        recent[row.client_id] = await fatigue.recent(relay, conn, vault=vault,
                                                     client_id=row.client_id, now=now)  # fmt: skip
    approval = Approval(
        row=row, certificate=holder.certificate if holder else None,
        enrollment=holder.enrollment if holder else None,
        approvals=sum(1 for _, kind in answers if kind == "release"),
        answered=any(who == approver for who, _ in answers), recent=recent[row.client_id],
    )  # fmt: skip
    if row.kind == "access":
        pinned = row.access.items
        stored = await item_store.manifests(conn, vault, [(e.item, e.version) for e in pinned])
        for entry in pinned:
            approval.manifests[entry.item] = stored[(entry.item, entry.version)].manifest
            held = await item_store.read_blobs(
                conn, relay.master_key.opener(keys[entry.project]), vault=vault, item=entry.item,
                version=entry.version, holders=(approver,), fields=entry.fields,
            )  # fmt: skip
            approval.wraps[entry.item] = held.get(approver, {})
        return approval
    detail = row.store
    held = await item_store.read_blobs(
        conn, relay.master_key.opener(keys[detail.project]), vault=vault, item=detail.item,
        version=detail.version,
    )  # fmt: skip
    approval.ciphertexts.update(held.pop("", {}))
    approval.wraps.update(held)
    prev = await item_store.version(conn, vault, detail.item, detail.version - 1)
    return dataclasses.replace(approval, prev_manifest=prev.manifest if prev else None)


async def _keys(relay: Relay, vault: str, rows: list[RequestRow]) -> dict[str, bytes]:
    projects: dict[str, str] = {}
    for row in rows:
        for project, path in row.projects.items():
            projects.setdefault(project, path)
    return {project: await project_key(relay, vault, path) for project, path in projects.items()}


async def list_approvals(
    relay: Relay, *, vault: str, principal: Principal, now: int
) -> list[Approval]:
    """Pending requests the calling approver can answer, oldest first, with what answering needs."""
    async with relay.read() as conn:
        rows = await request_store.pending_for(conn, vault, now, principal.id, APPROVALS_MAX,
                                               waiter_since(relay, now))  # fmt: skip
    keys = await _keys(relay, vault, rows)
    recent: dict[str, Recent] = {}
    async with relay.read() as conn:
        return [await _approval(relay, conn, row, principal.id, keys, recent, now)
                for row in rows]  # fmt: skip


async def get_approval(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, now: int
) -> Approval:
    """One request the calling approver can answer (what it fetches when its stream names one)."""
    async with relay.read() as conn:
        row = await request_store.get(conn, vault, request_id)
    if (
        row is None
        or not row.waiting(now)
        or row.abandoned(now, relay.settings.waiter_grace_seconds)
        or not row.answerable_by(principal.id)
    ):
        raise NotFound("no_such_approval", "no pending request with this id awaits you")
    keys = await _keys(relay, vault, [row])
    async with relay.read() as conn:
        return await _approval(relay, conn, row, principal.id, keys, {}, now)


async def pending_summaries(
    relay: Relay, *, vault: str, principal: Principal, now: int
) -> list[RequestRow]:
    """What an approver's event stream announces on connecting."""
    async with relay.read() as conn:
        return await request_store.pending_for(conn, vault, now, principal.id, APPROVALS_MAX,
                                               waiter_since(relay, now))  # fmt: skip


async def request_for_stream(relay: Relay, *, vault: str, request_id: str,
                             principal: Principal) -> RequestRow | None:  # fmt: skip
    """A changed request the approver's stream should announce, if it may answer it."""
    async with relay.read() as conn:
        row = await request_store.get(conn, vault, request_id)
    return row if row is not None and row.answerable_by(principal.id) else None


def _verify_release(
    token: str, directory: Directory, principal: Principal, row: RequestRow
) -> ReleaseStatement:
    """A release this approver signed, for this request and its pinned versions."""
    detail = row.access
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a release is uploaded by the approver that signed it")
    signer = directory.approver(principal.id)
    release = verify_statement(token, ReleaseStatement, signer.sig_pk, signer.id)
    if release.approver != signer.id or release.vault != directory.vault:
        raise BindingMismatch("release approver or vault does not match its signature")
    if release.request != "sha256:" + row.id:
        raise BindingMismatch("the release answers another request")
    if release.manifests != tuple(sorted({e.manifest_hash for e in detail.items})):
        raise BindingMismatch("the release vouches for other item versions than were asked for")
    if release.at > row.expires_at + CLOCK_SKEW:
        raise Expired("the release was made after the request expired")
    if principal.id not in detail.approvers:
        raise NotAuthorized(f"{principal.id} is not among the approvers this request needs")
    if release.cache_until > detail.cache_until_max:
        raise Invalid(
            "cache_beyond_policy", "the release lets the client cache longer than the policy",
            "Release with an earlier cache_until.",
        )  # fmt: skip
    return release


async def release(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, token: str, now: int,
    source_ip: str | None,
) -> Released:  # fmt: skip
    """Answer a pending request with a release the approver signed; released at the threshold.

    Any-of-N: the first valid release wins and later ones are refused.  M-of-N:
    released when M distinct approvers have released.
    """
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        row = await request_store.get(conn, vault, request_id, kind="access")
    if row is None:
        raise NotFound("no_such_request", "no access request with this id")
    check_answerable(relay, row, now)
    _verify_release(token, directory, principal, row)
    async with relay.tx() as tx:
        # Before any row: the items' projects' freeze locks (freeze.hold_release checks
        # under them), so a freeze is ordered with this release and no lock cycle forms.
        await freeze.lock_paths(tx.conn, vault, [e.path for e in row.access.items])
        # Past an item's destroy date nothing is released, even before the sweeper ran.
        await policy_axes.refuse_destroyed_pinned(
            tx.conn, vault, directory, [(e.item, e.path) for e in row.access.items], now
        )
        # Take the request row first: concurrent releases of one request then
        # count each other's.  Its client must still be waiting: a release
        # for a process that is gone would wait unread (or worse, be read by
        # whoever asks with that statement next).
        if not await request_store.hold_pending(tx.conn, vault, request_id, now,
                                                waiter_since(relay, now)):  # fmt: skip
            raise await refusal(relay, tx.conn, vault, request_id, now)
        await request_store.add_answer(tx.conn, vault, request_id, principal.id, "release",
                                       token, now)  # fmt: skip
        await fatigue.record_approval(tx.conn, vault=vault, client_id=row.client_id)
        approvals = await request_store.release_count(tx.conn, vault, request_id)
        state: str = State.PENDING
        released_by = [who for who, kind in await request_store.answer_kinds(
            tx.conn, vault, request_id) if kind == "release"]  # fmt: skip
        if cosign_reached(released_by, row.threshold, row.access.cosigner):
            released = await request_store.transition(
                tx.conn, vault, request_id, "access", State.PENDING, Event.THRESHOLD_REACHED, now
            )
            if released is None:  # pragma: no cover - the row is held above
                raise not_pending(str(await request_store.state_of(tx.conn, vault, request_id)))
            state = released
        rotation_due: list[policy_axes.Due] = []
        if state == State.RELEASED:
            # Releases since each item's latest version, against its rotate-after-N.
            rules = await client_store.policy_rows(tx.conn, vault)
            rotation_due = await policy_axes.on_released(
                tx.conn, vault=vault, now=now,
                pinned=[(e.item, e.path, e.version) for e in row.access.items],
                policies_of={e.path: policy_for(e.path, rules, directory)
                             for e in row.access.items},
            )  # fmt: skip
        # Nothing is released in a frozen project; a canary's release freezes its own.
        await freeze.hold_release(tx.conn, vault=vault, row=row, approver=principal.id,
                                  released=state == State.RELEASED, now=now)  # fmt: skip
        await policy_axes.audit_rotation_due(tx.conn, rotation_due, vault=vault, now=now,
                                             actor=principal.id, request_id=request_id)  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.release",
            client_id=row.client_id, source_ip=source_ip,
            detail={"request": request_id, "approvals": approvals, "threshold": row.threshold,
                    "state": str(state)},
        )  # fmt: skip
        wake_owner(tx, row, str(state), approvals=approvals)
        tx.wake(approvers_channel(vault), request_id)
    return Released(request_id, str(state), approvals, row.threshold)


async def deny_request(
    relay: Relay, *, vault: str, request_id: str, kind: Kind, principal: Principal, token: str,
    now: int, source_ip: str | None,
) -> tuple[str, str]:  # fmt: skip
    """Record an approver's signed refusal of a pending request (access or store).

    Returns (id, state).
    """
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        row = await request_store.get(conn, vault, request_id, kind=kind)
    if row is None:
        raise NotFound("no_such_request", f"no {kind} request with this id")
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a deny is uploaded by the approver that signed it")
    # The reason is the approver's free text for the requester; it stays in the
    # signed statement (kept as the answer) and out of the audit log.
    statement = verify_deny(token, directory=directory, request_hash="sha256:" + request_id)
    pending, event = (
        (State.PENDING, Event.DENIED) if kind == "access"
        else (StoreState.PENDING, StoreEvent.DENIED)
    )  # fmt: skip
    async with relay.tx() as tx:
        # A request whose client is gone takes no deny either: it expires, and
        # the approver learns that nobody is waiting any more.
        denied = await request_store.transition(
            tx.conn, vault, request_id, kind, pending, event, now,
            waiter_since=waiter_since(relay, now),
        )  # fmt: skip
        if denied is None:
            raise await refusal(relay, tx.conn, vault, request_id, now)
        # A refusal of a request that did not verify is a tampering alarm: what the
        # approver was shown is not what the client signed.
        refused = statement.grounds is not None
        # Denials in a row lock the requester out (against asking until someone says yes);
        # a refusal of a request that did not verify is not its requester's doing.  Counted
        # before any audit event: it takes the client's creation lock, and every writer
        # takes the audit chain's lock last.
        lockout = None
        if not refused:
            lockout = await fatigue.record_denial(relay, tx.conn, vault=vault,
                                                  client_id=row.client_id, now=now)  # fmt: skip
        # One answer per approver: a deny replaces this approver's earlier release.
        await request_store.drop_releases(tx.conn, vault, request_id)
        await request_store.add_answer(tx.conn, vault, request_id, principal.id, "deny", token,
                                       now)  # fmt: skip
        if kind == "store":
            detail = row.store
            await item_store.delete_unstored_blobs(tx.conn, vault, detail.item, detail.version)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action=f"{kind}.denied",
            severity="alert" if refused else "notice", client_id=row.client_id,
            source_ip=source_ip,
            detail={"request": request_id, **({"grounds": statement.grounds} if refused else {})},
        )  # fmt: skip
        if lockout is not None:
            await fatigue.audit_lockout(
                tx.conn, lockout, vault=vault, client_id=row.client_id, now=now,
                actor=principal.id, source_ip=source_ip,
            )  # fmt: skip
        wake_owner(tx, row, denied, deny=token)
        tx.wake(approvers_channel(vault), request_id)
    return request_id, denied
