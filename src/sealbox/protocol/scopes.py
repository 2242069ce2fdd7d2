"""What a client certificate's scopes allow: pure functions, no I/O.

A certificate's ``scopes`` are a set of strings of four forms:

* ``read``: the client may make access requests;
* ``write``: the client may make store requests;
* ``items:<pattern>``: the client may name only item paths matching one of its
  ``items:`` patterns (a certificate without any may name every path its grants
  cover).  This is *stage isolation*: a machine certified for ``shop/dev/*``
  can never ask for ``shop/prod/db``, whatever grants the relay holds, because
  the relay and every approver check the signed scope;
* ``role:<project>:<role>``: a person's role in a project's management plane
  (:data:`ROLES`).  No role reads a value: reading is always a release.

An enrollment (``sealbox.enrollment.v1``) bounds the machines it certifies the
same way through its ``projects`` and ``items``.

Item-path patterns are exactly three segments (``project/environment/item``),
each a plain segment or a glob of ``[A-Za-z0-9._*?-]``.  Matching is segment by
segment, so ``*`` never crosses a ``/``: ``app/*/db`` cannot match
``app/prod/x/db``, and a pattern can never reach into another project by a
clever wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

__all__ = [
    "ITEMS",
    "PATTERN_MAX",
    "READ",
    "ROLE",
    "ROLES",
    "WRITE",
    "check_pattern",
    "check_scope",
    "granted",
    "item_patterns",
    "limits",
    "matches",
    "roles",
    "within",
]

READ = "read"
WRITE = "write"
ITEMS = "items:"
ROLE = "role:"
#: What a member may do in a project, beyond reading and storing through approvals:
#: ``viewer`` sees metadata and history; ``writer`` may make store requests;
#: ``machine-admin`` makes bootstrap tokens and provisions machines for the project;
#: ``policy-admin`` sets the project's release policies.
ROLES = ("machine-admin", "policy-admin", "viewer", "writer")

PATTERN_MAX = 200
SCOPE_MAX = 256
# One pattern segment: an item-path segment (starts with a letter or digit,
# then letters, digits, ``.``, ``_``, ``-``) where either glob wildcard may
# stand for characters.  Character classes (``[...]``) are refused: they let a
# pattern express ranges nobody reviewing a policy reads correctly.
_SEGMENT = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,63}")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_pattern(pattern: object) -> str:
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
    # "App/prod/db" must not match a scope for "app/prod/db".
    return all(fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True))


def granted(path: str, patterns: Iterable[str]) -> bool:
    """Whether any of ``patterns`` covers item ``path``."""
    return any(matches(path, pattern) for pattern in patterns)


def check_scope(scope: str) -> str:
    """Return ``scope`` if it has one of the four forms, else raise ValueError."""
    if scope in (READ, WRITE):
        return scope
    if scope.startswith(ITEMS):
        check_pattern(scope[len(ITEMS) :])
        return scope
    if scope.startswith(ROLE):
        project, _, role = scope[len(ROLE) :].partition(":")
        if _PROJECT.fullmatch(project) and role in ROLES:
            return scope
        raise ValueError(f"scope: a role is role:PROJECT:ROLE with ROLE one of {', '.join(ROLES)}")
    raise ValueError("scope: expected read, write, items:PATTERN or role:PROJECT:ROLE")


def item_patterns(scopes: Iterable[str]) -> tuple[str, ...]:
    """The ``items:`` patterns among ``scopes`` (empty: no item limit of its own)."""
    return tuple(s[len(ITEMS) :] for s in scopes if s.startswith(ITEMS))


def roles(scopes: Iterable[str]) -> dict[str, frozenset[str]]:
    """Project → the roles ``scopes`` give in it."""
    out: dict[str, set[str]] = {}
    for scope in scopes:
        if scope.startswith(ROLE):
            project, _, role = scope[len(ROLE) :].partition(":")
            out.setdefault(project, set()).add(role)
    return {project: frozenset(found) for project, found in out.items()}


def limits(
    scopes: Sequence[str], *, projects: Sequence[str] = (), items: Sequence[str] = ()
) -> tuple[tuple[str, ...], ...]:
    """The item-path limits of a certificate (and of the enrollment that made it).

    A conjunction of disjunctions: a path is allowed if, for every tuple, it
    matches one of the tuple's patterns.  Empty: no limit.  An enrollment's
    ``projects`` become ``project/*/*`` patterns.
    """
    out = []
    own = item_patterns(scopes)
    if own:
        out.append(own)
    if projects:
        out.append(tuple(f"{project}/*/*" for project in projects))
    if items:
        out.append(tuple(items))
    return tuple(out)


def within(path: str, bounds: Sequence[Sequence[str]]) -> bool:
    """Whether item ``path`` is inside every one of ``bounds`` (see :func:`limits`)."""
    return all(granted(path, patterns) for patterns in bounds)
