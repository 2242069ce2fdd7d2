"""Client certificates, enrollments and delegated machine certificates."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sealbox.crypto import jws
from sealbox.crypto.keys import SigningKey
from sealbox.errors import CertificateInvalid, MalformedInput
from sealbox.protocol import certificates as certs
from sealbox.protocol import directory as dr
from sealbox.protocol import ids
from sealbox.protocol.statements import (
    ClientCertificate,
    ClientConstraints,
    ClientInfo,
    EnrollmentConstraints,
    EnrollmentStatement,
    RequestContext,
    sign_statement,
)

NOW = 1_800_000_000
DAY = 86_400
SKEW = certs.CLOCK_SKEW


def _issue(world: Any, *, by: int = 0, not_after: int = NOW + DAY, at: int = NOW, **kw: Any) -> str:
    a = world.approvers[by]
    return certs.issue_certificate(
        world.directory,
        issuer=a.id,
        key=a.sig,
        client=kw.pop("client", world.client.info),
        scopes=kw.pop("scopes", ["write", "read", "read"]),
        constraints=kw.pop("constraints", ClientConstraints(not_after=not_after)),
        now=at,
    )


def test_approver_issued_certificate_verifies(world: Any) -> None:
    token = _issue(world)
    cert = certs.verify_certificate(token, world.directory, now=NOW)
    assert cert.client == world.client.info
    assert cert.issuer == world.approvers[0].id
    assert cert.vault == world.vault
    assert cert.scopes == ("read", "write")  # sorted, unique


@pytest.mark.parametrize("now", [NOW - SKEW, NOW, NOW + DAY])
def test_validity_window_edges_accepted(world: Any, now: int) -> None:
    assert certs.verify_certificate(_issue(world), world.directory, now=now)


@pytest.mark.parametrize("now", [NOW - SKEW - 1, NOW + DAY + 1])
def test_outside_validity_window(world: Any, now: int) -> None:
    with pytest.raises(CertificateInvalid, match="not valid at this time"):
        certs.verify_certificate(_issue(world), world.directory, now=now)


def test_future_dated(world: Any) -> None:
    token = _issue(world, at=NOW + SKEW + 1, not_after=NOW + 2 * DAY)
    with pytest.raises(CertificateInvalid, match="not valid at this time"):
        certs.verify_certificate(token, world.directory, now=NOW)


def test_issuer_removed_from_directory(fresh_world: Any) -> None:
    w = fresh_world
    token = _issue(w, by=2)
    assert certs.verify_certificate(token, w.directory, now=NOW)
    first = w.approvers[0]
    links = [
        *w.links,
        dr.append_link(
            w.directory, "remove", w.approvers[2].record, signer=first.id, key=first.sig, now=NOW
        ),
    ]
    smaller = dr.verify_directory(links, pinned=w.fingerprint)
    with pytest.raises(CertificateInvalid, match="issuer"):
        certs.verify_certificate(token, smaller, now=NOW)


def test_issuer_never_in_directory(world: Any, kit: Any) -> None:
    stranger = kit.new_approver("stranger")
    cert = ClientCertificate(
        vault=world.vault,
        client=world.client.info,
        scopes=(),
        constraints=ClientConstraints(not_after=NOW + DAY),
        issuer=stranger.id,
        at=NOW,
    )
    with pytest.raises(CertificateInvalid):
        certs.verify_certificate(
            sign_statement(cert, stranger.sig, stranger.id), world.directory, now=NOW
        )


def test_member_id_with_another_key(world: Any, kit: Any) -> None:
    stranger = kit.new_approver("stranger")
    a = world.approvers[0]
    cert = ClientCertificate(
        vault=world.vault,
        client=world.client.info,
        scopes=(),
        constraints=ClientConstraints(not_after=NOW + DAY),
        issuer=a.id,
        at=NOW,
    )
    with pytest.raises(CertificateInvalid, match="does not verify"):
        certs.verify_certificate(sign_statement(cert, stranger.sig, a.id), world.directory, now=NOW)


def test_vault_mismatch(world: Any) -> None:
    a = world.approvers[0]
    cert = ClientCertificate(
        vault=ids.new_id(ids.VAULT),
        client=world.client.info,
        scopes=(),
        constraints=ClientConstraints(not_after=NOW + DAY),
        issuer=a.id,
        at=NOW,
    )
    with pytest.raises(CertificateInvalid, match="vault"):
        certs.verify_certificate(sign_statement(cert, a.sig, a.id), world.directory, now=NOW)


def test_issuer_field_differs_from_signer(world: Any) -> None:
    a, b = world.approvers[0], world.approvers[1]
    cert = ClientCertificate(
        vault=world.vault,
        client=world.client.info,
        scopes=(),
        constraints=ClientConstraints(not_after=NOW + DAY),
        issuer=b.id,
        at=NOW,
    )
    with pytest.raises(CertificateInvalid, match="issuer"):
        certs.verify_certificate(sign_statement(cert, a.sig, a.id), world.directory, now=NOW)


def test_malformed_certificate(world: Any) -> None:
    for token in ("not a jws", None, "a.b.c"):
        with pytest.raises(CertificateInvalid, match="malformed"):
            certs.verify_certificate(token, world.directory, now=NOW)


def test_another_statement_type_is_not_a_certificate(world: Any) -> None:
    a = world.approvers[0]
    token = jws.sign(a.sig, "sealbox.deny.v1", a.id, {"x": 1})
    with pytest.raises(CertificateInvalid, match="does not verify"):
        certs.verify_certificate(token, world.directory, now=NOW)


def test_issue_with_wrong_key(world: Any) -> None:
    a, b = world.approvers[0], world.approvers[1]
    with pytest.raises(ValueError, match="issuer"):
        certs.issue_certificate(
            world.directory, issuer=a.id, key=b.sig, client=world.client.info, scopes=[],
            constraints=ClientConstraints(not_after=NOW), now=NOW,
        )  # fmt: skip
    with pytest.raises(ValueError, match="issuer"):
        certs.issue_enrollment(
            world.directory, issuer=a.id, key=b.sig, enrollment_id=ids.new_id(ids.ENROLLMENT),
            delegation_key=b.sig.verify_key(), constraints=_limits(), now=NOW,
        )  # fmt: skip


# --- enrollments ---------------------------------------------------------------------------


def _limits(**kw: Any) -> EnrollmentConstraints:
    base: dict[str, Any] = {
        "projects": ("app",),
        "items": ("app/*/*",),
        "max_uses": 10,
        "not_after": NOW + 7 * DAY,
        "cidrs": ("10.0.0.0/8", "10.1.0.0/16"),
        "hostname": "runner-*",
    }
    base.update(kw)
    return EnrollmentConstraints(**base)


def _enrol(world: Any, *, at: int = NOW, by: int = 0, **kw: Any) -> tuple[str, str, SigningKey]:
    a = world.approvers[by]
    delegation = SigningKey.generate()
    enr_id = ids.new_id(ids.ENROLLMENT)
    token = certs.issue_enrollment(
        world.directory,
        issuer=a.id,
        key=a.sig,
        enrollment_id=enr_id,
        delegation_key=delegation.verify_key(),
        constraints=_limits(**kw),
        now=at,
    )
    return token, enr_id, delegation


def _machine(kind: str = "machine") -> ClientInfo:
    key = SigningKey.generate()
    return ClientInfo(
        id=ids.new_id(ids.CLIENT), kind=kind, name="ci-job-17", sig_pk=key.verify_key()
    )


def _machine_cert(
    world: Any,
    enrollment: str,
    delegation: SigningKey,
    *,
    kind: str = "machine",
    not_after: int = NOW + DAY,
    cidrs: tuple[str, ...] = ("10.0.0.0/8",),
    hostname: str | None = "runner-*",
    at: int = NOW,
) -> str:
    statement = certs.verify_enrollment(enrollment, world.directory, now=NOW)
    return certs.issue_machine_certificate(
        statement,
        delegation_key=delegation,
        client=_machine(kind),
        scopes=["read"],
        constraints=ClientConstraints(not_after=not_after, cidrs=cidrs, hostname=hostname),
        now=at,
    )


def test_enrollment_flow(world: Any) -> None:
    enrollment, enr_id, delegation = _enrol(world)
    statement = certs.verify_enrollment(enrollment, world.directory, now=NOW)
    assert statement.id == enr_id
    assert statement.issuer == world.approvers[0].id
    assert statement.sig_pk == delegation.verify_key()
    token = _machine_cert(world, enrollment, delegation)
    cert = certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)
    assert cert.issuer == enr_id
    assert cert.client.kind == "machine"


def test_enrollment_without_network_or_host_limits_allows_any(world: Any) -> None:
    enrollment, _, delegation = _enrol(world, cidrs=(), hostname=None)
    token = _machine_cert(world, enrollment, delegation, cidrs=(), hostname=None)
    assert certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


def test_machine_cert_with_exactly_the_enrollment_limits(world: Any) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(
        world, enrollment, delegation, not_after=NOW + 7 * DAY, cidrs=("10.0.0.0/8", "10.1.0.0/16")
    )
    assert certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


def test_missing_enrollment(world: Any) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(world, enrollment, delegation)
    with pytest.raises(CertificateInvalid, match="not supplied"):
        certs.verify_certificate(token, world.directory, now=NOW)


def test_wrong_enrollment(world: Any) -> None:
    enrollment, _, delegation = _enrol(world)
    other, _, _ = _enrol(world)
    token = _machine_cert(world, enrollment, delegation)
    with pytest.raises(CertificateInvalid, match="another enrollment"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=other)


def test_enrollment_signed_by_other_delegation_key(world: Any) -> None:
    enrollment, enr_id, _ = _enrol(world)
    statement = certs.verify_enrollment(enrollment, world.directory, now=NOW)
    thief = SigningKey.generate()
    cert = ClientCertificate(
        vault=world.vault,
        client=_machine(),
        scopes=(),
        constraints=ClientConstraints(
            not_after=NOW + DAY, cidrs=("10.0.0.0/8",), hostname="runner-*"
        ),
        issuer=statement.id,
        at=NOW,
    )
    token = sign_statement(cert, thief, enr_id)
    with pytest.raises(CertificateInvalid, match="does not verify"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


@pytest.mark.parametrize("kind", ["human", "agent"])
def test_enrollment_certifies_machines_only(world: Any, kind: str) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(world, enrollment, delegation, kind=kind)
    with pytest.raises(CertificateInvalid, match="machines only"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


def test_machine_cert_outliving_enrollment(world: Any) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(world, enrollment, delegation, not_after=NOW + 7 * DAY + 1)
    with pytest.raises(CertificateInvalid, match="outlives"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


@pytest.mark.parametrize("cidrs", [(), ("0.0.0.0/0",), ("10.0.0.0/8", "192.168.0.0/16")])
def test_machine_cert_networks_beyond_enrollment(world: Any, cidrs: tuple[str, ...]) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(world, enrollment, delegation, cidrs=cidrs)
    with pytest.raises(CertificateInvalid, match="networks"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


@pytest.mark.parametrize("hostname", [None, "*", "runner-*.evil"])
def test_machine_cert_hosts_beyond_enrollment(world: Any, hostname: str | None) -> None:
    enrollment, _, delegation = _enrol(world)
    token = _machine_cert(world, enrollment, delegation, hostname=hostname)
    with pytest.raises(CertificateInvalid, match="hosts"):
        certs.verify_certificate(token, world.directory, now=NOW, enrollment=enrollment)


def test_expired_enrollment(world: Any) -> None:
    enrollment, _, delegation = _enrol(world, not_after=NOW + DAY)
    token = _machine_cert(world, enrollment, delegation, not_after=NOW + DAY)
    assert certs.verify_certificate(token, world.directory, now=NOW + DAY, enrollment=enrollment)
    with pytest.raises(CertificateInvalid, match="enrollment is not valid"):
        certs.verify_enrollment(enrollment, world.directory, now=NOW + DAY + 1)
    with pytest.raises(CertificateInvalid, match="enrollment is not valid"):
        certs.verify_certificate(token, world.directory, now=NOW + DAY + 1, enrollment=enrollment)


def test_future_dated_enrollment(world: Any) -> None:
    enrollment, _, _ = _enrol(world, at=NOW + SKEW + 1)
    with pytest.raises(CertificateInvalid, match="enrollment is not valid"):
        certs.verify_enrollment(enrollment, world.directory, now=NOW)
    assert certs.verify_enrollment(enrollment, world.directory, now=NOW + 1)


def test_enrollment_issuer_removed(fresh_world: Any) -> None:
    w = fresh_world
    enrollment, _, delegation = _enrol(w, by=2)
    token = _machine_cert(w, enrollment, delegation)
    first = w.approvers[0]
    links = [
        *w.links,
        dr.append_link(
            w.directory, "remove", w.approvers[2].record, signer=first.id, key=first.sig, now=NOW
        ),
    ]
    smaller = dr.verify_directory(links, pinned=w.fingerprint)
    with pytest.raises(CertificateInvalid, match="enrollment does not verify"):
        certs.verify_certificate(token, smaller, now=NOW, enrollment=enrollment)


def test_enrollment_issuer_or_vault_mismatch(world: Any) -> None:
    a, b = world.approvers[0], world.approvers[1]
    base = EnrollmentStatement(
        vault=world.vault,
        id=ids.new_id(ids.ENROLLMENT),
        sig_pk=SigningKey.generate().verify_key(),
        constraints=_limits(),
        issuer=b.id,
        at=NOW,
    )
    with pytest.raises(CertificateInvalid, match="issuer or vault"):
        certs.verify_enrollment(sign_statement(base, a.sig, a.id), world.directory, now=NOW)
    other_vault = dataclasses.replace(base, issuer=a.id, vault=ids.new_id(ids.VAULT))
    with pytest.raises(CertificateInvalid, match="issuer or vault"):
        certs.verify_enrollment(sign_statement(other_vault, a.sig, a.id), world.directory, now=NOW)


def test_enrollment_garbage(world: Any) -> None:
    for token in (None, "x.y.z", _issue(world)):
        with pytest.raises(CertificateInvalid, match="enrollment does not verify"):
            certs.verify_enrollment(token, world.directory, now=NOW)


def test_issue_enrollment_checks_the_id(world: Any) -> None:
    a = world.approvers[0]
    with pytest.raises(MalformedInput):
        certs.issue_enrollment(
            world.directory, issuer=a.id, key=a.sig, enrollment_id=ids.new_id(ids.CLIENT),
            delegation_key=a.sig.verify_key(), constraints=_limits(), now=NOW,
        )  # fmt: skip


def test_issue_machine_certificate_with_wrong_delegation_key(world: Any) -> None:
    enrollment, _, _ = _enrol(world)
    statement = certs.verify_enrollment(enrollment, world.directory, now=NOW)
    with pytest.raises(ValueError, match="delegation key"):
        certs.issue_machine_certificate(
            statement, delegation_key=SigningKey.generate(), client=_machine(), scopes=[],
            constraints=ClientConstraints(not_after=NOW), now=NOW,
        )  # fmt: skip


def test_issuers_refuse_what_verifiers_would(world: Any) -> None:
    shady = dataclasses.replace(world.client.info, name="ci\x1b]0;root\x07")
    with pytest.raises(MalformedInput, match="control"):
        _issue(world, client=shady)
    with pytest.raises(MalformedInput):
        _issue(world, constraints=ClientConstraints(not_after=NOW, cidrs=("b", "a")))
    with pytest.raises(MalformedInput):
        _enrol(world, projects=("web", "app"))
    enrollment, _, delegation = _enrol(world)
    with pytest.raises(MalformedInput):
        _machine_cert(world, enrollment, delegation, cidrs=("10.1.0.0/16", "10.0.0.0/8"))


def _cert_with_host_pattern(world: Any, pattern: str | None) -> ClientCertificate:
    constraints = ClientConstraints(not_after=NOW + DAY, hostname=pattern)
    token = _issue(world, constraints=constraints)
    return certs.verify_certificate(token, world.directory, now=NOW)


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        (None, None),
        (None, "anything"),
        ("ci-*", "ci-7"),
        ("ci-*.example.com", "CI-7.Example.COM"),
        ("build-1", "build-1"),
    ],
)
def test_context_within_host_pattern(world: Any, pattern: str | None, host: str | None) -> None:
    cert = _cert_with_host_pattern(world, pattern)
    certs.check_context(cert, RequestContext(host=host))


@pytest.mark.parametrize(
    ("pattern", "host"),
    [("ci-*", "ops-laptop"), ("ci-*", None), ("build-1", "build-10"), ("*.example.com", "x.org")],
)
def test_context_outside_host_pattern(world: Any, pattern: str, host: str | None) -> None:
    cert = _cert_with_host_pattern(world, pattern)
    with pytest.raises(CertificateInvalid, match="host is outside"):
        certs.check_context(cert, RequestContext(host=host))
