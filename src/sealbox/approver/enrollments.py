"""CI enrollments, made on an approver device: a delegation key and the limits it certifies in.

:func:`create_enrollment` generates the delegation key here, signs the
``sealbox.enrollment.v1`` statement with this approver's key, uploads the
statement (the relay sees only the public key) and returns the enrollment
token for the CI provider's secret store
(:mod:`sealbox.protocol.enrollment_token`).  The token is shown once and kept
nowhere on this device.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealbox._relay.text import displayable
from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import SigningKey
from sealbox.errors import InvalidInput, RelayRefused, SealboxError
from sealbox.protocol import ids, scopes
from sealbox.protocol.certificates import issue_enrollment, verify_enrollment
from sealbox.protocol.enrollment_token import EnrollmentToken
from sealbox.protocol.statements import EnrollmentConstraints

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_MAX_USES",
    "Created",
    "create_enrollment",
    "list_enrollments",
    "revoke_enrollment",
]

DEFAULT_MAX_USES = 50
DEFAULT_DAYS = 30
HOSTNAME_MAX = 253


@dataclass(frozen=True)
class Created:
    id: str
    token: str
    """``sbx_enr_…``: for the CI secret store only."""
    constraints: EnrollmentConstraints
    key_fingerprint: str

    def __repr__(self) -> str:
        return f"Created(id={self.id!r})"


def _constraints(
    *, projects: Sequence[str], items: Sequence[str], max_uses: int, not_after: int,
    cidrs: Sequence[str], hostname: str | None,
) -> EnrollmentConstraints:  # fmt: skip
    """The limits as a person typed them, checked before anything is signed."""
    try:
        checked_projects = sorted({ids.check_segment(p, "project") for p in projects})
    except SealboxError as exc:
        raise InvalidInput(f"--project: {exc.message}") from None
    checked_items = []
    for pattern in items:
        try:
            scopes.check_pattern(pattern)
        except ValueError as exc:
            raise InvalidInput(f"--items {pattern!r}: {exc}") from None
        if checked_projects and pattern.split("/")[0] not in checked_projects:
            raise InvalidInput(f"--items {pattern!r} is outside the projects "
                               f"{', '.join(checked_projects)}")  # fmt: skip
        checked_items.append(pattern)
    if not checked_projects and not checked_items:
        raise InvalidInput("name the projects or items the machines may ask for "
                           "(--project, --items)")  # fmt: skip
    if max_uses < 1:
        raise InvalidInput("--max-uses must be at least 1")
    networks = []
    for cidr in cidrs:
        try:
            networks.append(str(ipaddress.ip_network(cidr.strip(), strict=True)))
        except ValueError:
            raise InvalidInput(f"--cidr {cidr!r} is not a network such as 10.1.0.0/16 "
                               "(host bits must be zero)") from None  # fmt: skip
    if hostname is not None and (not hostname or len(hostname) > HOSTNAME_MAX
                                 or not hostname.isascii() or not hostname.isprintable()
                                 or " " in hostname):  # fmt: skip
        raise InvalidInput("--hostname is a host-name pattern such as runner-*.example.com")
    return EnrollmentConstraints(
        projects=tuple(checked_projects), items=tuple(sorted(set(checked_items))),
        max_uses=max_uses, not_after=not_after, cidrs=tuple(sorted(set(networks))),
        hostname=hostname,
    )  # fmt: skip


def create_enrollment(
    session: ApproverSession, *, projects: Sequence[str], items: Sequence[str],
    max_uses: int = DEFAULT_MAX_USES, seconds: int = DEFAULT_DAYS * 86400,
    cidrs: Sequence[str] = (), hostname: str | None = None, now: int | None = None,
) -> Created:  # fmt: skip
    """Make a delegation key, sign its enrollment, upload it; return the token."""
    now = int(time.time()) if now is None else now
    constraints = _constraints(projects=projects, items=items, max_uses=max_uses,
                               not_after=now + seconds, cidrs=cidrs,
                               hostname=hostname)  # fmt: skip
    directory = session.directory(fresh=True)
    delegation = SigningKey.generate()
    enrollment_id = ids.new_id(ids.ENROLLMENT)
    statement = issue_enrollment(
        directory, issuer=session.id, key=session.keys.sig, enrollment_id=enrollment_id,
        delegation_key=delegation.verify_key(), constraints=constraints, now=now,
    )  # fmt: skip
    session.ok("POST", "/enrollments", "uploading the enrollment",
               json_body={"statement": statement})  # fmt: skip
    token = EnrollmentToken(
        server=session.keys.server.rstrip("/"), vault=session.keys.vault,
        fingerprint=session.keys.fingerprint, enrollment=enrollment_id, key=delegation,
    )  # fmt: skip
    return Created(enrollment_id, token.to_text(), constraints,
                   delegation.verify_key().fingerprint())  # fmt: skip


def list_enrollments(session: ApproverSession) -> list[dict[str, Any]]:
    """The vault's enrollments, each statement verified here against the directory.

    The limits shown (projects, items, uses allowed, expiry, networks, host names, issuer)
    come from the verified statement; only the counts (``uses``, ``machines``) and
    ``revoked_at`` are the relay's word.  ``verified`` is False for a statement that does not
    verify now (expired, or its approver removed): then only its id is shown, made safe to
    print.
    """
    directory = session.directory(fresh=True)
    body = session.ok("GET", "/enrollments", "listing enrollments")
    found = body.get("enrollments") if isinstance(body, dict) else None
    if not isinstance(found, list):
        raise RelayRefused("listing enrollments: the relay's answer has no list of enrollments")
    now = int(time.time())
    out = []
    for entry in found:
        if not isinstance(entry, dict):
            continue
        reported = {
            key: entry.get(key) if isinstance(entry.get(key), int) else None
            for key in ("uses", "machines", "revoked_at", "created_at")
        }
        try:
            enrollment = verify_enrollment(entry.get("statement"), directory, now=now)
        except SealboxError:
            out.append({"id": displayable(entry.get("id"), 40), "verified": False, **reported})
            continue
        limits = enrollment.constraints
        out.append({
            "id": enrollment.id, "verified": True, "issuer": enrollment.issuer,
            "projects": list(limits.projects), "items": list(limits.items),
            "max_uses": limits.max_uses, "not_after": limits.not_after,
            "cidrs": list(limits.cidrs), "hostname": limits.hostname,
            "key_fingerprint": enrollment.sig_pk.fingerprint(), **reported,
        })  # fmt: skip
    return out


def revoke_enrollment(session: ApproverSession, enrollment_id: str) -> dict[str, Any]:
    """Revoke an enrollment: its machines stop at once, and it registers no more."""
    try:
        ids.check_id(enrollment_id, ids.ENROLLMENT, what="enrollment id")
    except SealboxError as exc:
        raise InvalidInput(exc.message) from None
    body = session.ok("POST", f"/enrollments/{enrollment_id}/revoke", "revoking the enrollment")
    return dict(body) if isinstance(body, dict) else {}
