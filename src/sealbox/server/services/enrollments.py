"""CI enrollments: an approver's delegation key, and the ephemeral machines it certifies.

An approver uploads a ``sealbox.enrollment.v1`` it signed (:func:`create`).  A CI
runner holding the delegation key (the enrollment token; the relay never sees
it) fetches the statement (:func:`statement_of`), certifies a fresh key of its
own, and registers it (:func:`register`).  Both runner calls are RFC 9421
signed by the delegation key itself.  Registration holds the certificate to
the chain (certificate ← delegation ← a current approver), to the
enrollment's constraints, to the address the request came from and the host
name the runner reports, and counts the use with a compare-and-set, so
``max_uses`` machines and no more are ever registered.

A registered machine is a client like any other, with the enrollment kept
beside it: its item limits (``projects``, ``items``) hold on every decision,
and :mod:`sealbox.server.auth.enrolled` refuses its every call once the
enrollment is revoked or from outside its certificate's networks.  Revoking
(:func:`revoke`) also disables every machine it registered.

Every refusal changes nothing and is audited (``enrollment.refused``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sealbox.crypto.encoding import b64u_decode, parse_canonical_json
from sealbox.errors import CertificateInvalid, SealboxError
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_chain, verify_enrollment
from sealbox.protocol.scopes import ITEMS, READ
from sealbox.protocol.statements import EnrollmentStatement
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Forbidden, Invalid, NotFound, RelayError
from sealbox.server.relay import Relay
from sealbox.server.services.admin import add_client
from sealbox.server.services.caller import check_source
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import enrollments as store
from sealbox.server.store.enrollments import EnrollmentRow

__all__ = [
    "STATEMENT_MAX",
    "EnrollmentView",
    "Registered",
    "Revoked",
    "create",
    "list_enrollments",
    "register",
    "revoke",
    "statement_of",
]

#: Longest enrollment statement accepted (compact JWS); real ones are under 1 KiB.
STATEMENT_MAX = 16384


@dataclass(frozen=True)
class EnrollmentView:
    """An enrollment as approvers see it in lists (its statement is theirs to verify)."""

    id: str
    issuer: str
    statement: str
    projects: tuple[str, ...]
    items: tuple[str, ...]
    max_uses: int
    uses: int
    not_after: int
    cidrs: tuple[str, ...]
    hostname: str | None
    created_at: int
    revoked_at: int | None
    machines: int
    """Clients registered under it (enabled or not)."""


@dataclass(frozen=True)
class Registered:
    client_id: str
    enrollment: str
    not_after: int
    grants: tuple[str, ...]
    uses: int
    max_uses: int


@dataclass(frozen=True)
class Revoked:
    id: str
    revoked: bool
    """False if it already was: two approvers revoking at once is no error."""
    machines_disabled: int


def _parsed(statement: str) -> EnrollmentStatement:
    # Only for statements this relay verified before it stored them.
    payload = b64u_decode(statement.split(".")[1], what="enrollment")
    return EnrollmentStatement.from_json(parse_canonical_json(payload, what="enrollment"))


def _view(row: EnrollmentRow, machines: int) -> EnrollmentView:
    limits = _parsed(row.statement).constraints
    return EnrollmentView(
        id=row.id, issuer=row.issuer, statement=row.statement, projects=limits.projects,
        items=limits.items, max_uses=row.max_uses, uses=row.uses, not_after=row.not_after,
        cidrs=limits.cidrs, hostname=limits.hostname, created_at=row.created_at,
        revoked_at=row.revoked_at, machines=machines,
    )  # fmt: skip


def _enrollment_id(value: str) -> str:
    try:
        return ids.check_id(value, ids.ENROLLMENT, what="enrollment id")
    except SealboxError:
        raise _no_such_enrollment() from None


def _no_such_enrollment() -> NotFound:
    return NotFound("no_such_enrollment", "this vault has no such enrollment",
                    "Check the enrollment id (`sealbox ci enrollment list`).")  # fmt: skip


def _revoked() -> Forbidden:
    return Forbidden(
        "enrollment_revoked", "this enrollment has been revoked",
        "Ask an approver for a new enrollment (`sealbox ci enrollment create`) and put its "
        "token in the CI secret store.",
    )  # fmt: skip


def _expired() -> Forbidden:
    return Forbidden(
        "enrollment_expired", "this enrollment is past its not-after time",
        "Ask an approver for a new enrollment (`sealbox ci enrollment create`).",
    )  # fmt: skip


def _exhausted(row: EnrollmentRow) -> Forbidden:
    return Forbidden(
        "enrollment_exhausted",
        f"this enrollment has registered all the {row.max_uses} machines it may",
        "Ask an approver for a new enrollment, with a higher --max-uses if runs need it.",
    )  # fmt: skip


def _usable(row: EnrollmentRow | None, now: int) -> EnrollmentRow:
    if row is None:
        raise _no_such_enrollment()
    if row.revoked_at is not None:
        raise _revoked()
    if now > row.not_after:
        raise _expired()
    return row


# --- approvers --------------------------------------------------------------------------------


async def create(
    relay: Relay, now: int, *, vault: str, statement: str, approver: Principal,
    source_ip: str | None,
) -> EnrollmentView:  # fmt: skip
    """Keep an enrollment the calling approver signed, after verifying it."""
    async with relay.tx() as tx:
        directory = await relay.directories.load(tx.conn, vault)
        enrollment = verify_enrollment(statement, directory, now=now)
        if enrollment.issuer != approver.id:
            raise Forbidden("not_the_issuer", "the enrollment is signed by another approver",
                            "Sign the enrollment with your own key.")  # fmt: skip
        limits = enrollment.constraints
        if not limits.projects and not limits.items:
            # Unbounded, its machines could be granted every item of the vault.
            raise Invalid(
                "enrollment_unbounded", "an enrollment must name projects or item patterns",
                "Pass --project and --items to `sealbox ci enrollment create`.",
            )  # fmt: skip
        added = await store.insert(
            tx.conn, vault=vault, enrollment_id=enrollment.id, statement=statement,
            issuer=enrollment.issuer, max_uses=limits.max_uses, not_after=limits.not_after,
            now=now,
        )  # fmt: skip
        if not added:
            raise Conflict("enrollment_exists", "an enrollment with this id already exists",
                           "Make a new enrollment: each has a fresh id.")  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="enrollment.created",
            source_ip=source_ip,
            detail={"enrollment": enrollment.id, "projects": list(limits.projects),
                    "items": list(limits.items), "max_uses": limits.max_uses,
                    "not_after": limits.not_after, "cidrs": list(limits.cidrs),
                    "hostname": limits.hostname,
                    "key_fingerprint": enrollment.sig_pk.fingerprint()},
        )  # fmt: skip
        row = await store.get(tx.conn, vault, enrollment.id)
    assert row is not None
    return _view(row, 0)


async def list_enrollments(relay: Relay, now: int, *, vault: str) -> list[EnrollmentView]:
    """Every enrollment of the vault, revoked or not, oldest first."""
    async with relay.read() as conn:
        rows = await store.list_all(conn, vault)
        counts = await store.machine_counts(conn, vault)
    return [_view(row, counts.get(row.statement, 0)) for row in rows]


async def revoke(
    relay: Relay, now: int, *, vault: str, enrollment_id: str, approver: Principal,
    source_ip: str | None,
) -> Revoked:  # fmt: skip
    """Stop an enrollment: no more registrations, and every machine it made is disabled."""
    enrollment_id = _enrollment_id(enrollment_id)
    async with relay.tx() as tx:
        row = await store.get(tx.conn, vault, enrollment_id)
        if row is None:
            raise _no_such_enrollment()
        # The flag first: a registration racing this one either counted its use before
        # (its machine is disabled below) or finds the enrollment revoked.
        changed = await store.revoke(tx.conn, vault, enrollment_id, by=approver.id, now=now)
        disabled = await store.disable_machines(tx.conn, vault, row.statement)
        if changed or disabled:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=approver.id, action="enrollment.revoked",
                severity="notice", source_ip=source_ip,
                detail={"enrollment": enrollment_id, "machines_disabled": disabled},
            )  # fmt: skip
    return Revoked(enrollment_id, changed, disabled)


# --- runners (signed with the delegation key) -------------------------------------------------


async def statement_of(
    relay: Relay, now: int, *, vault: str, enrollment_id: str, caller: Principal,
    source_ip: str | None,
) -> str:  # fmt: skip
    """The enrollment statement, for the runner holding its delegation key to certify itself."""
    try:
        async with relay.read() as conn:
            row = _usable(await store.get(conn, vault, _caller(caller, enrollment_id)), now)
        return row.statement
    except RelayError as refused:
        await _audit_refusal(relay, now, vault, enrollment_id, refused, source_ip)
        raise


def _caller(caller: Principal, enrollment_id: str) -> str:
    if caller.id != enrollment_id:
        raise Forbidden("not_this_enrollment", "the request is signed for another enrollment",
                        "Sign with the delegation key of the enrollment in the URL.")  # fmt: skip
    return enrollment_id


async def register(
    relay: Relay, now: int, *, vault: str, enrollment_id: str, certificate: str,
    hostname: str | None, caller: Principal, source_ip: str | None,
) -> Registered:  # fmt: skip
    """Register one machine certified by the enrollment's delegation key, as its next use."""
    try:
        return await _register(relay, now, vault=vault, enrollment_id=enrollment_id,
                               certificate=certificate, hostname=hostname, caller=caller,
                               source_ip=source_ip)  # fmt: skip
    except (RelayError, SealboxError) as refused:
        await _audit_refusal(relay, now, vault, enrollment_id, refused, source_ip)
        raise


async def _register(
    relay: Relay, now: int, *, vault: str, enrollment_id: str, certificate: str,
    hostname: str | None, caller: Principal, source_ip: str | None,
) -> Registered:  # fmt: skip
    async with relay.tx() as tx:
        row = _usable(await store.get(tx.conn, vault, _caller(caller, enrollment_id)), now)
        directory = await relay.directories.load(tx.conn, vault)
        # The whole chain, now: the enrollment's approver is still in the directory,
        # the certificate is the delegation key's and within the enrollment's limits.
        cert, enrollment = verify_chain(certificate, directory, now=now, enrollment=row.statement)
        if enrollment is None or enrollment.id != enrollment_id:
            raise CertificateInvalid("the certificate is not signed by this enrollment")
        extra = [s for s in cert.scopes if s != READ and not s.startswith(ITEMS)]
        if extra:
            raise Forbidden(
                "scope_not_allowed",
                "an enrolled machine may only read: its certificate asks for "
                + ", ".join(extra[:5]),
                "Certify the machine with the scopes read and items:… only.",
            )  # fmt: skip
        check_source(cert, source_ip)
        _check_hostname(enrollment, hostname)
        if not await store.use(tx.conn, vault, enrollment_id, now):
            # Raced: another runner took the last use, or an approver revoked it.
            again = _usable(await store.get(tx.conn, vault, enrollment_id), now)
            raise _exhausted(again)
        await add_client(tx.conn, vault, cert, certificate, now, enrollment=enrollment,
                         enrollment_token=row.statement)  # fmt: skip
        patterns = _grants(enrollment)
        for pattern in patterns:
            await client_store.add_grant(tx.conn, vault, cert.client.id, pattern, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=enrollment_id, action="client.registered",
            client_id=cert.client.id, source_ip=source_ip,
            detail={"kind": cert.client.kind, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after,
                    "enrollment": enrollment_id, "enrollment_issuer": enrollment.issuer,
                    "use": row.uses + 1, "max_uses": row.max_uses, "hostname": hostname,
                    "grants": list(patterns)},
        )  # fmt: skip
    return Registered(cert.client.id, enrollment_id, cert.constraints.not_after, patterns,
                      row.uses + 1, row.max_uses)  # fmt: skip


def _check_hostname(enrollment: EnrollmentStatement, hostname: str | None) -> None:
    """The host name the runner reports must match the enrollment's pattern, if it has one.

    Reported, not proven: it keeps honest runners of other hosts out, and every
    access statement's signed ``context.host`` is held to the same pattern by the
    approvers (docs/protocol.md section 7).
    """
    pattern = enrollment.constraints.hostname
    if pattern is None:
        return
    if hostname is None or not fnmatch.fnmatchcase(hostname.lower(), pattern.lower()):
        raise Forbidden(
            "hostname_not_allowed", "this enrollment does not allow machines of this host name",
            f"Run `sealbox ci login` on a host whose name matches {pattern}.",
        )  # fmt: skip


def _grants(enrollment: EnrollmentStatement) -> tuple[str, ...]:
    """What an enrolled machine may ask for: the item patterns its approver signed.

    An enrollment that names only projects grants each project's items.  The
    machine's limits (the same patterns, and its projects) hold besides, so a
    later grant can never widen it beyond its enrollment.
    """
    limits = enrollment.constraints
    if limits.items:
        return limits.items
    return tuple(f"{project}/*/*" for project in limits.projects)


async def _audit_refusal(
    relay: Relay, now: int, vault: str, enrollment_id: str, refused: Exception,
    source_ip: str | None,
) -> None:  # fmt: skip
    code = getattr(refused, "code", "refused")
    async with relay.read() as conn:
        known = await store.get(conn, vault, enrollment_id) is not None
    if not known:
        # Nothing to attach it to: an id nobody enrolled writes nothing (as with vaults).
        return
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=enrollment_id, action="enrollment.refused",
            severity="warning", source_ip=source_ip,
            detail={"enrollment": enrollment_id, "error": code},
        )  # fmt: skip
