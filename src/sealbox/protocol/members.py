"""Members: people with signed roles in projects, and what each role lets them ask.

A member's certificate carries, for every project it is a member of, one or
more ``role:<project>:<role>`` scopes and the item scope ``items:<project>/*/*``
(a member is a member of the whole project, and of no other).  Its ``read`` and
``write`` scopes follow from its roles (:data:`ROLE_SCOPES`):

* ``viewer``: no ``read``, no ``write`` — item metadata and history only;
* ``writer``: ``read`` and ``write`` — may ask to read and ask to store;
* ``machine-admin``, ``policy-admin``: ``read`` — may ask to read.

Asking is all any role gives: a value is only ever released by approvers, so no
role can read one by itself.  Approvers compute a member's scopes with
:func:`member_scopes` when they sign (an invite, a role change); the relay holds
each request to the roles of the project it concerns (:func:`may_ask`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sealbox.protocol import scopes as sc

__all__ = [
    "ROLE_SCOPES",
    "may_ask",
    "member_scopes",
    "policy_project",
    "project_of",
    "role_scope",
]

#: The ``read``/``write`` scopes each role brings into a member's certificate.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "viewer": (),
    "writer": (sc.READ, sc.WRITE),
    "machine-admin": (sc.READ,),
    "policy-admin": (sc.READ,),
}


def role_scope(project: str, role: str) -> str:
    """The scope naming ``role`` in ``project`` (checked: an unknown role raises ValueError)."""
    return sc.check_scope(f"{sc.ROLE}{project}:{role}")


def member_scopes(roles: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """A member's whole set of scopes, from its roles (project -> roles), sorted.

    Empty roles give no scopes at all: a certificate without a role is no member's.
    """
    out: set[str] = set()
    for project, held in roles.items():
        for role in held:
            out.add(role_scope(project, role))
            out.update(ROLE_SCOPES[role])
        if held:
            out.add(sc.check_scope(f"{sc.ITEMS}{project}/*/*"))
    return tuple(sorted(out))


def project_of(path: str) -> str:
    """The project of an item path (its first segment)."""
    return path.split("/", 1)[0]


def policy_project(pattern: str) -> str | None:
    """The one project a policy pattern lies in, or ``None`` if it could reach several.

    A pattern lies in a project when its first segment is exactly the project's
    name, without a wildcard: ``shop/*/*`` lies in ``shop``; ``sh*/*/*`` or
    ``*/prod/*`` lie in no single project, so no project's policy admin may set them.
    """
    first = sc.check_pattern(pattern).split("/", 1)[0]
    return None if "*" in first or "?" in first else first


def may_ask(held: Iterable[str], scope: str) -> bool:
    """Whether any of the roles ``held`` in a project lets a member ask with ``scope``."""
    return any(scope in ROLE_SCOPES.get(role, ()) for role in held)
