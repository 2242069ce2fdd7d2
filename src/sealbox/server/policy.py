"""Which clients may ask for which items, and which approvers must agree: pure functions.

Grants and policies are keyed by an item-path *pattern*: exactly three segments
(``project/environment/item``), each either a plain segment or a glob of
``[A-Za-z0-9._*?-]``.  Matching is segment by segment, so ``*`` never crosses a
``/``: ``app/*/db`` cannot match ``app/prod/x/db`` by accident, and a pattern can
never reach into another project by a clever wildcard.

These functions do no I/O; the services load the rows and pass them in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sealbox.protocol.directory import Directory

__all__ = [
    "DEFAULT_EXPIRY_SECONDS",
    "DEFAULT_MAX_CACHE_SECONDS",
    "MAX_EXPIRY_SECONDS",
    "MIN_EXPIRY_SECONDS",
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

# One pattern segment: an item-path segment (starts with a letter or digit,
# then letters, digits, ``.``, ``_``, ``-``) where either glob wildcard may
# stand for characters.  Character classes (``[...]``) are refused: they let a
# pattern express ranges nobody reviewing a policy reads correctly.  So are
# segments like ``..``, which no item path can have.
_SEGMENT = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,63}")
PATTERN_MAX = 200


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


def check_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid item-path pattern, else raise ValueError."""
    if not isinstance(pattern, str) or len(pattern) > PATTERN_MAX:
        raise ValueError("pattern: expected text of at most 200 characters")
    parts = pattern.split("/")
    if len(parts) != 3:
        raise ValueError("pattern: expected project/environment/item (three segments)")
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise ValueError("pattern: segments use only A-Z a-z 0-9 . _ - * ?")
    return pattern


def matches(path: str, pattern: str) -> bool:
    """Whether item ``path`` matches ``pattern``, segment by segment, case-sensitively."""
    path_parts = path.split("/")
    pattern_parts = pattern.split("/")
    if len(path_parts) != len(pattern_parts):
        return False
    # fnmatchcase, not fnmatch: fnmatch folds case on some platforms, and
    # "App/prod/db" must not match a grant for "app/prod/db".
    return all(fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True))


def granted(path: str, patterns: Iterable[str]) -> bool:
    """Whether any of a client's grant ``patterns`` covers item ``path``."""
    return any(matches(path, pattern) for pattern in patterns)


def _specificity(pattern: str) -> tuple[int, int, str]:
    # Longest pattern wins; on equal length, the one with fewer wildcards is the
    # more specific; the pattern text breaks the last tie so the choice never
    # depends on row order.
    wildcards = pattern.count("*") + pattern.count("?")
    return (len(pattern), -wildcards, pattern)


def policy_for(path: str, rows: Sequence[Mapping[str, Any]], directory: Directory) -> Policy:
    """The policy for item ``path``: the most specific matching row, else the default.

    ``rows`` are policy rows (``pattern``, ``approvers``, ``threshold``,
    ``expiry_seconds``, ``max_cache_seconds``, ``store_needs_approval``).  The
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
    )
