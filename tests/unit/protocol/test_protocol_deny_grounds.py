"""A deny's optional ``grounds``: an approver's signed refusal of a request that does not verify."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sealbox.crypto.encoding import b64u_decode, parse_canonical_json
from sealbox.errors import MalformedInput, SignatureInvalid
from sealbox.protocol import access as ac
from sealbox.protocol.statements import DENY_UNVERIFIABLE, DenyStatement, sign_statement

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def m1(world: Any) -> Any:
    return world.store({"user": b"app"}, threshold=1)


def _payload(token: str) -> dict[str, Any]:
    parsed = parse_canonical_json(b64u_decode(token.split(".")[1]))
    assert isinstance(parsed, dict)
    return parsed


def test_a_refusal_is_signed_with_its_grounds_and_verifies(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[1]
    token = ac.deny(
        request.hash, directory=world.directory, approver=a.id, key=a.sig,
        reason="the request does not verify: signature_invalid", now=NOW,
        grounds=DENY_UNVERIFIABLE,
    )  # fmt: skip
    statement = ac.verify_deny(token, directory=world.directory, request_hash=request.hash)
    assert statement == DenyStatement(
        vault=world.vault, request=request.hash, approver=a.id,
        reason="the request does not verify: signature_invalid", at=NOW, grounds="unverifiable",
    )  # fmt: skip
    assert _payload(token)["grounds"] == "unverifiable"


def test_a_decided_deny_carries_no_grounds_key(world: Any, m1: Any) -> None:
    # Absent rather than null: a deny signed before the key existed reads the same today.
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    token = ac.deny(request.hash, directory=world.directory, approver=a.id, key=a.sig,
                    reason="not now", now=NOW)  # fmt: skip
    assert "grounds" not in _payload(token)
    statement = ac.verify_deny(token, directory=world.directory, request_hash=request.hash)
    assert statement.grounds is None


DENY = DenyStatement(
    vault="vlt_" + "a" * 26, request="sha256:" + "A" * 43, approver="apv_" + "c" * 26,
    reason="the request does not verify: manifest_mismatch", at=NOW, grounds="unverifiable",
)  # fmt: skip


def test_round_trip_with_and_without_grounds() -> None:
    assert DenyStatement.from_json(DENY.to_json()) == DENY
    decided = dataclasses.replace(DENY, grounds=None)
    assert set(decided.to_json()) == {"vault", "request", "approver", "reason", "at"}
    assert DenyStatement.from_json(decided.to_json()) == decided


@pytest.mark.parametrize(
    "grounds",
    [None, "", "Unverifiable", "unverifiable ", "tampered", 1, True, ["unverifiable"],
     {"code": "unverifiable"}],
)  # fmt: skip
def test_grounds_other_than_the_one_allowed_value_are_refused(grounds: object) -> None:
    value = dict(DENY.to_json(), grounds=grounds)
    with pytest.raises(MalformedInput, match=r"deny\.grounds"):
        DenyStatement.from_json(value)


def test_signing_refuses_grounds_a_verifier_would_refuse(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    with pytest.raises(MalformedInput):
        ac.deny(request.hash, directory=world.directory, approver=a.id, key=a.sig,
                reason="x", now=NOW, grounds="because")  # fmt: skip


def test_grounds_are_covered_by_the_signature(world: Any, m1: Any) -> None:
    # A relay that adds (or strips) the grounds of a signed deny breaks its signature.
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    decided = DenyStatement(vault=world.vault, request=request.hash, approver=a.id,
                            reason="not now", at=NOW)  # fmt: skip
    token = sign_statement(decided, a.sig, a.id)
    header, _, signature = token.split(".")
    refused = sign_statement(dataclasses.replace(decided, grounds="unverifiable"), a.sig, a.id)
    forged = ".".join((header, refused.split(".")[1], signature))
    with pytest.raises(SignatureInvalid):
        ac.verify_deny(forged, directory=world.directory, request_hash=request.hash)
