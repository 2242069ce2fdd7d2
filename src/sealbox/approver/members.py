"""An approver's acts on a vault's members: invites, role changes, revocation.

Roles are signed here, on the approver's device: a role change is a new
certificate for the member's same client id and key, with the scopes
:func:`sealbox.protocol.members.member_scopes` gives its new roles.  What the
relay lists about members is checked here before anything is signed from it:
each member's certificate must verify against the directory this device
verified, and its roles are read from that certificate, never from the
relay's word.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sealbox._relay.text import displayable
from sealbox.approver.session import ApproverSession
from sealbox.errors import BindingMismatch, CertificateInvalid, MalformedInput
from sealbox.protocol import ids, scopes
from sealbox.protocol.certificates import issue_certificate, verify_certificate
from sealbox.protocol.members import member_scopes
from sealbox.protocol.statements import ClientCertificate

__all__ = [
    "Invited",
    "MemberView",
    "Revoked",
    "create_invite",
    "invite_scopes",
    "list_members",
    "revoke",
    "set_role",
]


@dataclass(frozen=True)
class Invited:
    code: str
    project: str
    role: str
    expires_at: int

    def __repr__(self) -> str:
        return f"Invited(project={self.project!r}, role={self.role!r})"


@dataclass(frozen=True)
class MemberView:
    """A member as its verified certificate says."""

    client_id: str
    name: str
    kind: str
    disabled: bool
    roles: dict[str, tuple[str, ...]]
    """Project -> roles, from the certificate (verified here)."""
    key_fingerprint: str
    not_after: int


@dataclass(frozen=True)
class Revoked:
    client_id: str
    roles: dict[str, tuple[str, ...]]
    """The roles left (empty: the client was also disabled)."""
    disabled: bool


def invite_scopes(login: Mapping[str, object]) -> list[str] | None:
    """The scopes to certify an invited login with, or ``None`` for a login without an invite.

    The project and role come from the relay's listing; the approver sees them
    before approving, and the relay refuses a certificate for an invited login
    that does not give exactly this role.
    """
    project, role = login.get("project"), login.get("role")
    if project is None and role is None:
        return None
    if not isinstance(project, str) or not isinstance(role, str):
        raise MalformedInput("the relay listed an invite without its project and role")
    try:
        return list(member_scopes({project: {role}}))
    except ValueError:
        raise MalformedInput(
            f"the relay listed an invite with an unknown role {displayable(role, 32)}"
        ) from None


def create_invite(session: ApproverSession, *, project: str, role: str, seconds: int) -> Invited:
    """Ask the relay to make a one-time invite; its code is shown once, here."""
    if role not in scopes.ROLES:
        raise MalformedInput(f"a role is one of {', '.join(scopes.ROLES)}")
    body = session.ok("POST", "/invites", "making the invite",
                      json_body={"project": project, "role": role,
                                 "expires_seconds": seconds})  # fmt: skip
    code = body.get("code")
    if not isinstance(code, str) or body.get("project") != project or body.get("role") != role:
        raise BindingMismatch("the relay's invite is not the one asked for")
    return Invited(code, project, role, int(body.get("expires_at", 0)))


def _verified(session: ApproverSession, client_id: str, certificate: object) -> ClientCertificate:
    cert = verify_certificate(certificate, session.directory(), now=int(time.time()))
    if cert.client.id != client_id:
        raise CertificateInvalid("the relay served a certificate for another client")
    return cert


def _roles(cert: ClientCertificate) -> dict[str, tuple[str, ...]]:
    return {p: tuple(sorted(r)) for p, r in sorted(scopes.roles(cert.scopes).items())}


def list_members(session: ApproverSession) -> list[MemberView]:
    """The vault's members, each from its certificate verified here (others are left out)."""
    session.directory(fresh=True)
    out = []
    for entry in session.ok("GET", "/members", "listing members")["members"]:
        client_id = ids.check_id(entry.get("client_id"), ids.CLIENT, what="client id")
        try:
            cert = _verified(session, client_id, entry.get("certificate"))
        except CertificateInvalid:
            continue  # void (its issuer left, or it ended): it gives no role
        if cert.client.id != client_id or not scopes.roles(cert.scopes):
            continue
        out.append(MemberView(
            client_id=client_id, name=cert.client.name, kind=cert.client.kind,
            disabled=bool(entry.get("disabled")), roles=_roles(cert),
            key_fingerprint=cert.client.sig_pk.fingerprint(),
            not_after=cert.constraints.not_after,
        ))  # fmt: skip
    return out


def _current(session: ApproverSession, client_id: str) -> tuple[ClientCertificate, bool]:
    client_id = ids.check_id(client_id, ids.CLIENT, what="client id")
    session.directory(fresh=True)
    body = session.ok("GET", f"/clients/{client_id}", "looking up the client")
    return _verified(session, client_id, body.get("certificate")), bool(body.get("disabled"))


def _recertify(
    session: ApproverSession, cert: ClientCertificate, roles: Mapping[str, Iterable[str]]
) -> None:
    """Sign the same client key again with the scopes of ``roles``; upload it."""
    # The same constraints: a role change neither lengthens nor widens the client's life.
    token = issue_certificate(
        session.directory(), issuer=session.id, key=session.keys.sig, client=cert.client,
        scopes=member_scopes({p: set(r) for p, r in roles.items()}),
        constraints=cert.constraints, now=max(int(time.time()), cert.at),
    )  # fmt: skip
    session.ok("PUT", f"/clients/{cert.client.id}/certificate", "re-certifying the client",
               json_body={"certificate": token})  # fmt: skip


def set_role(
    session: ApproverSession, client_id: str, *, project: str, roles: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """Make ``roles`` the client's roles in ``project`` (its other projects' roles stay).

    Returns all its roles after the change.  A client that was no member
    becomes one: its scopes become exactly what its roles give.
    """
    wanted = set(roles)
    unknown = wanted - set(scopes.ROLES)
    if not wanted or unknown:
        raise MalformedInput(f"a role is one of {', '.join(scopes.ROLES)}")
    scopes.check_scope(f"{scopes.ROLE}{project}:{sorted(wanted)[0]}")
    cert, _ = _current(session, client_id)
    if cert.client.kind != "human":
        raise MalformedInput("members are people: roles go to clients that logged in")
    held = {p: set(r) for p, r in scopes.roles(cert.scopes).items()}
    held[project] = wanted
    _recertify(session, cert, held)
    return {p: tuple(sorted(r)) for p, r in sorted(held.items())}


def revoke(session: ApproverSession, client_id: str, *, project: str | None = None) -> Revoked:
    """Take the client's roles in ``project`` (all, without one) away.

    With roles left, the client is re-certified with them; with none left it
    is re-certified without any scope and disabled: it is no member any more,
    and enabling it again brings back no role.
    """
    cert, disabled = _current(session, client_id)
    held = {p: set(r) for p, r in scopes.roles(cert.scopes).items()}
    if not held or (project is not None and project not in held):
        where = f" in project {project}" if project else ""
        raise MalformedInput(f"{client_id} holds no role{where}")
    left = {} if project is None else {p: r for p, r in held.items() if p != project}
    _recertify(session, cert, left)
    if not left and not disabled:
        session.ok("POST", f"/clients/{cert.client.id}/disable", "disabling the client")
    return Revoked(cert.client.id, {p: tuple(sorted(r)) for p, r in sorted(left.items())},
                   not left)  # fmt: skip
