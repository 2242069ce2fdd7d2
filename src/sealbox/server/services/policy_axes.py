"""The policy axes the relay enforces before any approver is asked, and their bookkeeping.

On top of approvers, threshold, expiry, cache window and networks
(:mod:`sealbox.server.policy`), a policy may carry:

- time windows: an access or store request for its items is refused outside them
  (``policy_outside_hours``, 403);
- a read-rate cap: at most N access requests per item per sliding period
  (``policy_rate_exceeded``, 429 with ``Retry-After``).  Requests are counted, not
  releases: a request is what the relay sees before anyone is asked, so the cap holds
  before an approver is bothered, and releases can never exceed requests;
- a co-signer: an approver that must release on top of the threshold (counted in
  :func:`sealbox.protocol.policy_rules.cosign_reached` when releases come in);
- a destroy date: from then on requests for its items are refused (``item_destroyed``,
  410), and housekeeping deletes them (versions and blobs) and leaves a tombstone;
- rotate-after-N: after N releases of an item's latest version it is marked as due for
  rotation, audited once as ``item.rotation_due`` (severity ``alert``).

Every refusal here changes nothing (it is raised before, or rolls back, the
transaction that would create the request) and is audited as ``request.refused``
by the HTTP layer (:class:`AxisRefusal`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.errors import SealboxError
from sealbox.protocol import policies, policy_rules, scopes
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.directory import Directory
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Forbidden, Gone, Invalid, TooMany
from sealbox.server.networks import parse_networks
from sealbox.server.policy import Policy, policy_for
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import items as item_store
from sealbox.server.store import policy_axes as store

__all__ = [
    "NO_AXES",
    "READS_KEPT_SECONDS",
    "Axes",
    "AxisRefusal",
    "Unsatisfiable",
    "applying",
    "audit_rotation_due",
    "check_axes",
    "check_cosigner",
    "check_request",
    "check_statement",
    "destroy_cap",
    "on_released",
    "refuse_destroyed",
    "refuse_destroyed_path",
    "refuse_destroyed_pinned",
    "refuse_destroyed_store",
    "rotation_due",
    "take_reads",
]

log = logging.getLogger("sealbox.relay")

#: Reads are kept as long as the longest period a cap may have.
READS_KEPT_SECONDS = policy_rules.MAX_RATE_PERIOD


class AxisRefusal:
    """A refusal by a policy axis: audited as ``request.refused`` whatever its status."""


class OutsideHours(Forbidden, AxisRefusal):
    pass


class Destroyed(Gone, AxisRefusal):
    pass


class RateExceeded(TooMany, AxisRefusal):
    pass


class Unsatisfiable(Conflict, AxisRefusal):
    """No approvers (or co-signer) the items' policies name can answer: refused (409) and
    audited like every other refusal of a request."""


def _when(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def destroyed_error(path: str, at: int) -> Destroyed:
    return Destroyed(
        "item_destroyed", f"{path} was destroyed under its policy at {_when(at)}",
        "Its versions and blobs are deleted; nothing can release it any more.",
    )  # fmt: skip


def check_request(policy: Policy, path: str, now: int) -> None:
    """Hold an access or store request for ``path`` to its policy's destroy date and windows."""
    if policy.destroy_at is not None and now >= policy.destroy_at:
        raise destroyed_error(path, policy.destroy_at)
    if policy.hours and not policy_rules.in_windows(_windows(policy.hours), now):
        raise OutsideHours(
            "policy_outside_hours",
            f"the policy for {path} accepts requests only within: " + "; ".join(policy.hours),
            "Ask again within one of these windows, or ask an approver to change the policy.",
        )  # fmt: skip


def _windows(hours: tuple[str, ...]) -> tuple[policy_rules.Window, ...]:
    # Stored as parsed and canonicalised when the policy was set.
    return policy_rules.parse_windows(hours)


async def refuse_destroyed(conn: AsyncConnection, vault: str, asked: Iterable[str]) -> None:
    """Refuse a request naming a destroyed item (410, before "no such item")."""
    gone = await store.destroyed(conn, vault, asked)
    if gone:
        item, at = min(gone.items())
        raise destroyed_error(item, at)


async def refuse_destroyed_pinned(
    conn: AsyncConnection, vault: str, directory: Directory,
    pinned: Sequence[tuple[str, str]], now: int,
) -> None:  # fmt: skip
    """Refuse (410) releasing or delivering a request whose items are past their destroy
    date or already destroyed: asked before the date is no licence to read after it, even
    before the sweeper has run.  ``pinned`` is (item, path); called inside the transaction.
    """
    await refuse_destroyed(conn, vault, [item for item, _ in pinned])
    rows = await client_store.policy_rows(conn, vault)
    for _, path in pinned:
        at = policy_for(path, rows, directory).destroy_at
        if at is not None and now >= at:
            raise destroyed_error(path, at)


async def refuse_destroyed_store(
    conn: AsyncConnection, vault: str, directory: Directory, *, item: str, path: str, now: int,
    hours: bool,
) -> None:  # fmt: skip
    """Refuse storing a version of a destroyed item, or under a policy past its destroy date
    (and, with ``hours``, outside its windows: a client's store completed by an approver is
    held to them as its request was).  Called inside the transaction that stores it."""
    policy = policy_for(path, await client_store.policy_rows(conn, vault), directory)
    if hours:
        check_request(policy, path, now)
    elif policy.destroy_at is not None and now >= policy.destroy_at:
        raise destroyed_error(path, policy.destroy_at)
    await refuse_destroyed(conn, vault, [item])


def destroy_cap(applied: Iterable[Policy]) -> int | None:
    """The earliest destroy date of these policies: no release may be cached past it."""
    dates = [p.destroy_at for p in applied if p.destroy_at is not None]
    return min(dates) if dates else None


async def take_reads(
    conn: AsyncConnection, vault: str, request_id: str, capped: Sequence[tuple[str, Policy]],
    now: int,
) -> None:  # fmt: skip
    """Count an access request against each item's read-rate cap, or refuse it (429).

    Called inside the transaction that creates the request: a refusal rolls it back.
    """
    limited = [(item, policy_rules.parse_rate(p.max_reads)) for item, p in capped if p.max_reads]
    await store.lock_items(conn, vault, [item for item, _ in limited])
    for item, rate in limited:
        times = await store.read_times(conn, vault, item, now - rate.period)
        wait = policy_rules.rate_retry_after(times, rate, now)
        if wait is not None:
            raise RateExceeded(
                "policy_rate_exceeded",
                f"{item} may be asked for at most {rate.text()} under its policy",
                f"Ask again in {wait} seconds.", retry_after=wait,
            )  # fmt: skip
    await store.add_reads(conn, vault, request_id, [item for item, _ in capped], now)


Due = tuple[str, str, int, int, int]
"""(item, path, version, releases, rotate_after) of an item version just marked as due."""


async def on_released(
    conn: AsyncConnection, *, vault: str, pinned: Sequence[tuple[str, str, int]],
    policies_of: Mapping[str, Policy], now: int,
) -> list[Due]:  # fmt: skip
    """Count a released request's items; mark those now due for rotation (each once).

    ``pinned`` is (item, path, version); ``policies_of`` path -> its policy.  Rows only:
    the caller audits what this returns (:func:`audit_rotation_due`) after its other row
    writes, since the audit chain's lock is taken last.
    """
    due = []
    for item, path, version in pinned:
        count = await store.count_release(conn, vault, item, version)
        limit = policies_of[path].rotate_after
        if limit is None or count < limit:
            continue
        row = await item_store.get(conn, vault, item)
        if row is None or row.latest_version != version:
            continue  # releases of an older version say nothing about the latest
        if await store.mark_rotation_due(conn, vault, item, version, now):
            due.append((item, path, version, count, limit))
    return due


async def audit_rotation_due(
    conn: AsyncConnection, due: Sequence[Due], *, vault: str, now: int, actor: str,
    request_id: str,
) -> None:  # fmt: skip
    """``item.rotation_due`` (severity ``alert``: alerts fire from it) for each marked version."""
    for item, path, version, count, limit in due:
        await audit.append(
            conn, vault=vault, at=now, actor=actor, action="item.rotation_due", severity="alert",
            item_id=item,
            detail={"path": path, "version": version, "releases": count, "rotate_after": limit,
                    "request": request_id},
        )  # fmt: skip


async def rotation_due(
    relay: Relay, vault: str, rows: Sequence[item_store.ItemRow]
) -> dict[str, dict[str, Any]]:
    """item -> what listings add for those whose latest version is due for rotation."""
    async with relay.read() as conn:
        marks = await store.rotation_due(conn, vault, [(r.id, r.latest_version) for r in rows])
    return {item: {"rotation_due": True, "rotation_due_at": at, "releases": releases}
            for item, (releases, at) in marks.items()}  # fmt: skip


# --- setting a policy's axes -------------------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """A policy's further axes, as checked and stored (canonical text)."""

    hours: tuple[str, ...] = ()
    max_reads: str | None = None
    cosigner: str | None = None
    destroy_at: int | None = None
    rotate_after: int | None = None
    statement: str | None = None
    """The approver-signed ``sealbox.policy.v1`` it was set with (None: the relay's word)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Axes:
        return cls(
            hours=tuple(row.get("hours") or ()), max_reads=row.get("max_reads"),
            cosigner=row.get("cosigner"), destroy_at=row.get("destroy_at"),
            rotate_after=row.get("rotate_after"), statement=row.get("statement"),
        )  # fmt: skip

    @classmethod
    def from_policy(cls, policy: Policy) -> Axes:
        return cls(policy.hours, policy.max_reads, policy.cosigner, policy.destroy_at,
                   policy.rotate_after, policy.statement)  # fmt: skip

    def to_row(self) -> dict[str, Any]:
        return {"hours": list(self.hours), "max_reads": self.max_reads,
                "cosigner": self.cosigner, "destroy_at": self.destroy_at,
                "rotate_after": self.rotate_after, "statement": self.statement}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """As the API shows it: every axis, null (or empty) when it is not set."""
        return {**self.to_row(), "signed": self.statement is not None}

    def to_audit(self) -> dict[str, Any]:
        """The axes that are set (never the statement itself: it is in the policy row)."""
        out: dict[str, Any] = {k: v for k, v in self.to_row().items()
                               if v not in (None, []) and k != "statement"}  # fmt: skip
        if self.statement is not None:
            out["signed"] = True
        return out


NO_AXES = Axes()
#: Most releases rotate-after-N may wait for.
MAX_ROTATE_AFTER = 1_000_000


def _invalid(message: str, hint: str = "") -> Invalid:
    return Invalid("invalid_policy", message, hint)


def check_axes(
    *, hours: Sequence[str], max_reads: str | None, cosigner: str | None,
    destroy_at: int | None, rotate_after: int | None, now: int, statement: str | None = None,
) -> Axes:  # fmt: skip
    """The axes as given to the API, checked strictly and in canonical form."""
    try:
        windows = policy_rules.parse_windows(hours)
        rate = policy_rules.parse_rate(max_reads) if max_reads is not None else None
    except ValueError as exc:
        raise _invalid(str(exc), "See `sealbox approver policy --help` for the syntax.") from None
    if destroy_at is not None and destroy_at <= now:
        raise _invalid(
            "the destroy date must lie in the future",
            "Give a later --destroy-at (the items are destroyed once it passes).",
        )
    if rotate_after is not None and not 1 <= rotate_after <= MAX_ROTATE_AFTER:
        raise _invalid(f"rotate-after must be between 1 and {MAX_ROTATE_AFTER} releases")
    return Axes(
        hours=tuple(w.text() for w in windows), max_reads=rate.text() if rate else None,
        cosigner=cosigner, destroy_at=destroy_at, rotate_after=rotate_after, statement=statement,
    )  # fmt: skip


def check_cosigner(axes: Axes, approvers: Sequence[str], threshold: int) -> None:
    """A co-signer is one of the policy's approvers, with ``threshold`` others besides it."""
    if axes.cosigner is None:
        return
    if axes.cosigner not in approvers:
        raise _invalid("the co-signer must be one of the policy's approvers",
                       "Add it to --approvers (it must hold a share to release).")  # fmt: skip
    if len(approvers) - 1 < threshold:
        raise _invalid(
            "a co-signer releases on top of the threshold: the policy needs at least "
            f"{threshold} other approver(s) besides it",
            "Add approvers or lower the threshold.",
        )  # fmt: skip


def check_statement(
    axes: Axes, directory: Directory, *, caller: Principal, pattern: str,
    approvers: Sequence[str], threshold: int, expiry_seconds: int, max_cache_seconds: int,
    store_needs_approval: bool, cidrs: Sequence[str], now: int,
) -> None:  # fmt: skip
    """A signed policy (if given) is the calling approver's, for this vault, and says exactly
    what the request sets (networks compared in canonical form); refused (400) if not."""
    if axes.statement is None:
        return
    if caller.role != "approver" or jws.read_header(axes.statement).kid != caller.id:
        raise _invalid("a signed policy is uploaded by the approver that signed it")
    try:
        signed = policies.verify_policy(axes.statement, directory)
    except SealboxError as exc:
        raise Invalid("invalid_policy_statement", f"the signed policy does not verify: "
                      f"{exc.message}") from None  # fmt: skip
    if abs(signed.at - now) > CLOCK_SKEW:
        raise Invalid("invalid_policy_statement", "the signed policy is not fresh",
                      "Sign it again (check this device's clock).")  # fmt: skip
    try:
        networks = tuple(sorted(str(n) for n in parse_networks(signed.cidrs)))
    except ValueError:
        networks = ()  # then it cannot equal the (valid) networks set
    said = (signed.pattern, signed.approvers, signed.threshold, signed.expiry_seconds,
            signed.max_cache_seconds, signed.store_needs_approval, networks, signed.hours,
            signed.max_reads, signed.cosigner, signed.destroy_at, signed.rotate_after)  # fmt: skip
    asked = (pattern, tuple(approvers), threshold, expiry_seconds, max_cache_seconds,
             store_needs_approval, tuple(sorted(cidrs)), axes.hours, axes.max_reads, axes.cosigner,
             axes.destroy_at, axes.rotate_after)  # fmt: skip
    if said != asked:
        raise Invalid(
            "policy_statement_mismatch", "the signed policy says something else than the "
            "policy being set", "Sign exactly the policy you set.",
        )  # fmt: skip


def applying(
    rows: Sequence[Mapping[str, Any]], directory: Directory, paths: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """path -> the policy that applies to it, as approvers are shown it next to a request.

    ``statement`` is the approver-signed policy if it was set with one (approvers verify it
    and check its windows and destroy date themselves); everything else is the relay's word.
    """
    out = {}
    for path in sorted(set(paths)):
        p = policy_for(path, rows, directory)
        out[path] = {
            "pattern": p.pattern, "approvers": list(p.approvers), "threshold": p.threshold,
            "expiry_seconds": p.expiry_seconds, "max_cache_seconds": p.max_cache_seconds,
            "store_needs_approval": p.store_needs_approval, "cidrs": list(p.cidrs),
            **Axes.from_policy(p).to_json(),
            # Every signed statement whose pattern matches, most specific first: approvers
            # pick the one that applies themselves (the relay's word is not needed for it).
            "statements": [
                str(r["statement"])
                for r in sorted(rows, key=lambda r: policies.specificity(str(r["pattern"])),
                                reverse=True)
                if r.get("statement") and scopes.matches(path, str(r["pattern"]))
            ],
        }  # fmt: skip
    return out


async def applying_to(relay: Relay, vault: str, rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """:func:`applying` for the items of these request rows."""
    paths = [
        p for row in rows
        for p in ([e.path for e in row.access.items] if row.kind == "access"
                  else [row.store.path])
    ]  # fmt: skip
    if not paths:
        return {}
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        found = await client_store.policy_rows(conn, vault)
    return applying(found, directory, paths)


async def refuse_destroyed_path(relay: Relay, vault: str, path: str, principal: Principal) -> None:
    """A lookup of a path whose item was destroyed is refused (410), not answered "none".

    Said only to a caller that may name the path (an approver, or a client granted it).
    """
    async with relay.read() as conn:
        if principal.role == "client":
            allowed = await client_store.access(conn, vault, principal.id)
            if not allowed.allows(path):
                return
        found = await store.destroyed_at(conn, vault, path)
    if found is not None:
        raise destroyed_error(path, found)
