"""Client certificates and enrollment delegations.

A client key may sign store and access statements only under a certificate
that a *current* approver signed, or that an enrollment delegation key
signed within the limits an approver set for it.  Removing an approver from
the directory therefore voids the certificates it issued.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from sealbox.crypto import jws
from sealbox.crypto.keys import SigningKey, VerifyKey
from sealbox.errors import CertificateInvalid, SealboxError
from sealbox.protocol import ids, scopes
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import (
    ClientCertificate,
    ClientConstraints,
    ClientInfo,
    EnrollmentConstraints,
    EnrollmentStatement,
    RequestContext,
    sign_statement,
    verify_statement,
)

__all__ = [
    "CLOCK_SKEW",
    "check_context",
    "check_paths",
    "issue_certificate",
    "issue_enrollment",
    "issue_machine_certificate",
    "limits_of",
    "verify_certificate",
    "verify_chain",
    "verify_enrollment",
]

#: How far in the future a statement's ``at`` may lie (clocks disagree a little).
CLOCK_SKEW = 300


def issue_certificate(
    directory: Directory,
    *,
    issuer: str,
    key: SigningKey,
    client: ClientInfo,
    scopes: Sequence[str],
    constraints: ClientConstraints,
    now: int,
) -> str:
    """An approver certifies a client key (after checking its fingerprint with a person)."""
    if directory.approver(issuer).sig_pk != key.verify_key():
        raise ValueError("the signing key is not the issuer's directory key")
    cert = ClientCertificate(
        vault=directory.vault,
        client=client,
        scopes=tuple(sorted(set(scopes))),
        constraints=constraints,
        issuer=issuer,
        at=now,
    )
    ClientCertificate.from_json(cert.to_json())  # never sign what a verifier would refuse
    return sign_statement(cert, key, issuer)


def issue_enrollment(
    directory: Directory,
    *,
    issuer: str,
    key: SigningKey,
    enrollment_id: str,
    delegation_key: VerifyKey,
    constraints: EnrollmentConstraints,
    now: int,
) -> str:
    """An approver lets a delegation key certify ephemeral machines within ``constraints``."""
    if directory.approver(issuer).sig_pk != key.verify_key():
        raise ValueError("the signing key is not the issuer's directory key")
    enrollment = EnrollmentStatement(
        vault=directory.vault,
        id=ids.check_id(enrollment_id, ids.ENROLLMENT, what="enrollment id"),
        sig_pk=delegation_key,
        constraints=constraints,
        issuer=issuer,
        at=now,
    )
    EnrollmentStatement.from_json(enrollment.to_json())
    return sign_statement(enrollment, key, issuer)


def issue_machine_certificate(
    enrollment: EnrollmentStatement,
    *,
    delegation_key: SigningKey,
    client: ClientInfo,
    scopes: Sequence[str],
    constraints: ClientConstraints,
    now: int,
) -> str:
    """The enrollment's delegation key certifies one machine key."""
    if delegation_key.verify_key() != enrollment.sig_pk:
        raise ValueError("the signing key is not the enrollment's delegation key")
    cert = ClientCertificate(
        vault=enrollment.vault,
        client=client,
        scopes=tuple(sorted(set(scopes))),
        constraints=constraints,
        issuer=enrollment.id,
        at=now,
    )
    ClientCertificate.from_json(cert.to_json())
    return sign_statement(cert, delegation_key, enrollment.id)


def verify_enrollment(token: object, directory: Directory, *, now: int) -> EnrollmentStatement:
    """Verify an enrollment against the directory; raise :class:`CertificateInvalid`."""
    try:
        header = jws.read_header(token)
        issuer = directory.approver(header.kid)
        enrollment = verify_statement(token, EnrollmentStatement, issuer.sig_pk, issuer.id)
    except SealboxError as exc:
        raise CertificateInvalid(f"enrollment does not verify: {exc.message}") from exc
    if enrollment.issuer != header.kid or enrollment.vault != directory.vault:
        raise CertificateInvalid("enrollment issuer or vault does not match its signature")
    if enrollment.at > now + CLOCK_SKEW or now > enrollment.constraints.not_after:
        raise CertificateInvalid("enrollment is not valid at this time")
    return enrollment


def verify_certificate(
    token: object, directory: Directory, *, now: int, enrollment: object | None = None
) -> ClientCertificate:
    """Verify a client certificate: :func:`verify_chain` without the enrollment."""
    return verify_chain(token, directory, now=now, enrollment=enrollment)[0]


def verify_chain(
    token: object, directory: Directory, *, now: int, enrollment: object | None = None
) -> tuple[ClientCertificate, EnrollmentStatement | None]:
    """Verify a client certificate against the directory (and its enrollment, if delegated).

    Returns the certificate and, for a delegated one, the enrollment it was
    verified under.  Raises :class:`CertificateInvalid` if the signer is not a current
    approver (or a valid enrollment), if anything does not verify, if the
    certificate is outside its validity window, or if a delegated
    certificate reaches beyond its enrollment's limits.
    """
    try:
        header = jws.read_header(token)
    except SealboxError as exc:
        raise CertificateInvalid(f"certificate is malformed: {exc.message}") from exc
    if header.kid.startswith(ids.ENROLLMENT + "_"):
        if enrollment is None:
            raise CertificateInvalid("certificate is signed by an enrollment that was not supplied")
        delegation = verify_enrollment(enrollment, directory, now=now)
        if delegation.id != header.kid:
            raise CertificateInvalid("certificate is signed by another enrollment")
        signer_key = delegation.sig_pk
    else:
        delegation = None
        try:
            signer_key = directory.approver(header.kid).sig_pk
        except SealboxError as exc:
            raise CertificateInvalid(f"certificate issuer: {exc.message}") from exc
    try:
        cert = verify_statement(token, ClientCertificate, signer_key, header.kid)
    except SealboxError as exc:
        raise CertificateInvalid(f"certificate does not verify: {exc.message}") from exc
    if cert.issuer != header.kid or cert.vault != directory.vault:
        raise CertificateInvalid("certificate issuer or vault does not match its signature")
    if cert.at > now + CLOCK_SKEW or now > cert.constraints.not_after:
        raise CertificateInvalid("certificate is not valid at this time")
    if delegation is not None:
        _check_within(cert, delegation)
    return cert, delegation


def _check_within(cert: ClientCertificate, enrollment: EnrollmentStatement) -> None:
    limits = enrollment.constraints
    if cert.client.kind != "machine":
        raise CertificateInvalid("an enrollment may certify machines only")
    if cert.constraints.not_after > limits.not_after:
        raise CertificateInvalid("certificate outlives its enrollment")
    if limits.cidrs and not (
        cert.constraints.cidrs and set(cert.constraints.cidrs) <= set(limits.cidrs)
    ):
        raise CertificateInvalid("certificate allows networks its enrollment does not")
    if limits.hostname is not None and cert.constraints.hostname != limits.hostname:
        raise CertificateInvalid("certificate allows hosts its enrollment does not")


def check_context(cert: ClientCertificate, context: RequestContext) -> None:
    """Hold a client-signed request context to its certificate's host-name pattern.

    The pattern is a case-insensitive shell glob (``ci-*.example.com``).  A
    certificate with a pattern refuses a request that does not name its host.
    This is the approver's own check; the CIDR constraint, which concerns the
    source address only the relay observes, is the relay's to enforce.
    """
    pattern = cert.constraints.hostname
    if pattern is None:
        return
    host = context.host
    if host is None or not fnmatch.fnmatchcase(host.lower(), pattern.lower()):
        raise CertificateInvalid("the request's host is outside what its certificate allows")


def limits_of(
    cert: ClientCertificate, enrollment: EnrollmentStatement | None = None
) -> tuple[tuple[str, ...], ...]:
    """The item-path limits of a certificate's signed scopes and of its enrollment.

    See :func:`sealbox.protocol.scopes.limits`; empty means no limit.
    """
    if enrollment is None:
        return scopes.limits(cert.scopes)
    return scopes.limits(
        cert.scopes, projects=enrollment.constraints.projects, items=enrollment.constraints.items
    )


def check_paths(
    cert: ClientCertificate, paths: Sequence[str], enrollment: EnrollmentStatement | None = None
) -> None:
    """Hold the item paths a store or access statement names to its certificate's limits.

    This is stage isolation: a client certified (or enrolled) for
    ``shop/dev/*`` is refused ``shop/prod/db`` by the relay and by every
    approver, whatever grants the relay holds.
    """
    bounds = limits_of(cert, enrollment)
    for path in paths:
        if not scopes.within(path, bounds):
            raise CertificateInvalid(f"{path} is outside the items its certificate allows")
