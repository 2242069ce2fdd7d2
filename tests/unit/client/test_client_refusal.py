"""How a client reads a denied request: a decided deny, or a refusal of a tampered request."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sealbox.client import _flows as flows
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import BindingMismatch, Denied, RefusedByApprover, VerificationError
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import deny
from sealbox.protocol.statements import DENY_UNVERIFIABLE, ApproverRecord

NOW = 1_800_000_000
REQUEST = b64u_encode(hashlib.sha256(b"a request").digest())


@pytest.fixture(scope="module")
def vault() -> tuple[dirs.Directory, ApproverRecord, SigningKey]:
    sig = SigningKey.generate()
    record = ApproverRecord(id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal",
                            tier="device", hpke_pk=HpkePrivateKey.generate().public_key(),
                            sig_pk=sig.verify_key())  # fmt: skip
    link0 = dirs.genesis_link(ids.new_id(ids.VAULT), record, sig, now=NOW)
    directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
    return directory, record, sig


def _read(directory: dirs.Directory, token: str, request: str = REQUEST) -> None:
    status: dict[str, Any] = {"state": "denied", "deny": token}
    next(flows._refusal(None, status, request, directory))  # type: ignore[arg-type]


def _deny(vault: Any, *, reason: str, grounds: str | None = None, request: str = REQUEST) -> str:
    directory, record, sig = vault
    return deny("sha256:" + request, directory=directory, approver=record.id, key=sig,
                reason=reason, now=NOW, grounds=grounds)  # fmt: skip


def test_a_refusal_of_an_unverifiable_request_says_the_relay_may_be_tampering(vault: Any) -> None:
    token = _deny(vault, reason="the request does not verify: signature_invalid",
                  grounds=DENY_UNVERIFIABLE)  # fmt: skip
    with pytest.raises(RefusedByApprover) as caught:
        _read(vault[0], token)
    message = caught.value.message
    assert f"approver {vault[1].id} refused the request" in message
    assert "does not verify" in message
    assert "signature_invalid" in message
    assert "may be tampering" in message
    # A verification failure: the CLI exits 5, as for anything else that does not verify.
    assert isinstance(caught.value, VerificationError)
    assert caught.value.code == "refused_unverifiable"


def test_a_decided_deny_is_still_a_denial(vault: Any) -> None:
    with pytest.raises(Denied, match="not during the freeze") as caught:
        _read(vault[0], _deny(vault, reason="not during the freeze"))
    assert not isinstance(caught.value, VerificationError)


def test_a_refusal_of_another_request_is_not_taken(vault: Any) -> None:
    other = b64u_encode(hashlib.sha256(b"another request").digest())
    token = _deny(vault, reason="the request does not verify: binding_mismatch",
                  grounds=DENY_UNVERIFIABLE, request=other)  # fmt: skip
    with pytest.raises(BindingMismatch, match="another request"):
        _read(vault[0], token)
