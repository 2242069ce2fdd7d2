"""Members' roles: the role scopes of each client's stored certificate, one row per role.

Written only beside a certificate that verified (:func:`replace`, in the same
transaction as the certificate), and read on every decision about a client
and an item path, so the relay never has to parse a stored certificate to
know what a member may see.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import member_roles

__all__ = ["all_roles", "replace", "roles"]

_ROLES = select(member_roles.c.project, member_roles.c.role).where(
    member_roles.c.vault_id == bindparam("vault"), member_roles.c.client_id == bindparam("client")
)


async def roles(conn: AsyncConnection, vault: str, client_id: str) -> dict[str, frozenset[str]]:
    """Project -> the client's roles in it (empty: not a member)."""
    out: dict[str, set[str]] = {}
    for project, role in await conn.execute(_ROLES, {"vault": vault, "client": client_id}):
        out.setdefault(project, set()).add(role)
    return {project: frozenset(held) for project, held in out.items()}


async def all_roles(conn: AsyncConnection, vault: str) -> dict[str, dict[str, frozenset[str]]]:
    """Client id -> project -> roles, for every member of the vault."""
    out: dict[str, dict[str, set[str]]] = {}
    rows = await conn.execute(
        select(member_roles.c.client_id, member_roles.c.project, member_roles.c.role).where(
            member_roles.c.vault_id == vault
        )
    )
    for client_id, project, role in rows:
        out.setdefault(client_id, {}).setdefault(project, set()).add(role)
    return {c: {p: frozenset(r) for p, r in held.items()} for c, held in out.items()}


async def replace(
    conn: AsyncConnection, vault: str, client_id: str, held: Mapping[str, frozenset[str]]
) -> None:
    """Make the client's roles exactly ``held`` (from its newly stored certificate)."""
    await conn.execute(
        delete(member_roles).where(
            member_roles.c.vault_id == vault, member_roles.c.client_id == client_id
        )
    )
    values = [
        {"vault_id": vault, "client_id": client_id, "project": project, "role": role}
        for project, roles_in in sorted(held.items())
        for role in sorted(roles_in)
    ]
    if values:
        await conn.execute(member_roles.insert(), values)
