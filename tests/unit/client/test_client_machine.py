"""`sealbox machine register` driven against a fake relay (httpx.MockTransport).

The fake speaks the relay's wire format; each test scripts what it answers.  Every
signed object in it is made with the real protocol functions.  What the machine must
never accept: a certificate for another key, one no approver of the pinned directory
signed, or a directory other than the one it pinned when it registered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sealbox.client import machine
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.errors import CertificateInvalid, Denied, DirectoryBroken, LoginFailed
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ApproverRecord, ClientConstraints, ClientInfo

SERVER = "http://relay.test"
NOW = 1_800_000_000
TOKEN = "sbx_bt_" + "t" * 43


@dataclass
class Approver:
    record: ApproverRecord
    sig: SigningKey


def _approver(name: str) -> Approver:
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return Approver(record, sig)


@dataclass
class FakeRelay:
    vault: str = field(default_factory=lambda: ids.new_id(ids.VAULT))
    approver: Approver = field(default_factory=lambda: _approver("ana"))
    states: list[str] = field(default_factory=lambda: ["pending", "approved"])
    certify: Callable[[ClientInfo], ClientInfo] = lambda info: info
    signer: Approver | None = None
    """Who signs the certificate handed out (default: the vault's approver)."""
    swap_directory_after_pin: bool = False
    registered: dict[str, Any] = field(default_factory=dict)
    signed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.links = [dirs.genesis_link(self.vault, self.approver.record, self.approver.sig,
                                        now=NOW - 86400)]  # fmt: skip
        self.directory_reads = 0

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def _links(self) -> list[str]:
        self.directory_reads += 1
        if self.swap_directory_after_pin and self.directory_reads > 1:
            other = _approver("mallory")
            return [dirs.genesis_link(self.vault, other.record, other.sig, now=NOW - 86400)]
        return self.links

    def _certificate(self) -> str:
        info = ClientInfo(id=self.registered["client_id"], kind="machine", name="api",
                          sig_pk=VerifyKey.from_text(self.registered["sig_pk"]))  # fmt: skip
        signer = self.signer or self.approver
        links = self.links
        if self.signer is not None:
            links = [dirs.genesis_link(self.vault, signer.record, signer.sig, now=NOW - 86400)]
        directory = dirs.verify_directory(links, pinned=dirs.vault_fingerprint(links[0]))
        return issue_certificate(
            directory, issuer=signer.record.id, key=signer.sig, client=self.certify(info),
            scopes=["items:shop/prod/*", "read"],
            constraints=ClientConstraints(not_after=NOW + 86400), now=NOW,
        )  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/vault":
            return httpx.Response(200, json={"vault": self.vault, "ready": True})
        if path == f"/v1/vaults/{self.vault}/directory":
            return httpx.Response(200, json={"links": self._links(), "head": 0})
        # Every call about the registration is signed by the machine's new key.
        assert "sealbox=" in request.headers.get("signature", "")
        self.signed.append(request.headers["signature-input"])
        if path == f"/v1/vaults/{self.vault}/machine-registrations":
            self.registered = json.loads(request.content)
            return httpx.Response(201, json={
                "vault": self.vault, "client_id": self.registered["client_id"], "name": "api",
                "user_code": "BCDF-GHJK", "expires_at": NOW + 600,
            })  # fmt: skip
        state = self.states.pop(0)
        body: dict[str, Any] = {"state": state, "user_code": "BCDF-GHJK"}
        if state == "approved":
            body["certificate"] = self._certificate()
        return httpx.Response(200, json=body)


def _register(relay: FakeRelay) -> machine.Registered:
    shown: list[machine.RegistrationPrompt] = []
    with relay.http() as http:
        done = machine.register(http, server=SERVER, token=TOKEN, on_prompt=shown.append,
                                sleep=lambda _: None, clock=lambda: NOW)  # fmt: skip
    [prompt] = shown
    assert prompt.user_code == "BCDF-GHJK"
    assert prompt.key_safety_code == done.identity.key.verify_key().safety_code()
    return done


def test_the_machine_sends_only_its_public_key_and_keeps_a_verified_identity() -> None:
    relay = FakeRelay()
    done = _register(relay)
    sent = relay.registered
    assert set(sent) == {"token", "client_id", "sig_pk"}
    assert sent["sig_pk"] == done.identity.key.verify_key().to_text()
    assert done.identity.key.to_text() not in json.dumps(sent)
    assert all(f'keyid="{sent["client_id"]}"' in s for s in relay.signed)
    assert done.identity.fingerprint == dirs.vault_fingerprint(relay.links[0])
    assert (done.identity.client_id, done.identity.kind) == (sent["client_id"], "machine")
    assert done.certificate.scopes == ("items:shop/prod/*", "read")


def test_a_certificate_for_another_key_is_refused() -> None:
    other = SigningKey.generate().verify_key()
    relay = FakeRelay(certify=lambda info: ClientInfo(info.id, "machine", info.name, other))
    with pytest.raises(CertificateInvalid, match="not for this machine"):
        _register(relay)


def test_a_human_certificate_for_its_key_is_refused() -> None:
    relay = FakeRelay(certify=lambda info: ClientInfo(info.id, "human", info.name, info.sig_pk))
    with pytest.raises(CertificateInvalid):
        _register(relay)


def test_a_certificate_no_approver_of_the_pinned_directory_signed_is_refused() -> None:
    relay = FakeRelay(signer=_approver("mallory"))
    with pytest.raises(CertificateInvalid):
        _register(relay)


def test_a_directory_other_than_the_pinned_one_is_refused() -> None:
    with pytest.raises(DirectoryBroken):
        _register(FakeRelay(swap_directory_after_pin=True))


@pytest.mark.parametrize(("state", "error"), [("denied", Denied), ("expired", LoginFailed)])
def test_a_denied_or_expired_registration_ends_without_an_identity(
    state: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        _register(FakeRelay(states=["pending", state]))


def test_a_token_that_is_not_one_is_refused_before_any_call() -> None:
    relay = FakeRelay()
    with relay.http() as http, pytest.raises(Exception, match="sbx_bt_"):
        machine.register(http, server=SERVER, token="sbx_at_nope", on_prompt=lambda _: None)
    assert relay.registered == {}
