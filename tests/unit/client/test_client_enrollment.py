"""A runner enrolling itself trusts nothing the relay says: the flow against a scripted relay.

The directory must verify from the token's pinned fingerprint; the enrollment
statement must be the token's (its id, its delegation key) and signed by a
current approver; the certificate the runner signs stays within it; and the
relay must register this very client.  Both enrollment calls are signed with
the delegation key, keyid = the enrollment id.
"""

from __future__ import annotations

from typing import Any

import pytest

from sealbox._relay.calls import Call, Reply
from sealbox.client.enrollment import Enrolled, enrol_flow
from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, parse_canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import BindingMismatch, CertificateInvalid, DirectoryBroken, RelayRefused
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_enrollment, verify_chain
from sealbox.protocol.enrollment_token import EnrollmentToken
from sealbox.protocol.statements import ApproverRecord, EnrollmentConstraints

NOW = 1_800_000_000


class Vault:
    def __init__(self) -> None:
        self.sig = SigningKey.generate()
        self.record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal", tier="device",
            hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=self.sig.verify_key(),
        )  # fmt: skip
        self.id = ids.new_id(ids.VAULT)
        self.links = [dirs.genesis_link(self.id, self.record, self.sig, now=NOW - 100)]
        self.directory = dirs.verify_directory(self.links, pinned=self.fingerprint)

    @property
    def fingerprint(self) -> str:
        return dirs.vault_fingerprint(self.links[0])

    def enrollment(self, delegation: SigningKey, enrollment_id: str, **kw: Any) -> str:
        limits = {
            "projects": ("shop",),
            "items": ("shop/ci/*",),
            "max_uses": 5,
            "not_after": NOW + 1800,
            "cidrs": ("10.0.0.0/8",),
            "hostname": "runner-*",
        }
        limits.update(kw)  # fmt: skip
        return issue_enrollment(
            self.directory, issuer=self.record.id, key=self.sig, enrollment_id=enrollment_id,
            delegation_key=delegation.verify_key(),
            constraints=EnrollmentConstraints(**limits),  # type: ignore[arg-type]
            now=NOW - 50,
        )  # fmt: skip


def _token(vault: Vault) -> EnrollmentToken:
    return EnrollmentToken(server="http://relay.test", vault=vault.id,
                           fingerprint=vault.fingerprint, enrollment=ids.new_id(ids.ENROLLMENT),
                           key=SigningKey.generate())  # fmt: skip


def _run(token: EnrollmentToken, replies: dict[str, Any], **kw: Any) -> tuple[Any, list[Call]]:
    """Drive the flow; ``replies`` by the call's last path segment (a callable gets the call)."""
    calls: list[Call] = []
    flow = enrol_flow(token, now=NOW, hostname="runner-7", **kw)
    reply: Reply | None = None
    try:
        while True:
            call = flow.send(reply) if reply is not None else next(flow)  # type: ignore[arg-type]
            calls.append(call)
            answer = replies[call.path.rsplit("/", 1)[1]]
            reply = answer(call) if callable(answer) else answer
    except StopIteration as done:
        return done.value, calls


def _registered(call: Call) -> Reply:
    """The relay registers the client the certificate names."""
    assert jws.read_header(call.json["certificate"]).typ == "sealbox.client.v1"
    cert = parse_canonical_json(b64u_decode(call.json["certificate"].split(".")[1]))
    return Reply(201, {"client_id": cert["client"]["id"], "grants": ["shop/ci/*"]})


def test_a_runner_certifies_itself_within_the_enrollment() -> None:
    vault = Vault()
    token = _token(vault)
    statement = vault.enrollment(token.key, token.enrollment)
    enrolled, calls = _run(token, {
        "directory": Reply(200, {"links": vault.links}),
        "statement": Reply(200, {"statement": statement}),
        "machines": _registered,
    }, ttl=3600)  # fmt: skip
    assert isinstance(enrolled, Enrolled)
    assert [c.method for c in calls] == ["GET", "GET", "POST"]
    assert calls[0].auth is False  # the directory is public; the enrollment calls are signed
    assert all(c.auth for c in calls[1:])
    assert calls[2].json["hostname"] == "runner-7"
    cert, enrollment = verify_chain(enrolled.certificate, vault.directory, now=NOW,
                                    enrollment=statement)  # fmt: skip
    assert enrollment is not None
    assert enrollment.id == token.enrollment
    assert cert.client.kind == "machine"
    assert cert.client.sig_pk == enrolled.key.verify_key()
    assert cert.scopes == ("items:shop/ci/*", "read")
    # An hour was asked; the enrollment ends in 30 minutes: the certificate ends with it.
    assert cert.constraints.not_after == NOW + 1800 == enrolled.not_after
    assert (cert.constraints.cidrs, cert.constraints.hostname) == (("10.0.0.0/8",), "runner-*")
    assert enrolled.enrollment_issuer == vault.record.id
    assert enrolled.grants == ("shop/ci/*",)
    assert token.key.to_text() not in repr(enrolled)


def test_a_relay_cannot_swap_what_the_runner_certifies_under() -> None:
    vault = Vault()
    token = _token(vault)
    good = vault.enrollment(token.key, token.enrollment)
    other_id = vault.enrollment(token.key, ids.new_id(ids.ENROLLMENT))
    other_key = vault.enrollment(SigningKey.generate(), token.enrollment)
    stranger = Vault()
    base = {"directory": Reply(200, {"links": vault.links}), "machines": _registered}
    cases = [
        ({**base, "directory": Reply(200, {"links": stranger.links})}, DirectoryBroken),
        ({**base, "statement": Reply(200, {"statement": other_id})}, BindingMismatch),
        ({**base, "statement": Reply(200, {"statement": other_key})}, CertificateInvalid),
        ({**base, "statement": Reply(200, {"statement": stranger.enrollment(
            token.key, token.enrollment)})}, CertificateInvalid),
        ({**base, "statement": Reply(200, {"statement": good}),
          "machines": Reply(201, {"client_id": ids.new_id(ids.CLIENT)})}, BindingMismatch),
        ({**base, "statement": Reply(403, {"error": "enrollment_revoked", "message": "revoked",
                                           "hint": "Ask for a new one."})}, RelayRefused),
    ]  # fmt: skip
    for replies, error in cases:
        with pytest.raises(error):
            _run(token, replies)


def test_the_lifetime_is_bounded() -> None:
    vault = Vault()
    token = _token(vault)
    for ttl in (59, 86401):
        with pytest.raises(ValueError, match="between 1 minute and 1 day"):
            _run(token, {"directory": Reply(200, {"links": vault.links})}, ttl=ttl)
