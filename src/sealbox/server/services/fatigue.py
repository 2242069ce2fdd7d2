"""Against approval fatigue: per-requester limits, lockout after denials, prompt-storm reports.

An approver asked too often stops reading and approves by habit; a
compromised client (an agent, say) can exploit that by asking again and again
until someone says yes.  So the relay holds each requester to:

- a rate of new prompts (requests approvers are asked to answer) and a cap on
  those pending at once, both counted in the database so they hold across
  replicas, with overrides an approver sets per client
  (:func:`set_limits`).  Over either: 429 with a clear code, audited
  (``requests.throttled``, at most once a minute per client and code), nothing
  created;
- a lockout: after ``lockout_denials`` denials in a row (no approval between
  them, each within the window of the one before) its new prompts are refused
  with 403 ``locked_out`` until an approver clears it (:func:`unlock`);
  ``client.locked`` is audited once, when it locks;
- a storm report: more than ``storm_prompts`` prompts from one requester
  within a minute writes one ``requests.storm`` event (severity alert) for
  that minute, not one per prompt.

:func:`admit_prompt` runs inside the transaction that creates a prompt, under
the client's creation lock (:func:`sealbox.server.store.requests.lock_client`);
:func:`record_denial` inside the transaction that denies one (and
:func:`audit_lockout` when that locked the client).  Neither touches
the release path.  What approvers see of this (:func:`recent`) is the relay's
own count, served apart from everything signed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden, Invalid, NotFound, RelayError, TooMany
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import fatigue as store
from sealbox.server.store import requests as request_store
from sealbox.server.store.fatigue import Guard, Recent

__all__ = [
    "MAX_PENDING_CAP",
    "MAX_PER_MINUTE",
    "RECENT_MOST",
    "RECENT_SECONDS",
    "WINDOW",
    "Limits",
    "Lockout",
    "PromptKind",
    "RequesterView",
    "admit_prompt",
    "audit_lockout",
    "audit_refused_prompt",
    "auditing_refusals",
    "limits",
    "list_requesters",
    "recent",
    "record_denial",
    "set_limits",
    "unlock",
]

PromptKind = Literal["access", "store", "consent"]

#: The rate window: prompts are counted over the last this many seconds.
WINDOW = 60
#: What approvers are shown: a requester's requests and denials over this many seconds ...
RECENT_SECONDS = 3600
#: ... each counted up to this many (more reads as this many: "1000 or more").
RECENT_MOST = 1000
#: Largest overrides an approver may set (a count is bounded by the limit it is held to).
MAX_PER_MINUTE = 10_000
MAX_PENDING_CAP = 1_000
#: Most requesters one listing returns.
LIST_MAX = 500
#: Error codes of refused prompts that are audited as ``requests.throttled``.
THROTTLED = frozenset({"too_many_prompts", "too_many_pending"})


@dataclass(frozen=True)
class Limits:
    """The limits one requester is held to: the relay's, or an approver's override."""

    per_minute: int
    pending_cap: int
    per_minute_override: bool = False
    pending_cap_override: bool = False


def limits(relay: Relay, guard: Guard | None) -> Limits:
    settings = relay.settings
    per_minute = guard.per_minute if guard is not None else None
    pending = guard.pending_cap if guard is not None else None
    return Limits(
        per_minute=settings.prompts_per_minute if per_minute is None else per_minute,
        pending_cap=settings.pending_cap if pending is None else pending,
        per_minute_override=per_minute is not None, pending_cap_override=pending is not None,
    )  # fmt: skip


def locked_out() -> Forbidden:
    return Forbidden(
        "locked_out", "this client is locked out after repeated denials: no new requests",
        "An approver must clear it: `sealbox approver requesters unlock CLIENT`.",
    )  # fmt: skip


# --- a prompt is raised ------------------------------------------------------------------------


@dataclass(frozen=True)
class Storm:
    """A storm this prompt made: reported with :func:`report_storm` once the prompt is in."""

    client_id: str
    prompts: int
    threshold: int
    kind: PromptKind


async def admit_prompt(
    relay: Relay, conn: AsyncConnection, *, vault: str, client_id: str, now: int,
    kind: PromptKind,
) -> Storm | None:  # fmt: skip
    """Let one new prompt of ``client_id`` through, or raise why not; report a storm once.

    Call it in the transaction that creates the prompt, after
    :func:`~sealbox.server.store.requests.lock_client` (which serialises one
    client's creations across replicas) and before inserting it.  Raises
    :class:`~sealbox.server.errors.Forbidden` ``locked_out``, or
    :class:`~sealbox.server.errors.TooMany` ``too_many_prompts`` (with
    ``retry_after``) or ``too_many_pending``; the caller's transaction then
    rolls back, and :func:`audit_refused_prompt` records the refusal after it.
    Prompts are counted in the requests table, whatever their kind.
    """
    guard = await store.get(conn, vault, client_id)
    if guard is not None and guard.locked_at is not None:
        raise locked_out()
    held = limits(relay, guard)
    storm = relay.settings.storm_prompts
    since = now - WINDOW + 1
    prompts, pending = await store.prompts_and_pending(
        conn, vault, client_id, since=since, now=now, most=max(held.per_minute, storm) + 1
    )
    if prompts >= held.per_minute:
        oldest = await store.oldest_since(conn, vault, client_id, since)
        wait = (oldest if oldest is not None else now) + WINDOW - now
        raise TooMany(
            "too_many_prompts",
            f"this client made {prompts} requests in the last {WINDOW} seconds; "
            f"it may make {held.per_minute}",
            "Wait, then ask again; ask once for everything a task needs (one `sealbox run` "
            "with every reference). An approver can raise this client's limit.",
            retry_after=max(1, wait),
        )  # fmt: skip
    if pending >= held.pending_cap:
        raise TooMany(
            "too_many_pending", f"this client already has {held.pending_cap} requests waiting",
            "Wait for an answer, or cancel requests you no longer need.",
        )  # fmt: skip
    raised = prompts + 1  # with this one
    reported = guard is not None and guard.storm_at is not None and guard.storm_at > now - WINDOW
    if raised > storm and not reported and await store.claim_storm(conn, vault, client_id, now,
                                                                   WINDOW):  # fmt: skip
        return Storm(client_id, raised, storm, kind)
    return None


async def report_storm(conn: AsyncConnection, storm: Storm | None, *, vault: str,
                       now: int) -> None:  # fmt: skip
    """Record the ``requests.storm`` event :func:`admit_prompt` claimed, if any.

    Call it after the prompt's own rows (its jti, the request) are written: the
    audit chain's lock is taken last by every writer, and a jti is a key any
    client may choose, so taking the audit lock before inserting it could wait
    in a cycle with another client's creation.
    """
    if storm is None:
        return
    await audit.append(
        conn, vault=vault, at=now, actor="relay", action="requests.storm", severity="alert",
        client_id=storm.client_id,
        detail={"prompts": storm.prompts, "window_seconds": WINDOW, "threshold": storm.threshold,
                "kind": storm.kind},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def auditing_refusals(
    relay: Relay, *, vault: str, client_id: str, now: int, kind: PromptKind,
    source_ip: str | None,
) -> AsyncIterator[None]:  # fmt: skip
    """Around the transaction that creates a prompt: a refusal over a limit that it raises is
    recorded (:func:`audit_refused_prompt`) once that transaction has rolled back."""
    try:
        yield
    except TooMany as refused:
        await audit_refused_prompt(relay, refused, vault=vault, client_id=client_id, now=now,
                                   kind=kind, source_ip=source_ip)  # fmt: skip
        raise


async def audit_refused_prompt(
    relay: Relay, error: RelayError, *, vault: str, client_id: str, now: int, kind: PromptKind,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Record a prompt refused over a limit as ``requests.throttled``: once a minute per client
    and code (the next event says how many were left out), in a transaction of its own.

    Call it with whatever the prompt's transaction raised: only a refusal over a limit is
    recorded here.  A locked-out client's refusals are 403s, recorded as every 403 is
    (``request.refused``).
    """
    if not isinstance(error, TooMany) or error.code not in THROTTLED:
        return
    suppressed = relay.refusal_audit.admit((vault, "prompts", client_id, error.code), now)
    if suppressed is None:
        return
    detail: dict[str, object] = {"error": error.code, "kind": kind}
    if suppressed:
        detail["suppressed"] = suppressed
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=client_id, action="requests.throttled",
            severity="warning", client_id=client_id, source_ip=source_ip, detail=detail,
        )  # fmt: skip


# --- an approver says no -----------------------------------------------------------------------


@dataclass(frozen=True)
class Lockout:
    """A denial that locked its requester out (:func:`audit_lockout` records it)."""

    denials: int
    threshold: int
    window_seconds: int


async def record_denial(
    relay: Relay, conn: AsyncConnection, *, vault: str, client_id: str, now: int
) -> Lockout | None:
    """Count a denial of one of ``client_id``'s prompts; lock it out at the limit.

    Call it in the transaction that records the denial, before that
    transaction appends to the audit log (it takes the client's creation lock,
    and every writer takes the audit chain's lock last); then, if it returns a
    :class:`Lockout`, :func:`audit_lockout` after the denial's own event.
    Denials count as in a row while no prompt of the client was approved since
    the one before (:func:`record_approval` clears the count) and each comes
    within the lockout window of the one before.
    A client already locked out is not locked (nor audited) again.
    """
    settings = relay.settings
    if settings.lockout_denials == 0:
        return None
    # Two denials of one client's prompts at once (two replicas) must both count.
    await request_store.lock_client(conn, vault, client_id)
    guard = await store.get(conn, vault, client_id)
    denials = 1
    if (
        guard is not None
        and guard.denials > 0
        and guard.last_denial_at is not None
        and guard.last_denial_at >= now - settings.lockout_window_seconds
    ):
        denials = guard.denials + 1
    lock = denials >= settings.lockout_denials and (guard is None or guard.locked_at is None)
    await store.record_denials(conn, vault, client_id, now, denials, lock=lock)
    if not lock:
        return None
    return Lockout(denials, settings.lockout_denials, settings.lockout_window_seconds)


async def record_approval(conn: AsyncConnection, *, vault: str, client_id: str) -> None:
    """An approver said yes to one of ``client_id``'s prompts: its denials are no longer in a row.

    Called where an approver's answer is accepted (a release, a store's manifest, a
    consent), never where the client itself moves its request on (taking a release or
    a consent): a client must not be able to clear its own count by fetching an answer
    it kept back.  A lockout stays until an approver clears it.
    """
    await store.clear_denials(conn, vault, client_id)


async def audit_lockout(
    conn: AsyncConnection, lockout: Lockout, *, vault: str, client_id: str, now: int,
    actor: str, source_ip: str | None,
) -> None:  # fmt: skip
    """Record ``client.locked`` (severity alert), once: when the denial locked the client."""
    await audit.append(
        conn, vault=vault, at=now, actor=actor, action="client.locked", severity="alert",
        client_id=client_id, source_ip=source_ip,
        detail={"denials": lockout.denials, "threshold": lockout.threshold,
                "window_seconds": lockout.window_seconds},
    )  # fmt: skip


# --- what approvers see and do -----------------------------------------------------------------


async def recent(relay: Relay, conn: AsyncConnection, *, vault: str, client_id: str,
                 now: int) -> Recent:  # fmt: skip
    """The requester's requests and denials over :data:`RECENT_SECONDS`, and whether it is
    locked: the relay's count, which nobody signs."""
    return await store.recent(conn, vault, client_id, since=now - RECENT_SECONDS + 1,
                              most=RECENT_MOST)  # fmt: skip


@dataclass(frozen=True)
class RequesterView:
    client_id: str
    name: str | None
    kind: str | None
    limits: Limits
    denials: int
    """Denials in a row so far."""
    locked_at: int | None
    recent: Recent
    updated_by: str | None


async def _view(relay: Relay, conn: AsyncConnection, vault: str, guard: Guard | None,
                client_id: str, now: int) -> RequesterView:  # fmt: skip
    holder = await client_store.get(conn, vault, client_id)
    return RequesterView(
        client_id=client_id, name=holder.name if holder else None,
        kind=holder.kind if holder else None, limits=limits(relay, guard),
        denials=guard.denials if guard else 0, locked_at=guard.locked_at if guard else None,
        recent=await recent(relay, conn, vault=vault, client_id=client_id, now=now),
        updated_by=guard.updated_by if guard else None,
    )  # fmt: skip


async def list_requesters(relay: Relay, *, vault: str, now: int) -> list[RequesterView]:
    """Requesters with an override, a lockout or denials in a row (locked first)."""
    async with relay.read() as conn:
        guards = await store.listing(conn, vault, LIST_MAX)
        return [await _view(relay, conn, vault, g, g.client_id, now) for g in guards]


async def _require_client(conn: AsyncConnection, vault: str, client_id: str) -> None:
    if await client_store.get(conn, vault, client_id) is None:
        raise NotFound("no_such_client", f"no client {client_id}")


def check_override(value: int | None, most: int, what: str) -> int | None:
    if value is not None and not 1 <= value <= most:
        raise Invalid("invalid_limit", f"{what} must be between 1 and {most}, not {value}",
                      "Leave it out (or clear it) to use the relay's setting.")  # fmt: skip
    return value


async def set_limits(
    relay: Relay, *, vault: str, client_id: str, per_minute: int | None,
    pending_cap: int | None, approver: Principal, now: int, source_ip: str | None,
) -> RequesterView:  # fmt: skip
    """Hold one client to its own limits (``None``: the relay's setting); audited."""
    check_override(per_minute, MAX_PER_MINUTE, "requests per minute")
    check_override(pending_cap, MAX_PENDING_CAP, "the pending cap")
    async with relay.tx() as tx:
        await _require_client(tx.conn, vault, client_id)
        await store.set_limits(tx.conn, vault, client_id, now, approver.id,
                               per_minute=per_minute, pending_cap=pending_cap)  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="client.limits",
            severity="notice", client_id=client_id, source_ip=source_ip,
            detail={"per_minute": per_minute, "pending_cap": pending_cap},
        )  # fmt: skip
        guard = await store.get(tx.conn, vault, client_id)
        return await _view(relay, tx.conn, vault, guard, client_id, now)


async def unlock(
    relay: Relay, *, vault: str, client_id: str, approver: Principal, now: int,
    source_ip: str | None,
) -> tuple[RequesterView, bool]:  # fmt: skip
    """Clear a client's lockout (and its denials in a row); audited.  (view, whether it was
    locked: unlocking a client that is not locked changes and audits nothing)."""
    async with relay.tx() as tx:
        await _require_client(tx.conn, vault, client_id)
        # As a denial does: an unlock between a denial's read and its write would be undone.
        await request_store.lock_client(tx.conn, vault, client_id)
        changed = await store.unlock(tx.conn, vault, client_id, now, approver.id)
        if changed:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=approver.id, action="client.unlocked",
                severity="notice", client_id=client_id, source_ip=source_ip, detail={},
            )  # fmt: skip
        guard = await store.get(tx.conn, vault, client_id)
        return await _view(relay, tx.conn, vault, guard, client_id, now), changed
