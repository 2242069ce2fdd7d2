"""Teams: invites, members' roles on the management plane, and role changes.

A member is a person whose client certificate carries ``role:<project>:<role>``
scopes (:mod:`sealbox.protocol.members`).  Roles are signed by an approver,
never by the relay: an invite only says which role the approver who made it
offers, and the approver who approves the login must sign exactly that role.
The relay keeps each client's roles beside its verified certificate
(:mod:`sealbox.server.store.members`) and holds every request to them:

* any role (``viewer`` and up) lists the project's items and their history;
* asking to read needs ``writer``, ``machine-admin`` or ``policy-admin`` in the
  item's project, asking to store needs ``writer`` (:func:`require_ask`);
* setting the project's policies needs ``policy-admin``, making bootstrap tokens,
  enrollments and machines for it ``machine-admin`` (:func:`require_role`).

No role reads a value: reading is an access request that approvers release.
Every refusal is ``role_required`` (403), audited as every 403 of an
authenticated caller is (``request.refused``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.errors import CertificateInvalid
from sealbox.protocol import members as pm
from sealbox.protocol import scopes
from sealbox.protocol.certificates import limits_of, verify_certificate
from sealbox.protocol.statements import ClientCertificate
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Forbidden, Invalid, NotFound
from sealbox.server.relay import Relay
from sealbox.server.services.admin import not_the_issuer
from sealbox.server.services.caller import certified, load_caller
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import invites as invite_store
from sealbox.server.store import members as member_store
from sealbox.server.store.invites import InviteRow

__all__ = [
    "INVITE_DEFAULT_SECONDS",
    "INVITE_MAX_SECONDS",
    "INVITE_MIN_SECONDS",
    "INVITE_PREFIX",
    "Invite",
    "Member",
    "check_invited",
    "create_invite",
    "in_projects",
    "list_invites",
    "list_members",
    "projects_of",
    "recertify",
    "remove_invite",
    "require_ask",
    "require_policy_admin",
    "require_role",
    "require_role_for",
    "role_required",
    "take_invite",
]

INVITE_PREFIX = "sbx_inv_"
INVITE_DEFAULT_SECONDS = 86400
INVITE_MIN_SECONDS = 60
INVITE_MAX_SECONDS = 7 * 86400
# An invite's code is a bearer secret (256 random bits); anything longer or of
# another shape is refused before it is hashed.
_INVITE_CODE = re.compile(re.escape(INVITE_PREFIX) + r"[A-Za-z0-9_-]{43}")
_INVITE_ID = re.compile(r"inv_[0-9a-f]{16}")
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --- what the operations return ----------------------------------------------------------------


@dataclass(frozen=True)
class Invite:
    """An invite as approvers see it; ``code`` only in the answer that made it."""

    id: str
    project: str
    role: str
    issuer: str
    created_at: int
    expires_at: int
    used_at: int | None
    used_by: str | None
    code: str | None = None

    def __repr__(self) -> str:
        # Keep the code out of tracebacks and debug logs.
        return f"Invite(id={self.id!r}, project={self.project!r}, role={self.role!r})"


@dataclass(frozen=True)
class Member:
    """A client with roles, with its certificate (approvers verify the roles themselves)."""

    client_id: str
    name: str
    kind: str
    disabled: bool
    roles: dict[str, list[str]]
    """Project -> roles, as the relay keeps them from the verified certificate."""
    certificate: str


def _invite(row: InviteRow, code: str | None = None) -> Invite:
    return Invite(
        row.id, row.project, row.role, row.issuer, row.created_at, row.expires_at, row.used_at,
        row.used_by, code,
    )  # fmt: skip


# --- refusals ----------------------------------------------------------------------------------


def role_required(project: str, role: str) -> Forbidden:
    return Forbidden(
        "role_required", f"this needs the {role} role in project {project}",
        f"Ask an approver: `sealbox member set-role CLIENT --project {project} --role "
        f"{role.split(' ')[0].rstrip(',')}`.",
    )  # fmt: skip


def _holds(held: frozenset[str], role: str) -> bool:
    # Every role includes a viewer's rights (metadata and history of the project).
    return bool(held) if role == "viewer" else role in held


async def _certificate_of(
    relay: Relay, principal: Principal, now: int, source_ip: str | None
) -> ClientCertificate:
    async with relay.read() as conn:
        caller = await load_caller(relay, conn, principal.vault, principal.id, policies=False)
    return certified(caller, now, source_ip)


async def require_role(
    relay: Relay, principal: Principal, project: str, role: str, *, now: int,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Let ``principal`` act on ``project``'s management plane as ``role``, or refuse.

    Approvers may do everything.  A client must hold ``role`` in ``project`` in its
    certificate, verified now (any role counts as ``viewer``).  The refusal is
    audited by the HTTP layer, as every 403 of an authenticated caller is
    (``request.refused``).
    """
    if role not in scopes.ROLES:
        raise ValueError(f"unknown role {role!r}")
    if principal.role == "approver":
        return
    cert = await _certificate_of(relay, principal, now, source_ip)
    if _holds(scopes.roles(cert.scopes).get(project, frozenset()), role):
        return
    raise role_required(project, role)


async def require_role_for(
    relay: Relay, principal: Principal, patterns: Sequence[str], role: str, *, now: int,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Let ``principal`` act as ``role`` on what item ``patterns`` name, or refuse.

    Approvers may do everything.  For a client, each pattern must lie in one
    project (its first segment is exactly the project, no wildcard there) where
    it holds ``role``: a policy for ``shop/*/*`` needs ``policy-admin`` of shop, a
    bootstrap token for a machine that asks for ``shop/prod/*`` needs
    ``machine-admin`` of shop, and ``*/prod/*`` needs an approver.
    """
    if principal.role == "approver":
        return
    projects = set()
    for pattern in patterns:
        try:
            project = pm.policy_project(pattern)
        except ValueError as exc:
            raise Invalid("invalid_pattern", str(exc)) from None
        if project is None:
            raise Forbidden(
                "role_required", f"{pattern} reaches several projects (a wildcard in its first "
                "segment): only an approver may name it",
                "Start the pattern with your project's exact name, e.g. shop/*/*.",
            )  # fmt: skip
        projects.add(project)
    for project in sorted(projects):
        await require_role(relay, principal, project, role, now=now, source_ip=source_ip)


async def require_policy_admin(
    relay: Relay, principal: Principal, pattern: str, *, now: int, source_ip: str | None
) -> None:
    """Let ``principal`` set or remove the policy for ``pattern``, or refuse.

    A client must be policy admin of the one project the pattern lies in: its
    first segment is exactly the project, no wildcard there.
    """
    await require_role_for(relay, principal, (pattern,), "policy-admin", now=now,
                           source_ip=source_ip)  # fmt: skip


def require_ask(held: Mapping[str, frozenset[str]], paths: Sequence[str], scope: str) -> None:
    """Hold a member's access (``read``) or store (``write``) request to its roles.

    ``held`` is the client's roles (project -> roles): from its certificate
    verified for this request, or as stored beside it.  A client without any
    role is no member: its grants and scopes decide, as before teams.  A member
    may ask (and take a release) only in projects where one of its roles allows
    ``scope``, whatever else its certificate or grants say.
    """
    if not held:
        return
    for path in paths:
        project = pm.project_of(path)
        if pm.may_ask(held.get(project, frozenset()), scope):
            continue
        wanted = "writer" if scope == scopes.WRITE else "writer, machine-admin or policy-admin"
        raise role_required(project, wanted)


async def projects_of(relay: Relay, principal: Principal) -> frozenset[str]:
    """The projects a client is a member of (any role); empty for an approver or a non-member."""
    if principal.role != "client":
        return frozenset()
    async with relay.read() as conn:
        return frozenset(await member_store.roles(conn, principal.vault, principal.id))


def in_projects(pattern: str, projects: frozenset[str]) -> bool:
    """Whether a policy pattern lies in one of ``projects`` (see :func:`require_policy_admin`)."""
    try:
        return pm.policy_project(pattern) in projects
    except ValueError:
        return False


# --- invites -----------------------------------------------------------------------------------


def _check_role(project: str, role: str) -> None:
    if not _PROJECT.fullmatch(project):
        raise Invalid("invalid_project", "a project is 1-64 of A-Z a-z 0-9 . _ - (starting with "
                      "a letter or digit)")  # fmt: skip
    if role not in scopes.ROLES:
        raise Invalid("invalid_role", f"a role is one of {', '.join(scopes.ROLES)}")


async def create_invite(
    relay: Relay, now: int, *, vault: str, project: str, role: str, seconds: int,
    approver: Principal, source_ip: str | None,
) -> Invite:  # fmt: skip
    """Make a one-time invite to ``project`` as ``role``; the code is returned once, here."""
    _check_role(project, role)
    if not INVITE_MIN_SECONDS <= seconds <= INVITE_MAX_SECONDS:
        raise Invalid("invalid_expiry", f"an invite lasts {INVITE_MIN_SECONDS} seconds to "
                      f"{INVITE_MAX_SECONDS // 86400} days")  # fmt: skip
    code = sx.new_token(INVITE_PREFIX)
    invite_id = "inv_" + secrets.token_hex(8)
    async with relay.tx() as tx:
        await relay.directories.load(tx.conn, vault)
        await invite_store.purge_expired(tx.conn, vault, before=now - 86400)
        await invite_store.insert(
            tx.conn, vault=vault, invite_id=invite_id, code=code, project=project, role=role,
            issuer=approver.id, now=now, expires_at=now + seconds,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="invite.created",
            source_ip=source_ip,
            detail={"invite": invite_id, "project": project, "role": role,
                    "expires_at": now + seconds},
        )  # fmt: skip
    return Invite(invite_id, project, role, approver.id, now, now + seconds, None, None, code)


async def list_invites(relay: Relay, now: int, *, vault: str) -> list[Invite]:
    """The vault's invites (never their codes), oldest first."""
    async with relay.read() as conn:
        rows = await invite_store.list_all(conn, vault)
    return [_invite(row) for row in rows]


async def remove_invite(
    relay: Relay, now: int, *, vault: str, invite_id: str, approver: Principal,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Withdraw an invite: its code is refused from now on."""
    if not _INVITE_ID.fullmatch(invite_id):
        raise NotFound("no_such_invite", "this vault has no such invite")
    async with relay.tx() as tx:
        if not await invite_store.remove(tx.conn, vault, invite_id):
            raise NotFound("no_such_invite", "this vault has no such invite")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="invite.removed",
            source_ip=source_ip, detail={"invite": invite_id},
        )  # fmt: skip


async def take_invite(
    conn: AsyncConnection, *, vault: str, code: str, client_id: str, now: int,
    source_ip: str | None,
) -> tuple[InviteRow | None, Invalid | None]:  # fmt: skip
    """Use an invite for the login of ``client_id``, in the login's transaction.

    Returns the invite, or the refusal to answer with (after the transaction
    commits, so its audit event is kept): unknown, expired, or already used.
    An invite is used by the first login that presents it, whatever becomes of
    that login: a code seen by two people starts one login only.
    """
    row = await invite_store.find(conn, vault, code) if _INVITE_CODE.fullmatch(code) else None
    if row is None:
        refusal = Invalid("invalid_invite", "this invite code is unknown",
                          "Copy the code exactly as your approver gave it.")  # fmt: skip
    elif row.expires_at <= now:
        refusal = Invalid("invite_expired", "this invite has expired",
                          "Ask your approver for a new invite.")  # fmt: skip
    elif row.used_at is not None or not await invite_store.use(
        conn, row, client_id=client_id, now=now
    ):
        refusal = Invalid("invite_used", "this invite was already used by another login",
                          "An invite works once: ask your approver for a new one.")  # fmt: skip
    else:
        return row, None
    await audit.append(
        conn, vault=vault, at=now, actor="anonymous", action="invite.refused",
        severity="warning", client_id=client_id, source_ip=source_ip,
        detail={"error": refusal.code, **({"invite": row.id} if row is not None else {})},
    )  # fmt: skip
    return None, refusal


def check_invited(cert: ClientCertificate, project: str, role: str) -> None:
    """The certificate approving an invited login gives exactly the invite's role."""
    wanted = pm.member_scopes({project: {role}})
    if cert.scopes != wanted:
        raise Invalid(
            "certificate_mismatch",
            f"this login was invited as {role} of {project}: the certificate must give exactly "
            "that role and its scopes",
            f"Sign the certificate with scopes {' '.join(wanted)} (`sealbox approve` does).",
        )  # fmt: skip


# --- members -----------------------------------------------------------------------------------


async def list_members(relay: Relay, now: int, *, vault: str) -> list[Member]:
    """Every client of the vault that holds a role, with its certificate."""
    async with relay.read() as conn:
        held = await member_store.all_roles(conn, vault)
        rows = await client_store.list_all(conn, vault)
    return [
        Member(row.id, row.name, row.kind, row.disabled,
               {p: sorted(r) for p, r in sorted(held[row.id].items())}, row.certificate)
        for row in rows
        if row.id in held
    ]  # fmt: skip


async def recertify(
    relay: Relay, now: int, *, vault: str, client_id: str, certificate: str,
    approver: Principal, source_ip: str | None,
) -> Member:  # fmt: skip
    """Replace a client's certificate with a new one ``approver`` signed for the same key.

    This is how roles change: the relay stores the new certificate and the
    roles it gives in one transaction, and holds the client's next request to
    them.  The new certificate must be for the same client id, key and kind,
    and no older than the one it replaces.
    """
    async with relay.tx() as tx:
        conn = tx.conn
        directory = await relay.directories.load(conn, vault)
        row = await client_store.get(conn, vault, client_id)
        if row is None:
            raise NotFound("no_such_client", "this vault has no such client")
        cert = verify_certificate(certificate, directory, now=now)
        if cert.issuer != approver.id:
            raise not_the_issuer()
        if (cert.client.id, cert.client.sig_pk.to_text(), cert.client.kind) != (
            row.id, row.sig_pk, row.kind,
        ):  # fmt: skip
            raise Invalid(
                "certificate_mismatch",
                "the certificate is not for this client's id, key and kind",
                "Certify exactly the client's current key (see `sealbox member list`).",
            )  # fmt: skip
        if row.enrollment is not None:
            raise Invalid("enrolled_client", "a machine made by an enrollment is re-certified by "
                          "its enrollment, not here")  # fmt: skip
        try:
            before = verify_certificate(row.certificate, directory, now=now)
        except CertificateInvalid:
            before = None  # void (its issuer left, or it ended): anything current replaces it
        if before is not None and cert.at < before.at:
            raise Conflict("stale_certificate", "the certificate is older than the client's",
                           "Sign a fresh certificate.")  # fmt: skip
        roles_before = await member_store.roles(conn, vault, client_id)
        roles_after = scopes.roles(cert.scopes)
        if not await client_store.replace_certificate(
            conn, row, certificate=certificate, limits=limits_of(cert)
        ):
            raise Conflict("client_changed", "the client's certificate changed meanwhile",
                           "Look at the client again and retry.")  # fmt: skip
        await member_store.replace(conn, vault, client_id, roles_after)
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="client.recertified",
            severity="notice", client_id=client_id, source_ip=source_ip,
            detail={"key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after,
                    "roles_before": {p: sorted(r) for p, r in sorted(roles_before.items())},
                    "roles_after": {p: sorted(r) for p, r in sorted(roles_after.items())}},
        )  # fmt: skip
    return Member(
        row.id, row.name, row.kind, row.disabled,
        {p: sorted(r) for p, r in sorted(roles_after.items())}, certificate,
    )  # fmt: skip
