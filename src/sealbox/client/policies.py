"""A member's management-plane calls: its projects' policies and machines' bootstrap tokens.

A policy admin of a project (``role:<project>:policy-admin`` in its signed
certificate) may set and remove the policies whose pattern lies in the project;
every member lists its projects' policies.  A machine admin makes bootstrap
tokens for machines that ask only inside the project (an approver still
certifies each machine).  The relay enforces this; nothing
here widens what a member may do, and no policy lets anyone but an approver
release a value.  Sans-IO flows, driven by :class:`sealbox.Client`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sealbox._relay.calls import Call, Flow, expect_object
from sealbox._relay.text import displayable
from sealbox.protocol import scopes

__all__ = [
    "PolicyAxes",
    "PolicyInfo",
    "bootstrap_token_flow",
    "list_flow",
    "remove_flow",
    "set_flow",
]


@dataclass(frozen=True)
class PolicyAxes:
    """A policy's further axes (see :mod:`sealbox.protocol.policy_rules` for the syntax)."""

    hours: tuple[str, ...] = ()
    """Time windows, e.g. ``mon-fri 09:00-18:00 Europe/Berlin`` (empty: any time)."""
    max_reads: str | None = None
    """Read-rate cap per item, ``N/PERIOD`` such as ``10/h``."""
    cosigner: str | None = None
    """An approver (one of the policy's) that must release on top of the threshold."""
    destroy_at: int | None = None
    """Unix time after which the relay destroys the items under the policy."""
    rotate_after: int | None = None
    """Releases of an item's latest version after which it is marked as due for rotation."""
    cidrs: tuple[str, ...] = ()
    """Networks access and store requests must come from (empty: any)."""

    def to_json(self) -> dict[str, Any]:
        return {"hours": list(self.hours), "max_reads": self.max_reads,
                "cosigner": self.cosigner, "destroy_at": self.destroy_at,
                "rotate_after": self.rotate_after, "cidrs": list(self.cidrs)}  # fmt: skip


@dataclass(frozen=True)
class PolicyInfo:
    pattern: str
    approvers: tuple[str, ...]
    threshold: int
    expiry_seconds: int
    max_cache_seconds: int
    axes: PolicyAxes = PolicyAxes()
    """As the relay reports them (a member's policy is not signed: the relay's word)."""


def _optional(entry: dict[str, Any], key: str, kind: type) -> Any:
    value = entry.get(key)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def _axes(entry: dict[str, Any]) -> PolicyAxes:
    return PolicyAxes(
        hours=tuple(displayable(h, 100) for h in entry.get("hours") or ()),
        max_reads=_optional(entry, "max_reads", str), cosigner=_optional(entry, "cosigner", str),
        destroy_at=_optional(entry, "destroy_at", int),
        rotate_after=_optional(entry, "rotate_after", int),
        cidrs=tuple(displayable(c, 64) for c in entry.get("cidrs") or ()),
    )  # fmt: skip


def _policy(entry: Any) -> PolicyInfo:
    if not isinstance(entry, dict):
        raise TypeError("not an object")
    return PolicyInfo(
        pattern=scopes.check_pattern(entry.get("pattern")),
        approvers=tuple(displayable(a, 40) for a in entry.get("approvers") or ()),
        threshold=int(entry.get("threshold") or 0),
        expiry_seconds=int(entry.get("expiry_seconds") or 0),
        max_cache_seconds=int(entry.get("max_cache_seconds") or 0),
        axes=_axes(entry),
    )


def list_flow(base: str) -> Flow:
    """The policies this client may see (a member: those in its projects)."""
    body = expect_object((yield Call("GET", f"{base}/policies")), "listing policies")
    return [_policy(entry) for entry in body.get("policies", [])]


def set_flow(
    base: str, pattern: str, *, approvers: Sequence[str], threshold: int, expiry_seconds: int,
    max_cache_seconds: int, axes: PolicyAxes | None = None,
) -> Flow:  # fmt: skip
    """Create or replace the policy for ``pattern`` (a policy admin of its project)."""
    body = {
        "pattern": scopes.check_pattern(pattern), "approvers": list(approvers),
        "threshold": threshold, "expiry_seconds": expiry_seconds,
        "max_cache_seconds": max_cache_seconds, "store_needs_approval": True,
        **(axes or PolicyAxes()).to_json(),
    }  # fmt: skip
    reply = yield Call("PUT", f"{base}/policies", json=body)
    return _policy(expect_object(reply, "setting the policy"))


def remove_flow(base: str, pattern: str) -> Flow:
    """Remove the policy for exactly ``pattern`` (a policy admin of its project)."""
    path = f"{base}/policies?pattern={quote(scopes.check_pattern(pattern), safe='')}"
    reply = yield Call("DELETE", path)
    if reply.status != 204:
        expect_object(reply, "removing the policy", status=204)
    return None


def bootstrap_token_flow(
    base: str, *, name: str, grants: Sequence[str], scopes: Sequence[str]
) -> Flow:
    """Make a one-time bootstrap token (a machine admin of every project ``grants`` name)."""
    body = {"name": name, "grants": list(grants), "scopes": list(scopes)}
    reply = yield Call("POST", f"{base}/bootstrap-tokens", json=body)
    return expect_object(reply, "making a bootstrap token", status=201)
