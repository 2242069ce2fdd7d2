"""Which clients may ask for which items, and which approvers must agree: pure functions.

Grants and policies are keyed by an item-path *pattern*, the grammar certificates'
``items:`` scopes use too (:mod:`sealbox.protocol.scopes`).

These functions do no I/O; the services load the rows and pass them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sealbox.protocol.directory import Directory
from sealbox.protocol.policies import specificity
from sealbox.protocol.scopes import PATTERN_MAX, check_pattern, granted, matches, within

__all__ = [
    "DEFAULT_EXPIRY_SECONDS",
    "DEFAULT_MAX_CACHE_SECONDS",
    "MAX_EXPIRY_SECONDS",
    "MIN_EXPIRY_SECONDS",
    "PATTERN_MAX",
    "ClientAccess",
    "Policy",
    "check_pattern",
    "granted",
    "matches",
    "policy_for",
]

DEFAULT_EXPIRY_SECONDS = 300
MIN_EXPIRY_SECONDS = 10
MAX_EXPIRY_SECONDS = 3600
DEFAULT_MAX_CACHE_SECONDS = 0


@dataclass(frozen=True)
class ClientAccess:
    """The item paths a client may name."""

    grants: tuple[str, ...]
    """Patterns an approver granted (kept by the relay)."""
    limits: tuple[tuple[str, ...], ...]
    """The limits of the client's signed scopes and enrollment (empty: none)."""
    exists: bool = True
    projects: frozenset[str] = frozenset()
    """Projects the client is a member of (any signed role): each works as a grant of the
    whole project."""

    def allows(self, path: str) -> bool:
        """Granted (or a member of the path's project), and within the signed limits: both,
        always."""
        member = path.split("/", 1)[0] in self.projects
        return self.exists and (member or granted(path, self.grants)) and within(path, self.limits)


@dataclass(frozen=True)
class Policy:
    """What releasing an item needs."""

    approvers: tuple[str, ...]
    """Approver ids whose answers count, all current directory members."""
    threshold: int
    """How many of them must release."""
    expiry_seconds: int
    """How long a request waits for answers before it expires."""
    max_cache_seconds: int
    """How long a client may keep a released value (0: not at all)."""
    store_needs_approval: bool
    """Whether storing a new version needs approval too."""
    cidrs: tuple[str, ...] = ()
    """Networks a client's access or store request must come from (empty: any)."""
    pattern: str | None = None
    """The pattern of the policy row that applies (None: the default policy)."""
    hours: tuple[str, ...] = ()
    """Time windows (:mod:`sealbox.protocol.policy_rules`) requests must fall in (empty: any)."""
    max_reads: str | None = None
    """Read-rate cap per item, ``N/PERIOD`` (None: none)."""
    cosigner: str | None = None
    """An approver that must release on top of the threshold (None: none)."""
    destroy_at: int | None = None
    """When the items under the policy are destroyed (None: never)."""
    rotate_after: int | None = None
    """Releases of an item's latest version after which it needs rotation (None: never)."""
    statement: str | None = None
    """The approver-signed ``sealbox.policy.v1`` it was set with (None: the relay's word)."""


def _specificity(pattern: str) -> tuple[int, int, str]:
    # Longest pattern wins; on equal length, the one with fewer wildcards is the
    # more specific; the pattern text breaks the last tie so the choice never
    # depends on row order.
    return specificity(pattern)


def policy_for(path: str, rows: Sequence[Mapping[str, Any]], directory: Directory) -> Policy:
    """The policy for item ``path``: the most specific matching row, else the default.

    ``rows`` are policy rows (``pattern``, ``approvers``, ``threshold``,
    ``expiry_seconds``, ``max_cache_seconds``, ``store_needs_approval``, ``cidrs``).  The
    default is every current approver, threshold 1.

    Approvers removed from the directory since the policy was written are dropped,
    but the threshold is kept: a policy that can no longer be met blocks releases
    until an approver updates it, instead of silently needing fewer people.
    """
    candidates = [row for row in rows if matches(path, str(row["pattern"]))]
    if not candidates:
        return Policy(
            approvers=tuple(sorted(directory.approvers)),
            threshold=1,
            expiry_seconds=DEFAULT_EXPIRY_SECONDS,
            max_cache_seconds=DEFAULT_MAX_CACHE_SECONDS,
            store_needs_approval=True,
        )
    row = max(candidates, key=lambda r: _specificity(str(r["pattern"])))
    approvers = tuple(a for a in row["approvers"] if a in directory.approvers)
    return Policy(
        approvers=approvers,
        threshold=int(row["threshold"]),
        expiry_seconds=int(row["expiry_seconds"]),
        max_cache_seconds=int(row["max_cache_seconds"]),
        store_needs_approval=bool(row["store_needs_approval"]),
        cidrs=tuple(str(c) for c in row.get("cidrs") or ()),
        pattern=str(row["pattern"]),
        hours=tuple(str(h) for h in row.get("hours") or ()),
        max_reads=row.get("max_reads"),
        cosigner=row.get("cosigner"),
        destroy_at=row.get("destroy_at"),
        rotate_after=row.get("rotate_after"),
        statement=row.get("statement"),
    )
