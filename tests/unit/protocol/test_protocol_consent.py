"""Per-action consent: issue, verify, and every way a consent must not transfer."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sealbox.crypto import jws
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    Expired,
    MalformedInput,
    NotAuthorized,
    SignatureInvalid,
)
from sealbox.protocol import consent as cs
from sealbox.protocol import ids
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.statements import ConsentStatement, sign_statement

NOW = 1_800_000_000
DETAILS = {"service": "api", "image": "api:1.4.2", "replicas": 3}


def _issue(world: Any, **kw: Any) -> str:
    a = world.approvers[kw.pop("by", 0)]
    args: dict[str, Any] = {
        "approver": a.id, "key": a.sig, "action": "deploy", "details": DETAILS,
        "client": world.client.id, "scope": "prod", "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return cs.issue_consent(world.directory, **args)


def _verify(world: Any, token: str, **kw: Any) -> ConsentStatement:
    args: dict[str, Any] = {
        "directory": world.directory, "action": "deploy", "details": DETAILS,
        "client": world.client.id, "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return cs.verify_consent(token, **args)


def test_consent_round_trip(world: Any) -> None:
    consent = _verify(world, _issue(world))
    assert consent.action == "deploy"
    assert consent.details == cs.consent_details_hash(DETAILS)
    assert (consent.at, consent.exp) == (NOW, NOW + 300)


def test_details_hash_ignores_key_order_but_not_values() -> None:
    reordered = dict(reversed(list(DETAILS.items())))
    assert cs.consent_details_hash(reordered) == cs.consent_details_hash(DETAILS)
    assert cs.consent_details_hash({**DETAILS, "replicas": 4}) != cs.consent_details_hash(DETAILS)


def test_details_outside_canonical_json_are_refused() -> None:
    with pytest.raises(MalformedInput):
        cs.consent_details_hash({"ratio": 0.5})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"action": "rollback"}, BindingMismatch),
        ({"details": {**DETAILS, "replicas": 30}}, BindingMismatch),
        ({"client": ids.new_id(ids.CLIENT)}, BindingMismatch),
        ({"now": NOW + 301}, Expired),
        ({"now": NOW - CLOCK_SKEW - 1}, Expired),
    ],
    ids=["other-action", "other-details", "other-client", "expired", "future"],
)
def test_consent_does_not_transfer(world: Any, change: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        _verify(world, _issue(world), **change)


def test_consent_from_a_non_member_or_forged(world: Any) -> None:
    token = _issue(world)
    forged = jws.sign(SigningKey.generate(), "sealbox.consent.v1", world.approvers[0].id, {})
    with pytest.raises(SignatureInvalid):
        _verify(world, forged)
    outsider = ids.new_id(ids.APPROVER)
    with pytest.raises(NotAuthorized):
        _verify(world, jws.sign(SigningKey.generate(), "sealbox.consent.v1", outsider, {}))
    # The honest token still verifies.
    assert _verify(world, token).approver == world.approvers[0].id


def test_consent_signed_for_another_vault_or_approver(world: Any) -> None:
    a = world.approvers[0]
    good = _verify(world, _issue(world))
    other_vault = dataclasses.replace(good, vault=ids.new_id(ids.VAULT))
    with pytest.raises(BindingMismatch, match="vault"):
        _verify(world, sign_statement(other_vault, a.sig, a.id))
    other_approver = dataclasses.replace(good, approver=world.approvers[1].id)
    with pytest.raises(BindingMismatch, match="approver"):
        _verify(world, sign_statement(other_approver, a.sig, a.id))


def test_consent_with_too_long_or_inverted_window(world: Any) -> None:
    a = world.approvers[0]
    good = _verify(world, _issue(world))
    for exp in (NOW + cs.MAX_CONSENT_TTL + 1, NOW - 1):
        token = sign_statement(dataclasses.replace(good, exp=exp), a.sig, a.id)
        with pytest.raises(MalformedInput, match="validity window"):
            _verify(world, token)


def test_issue_refuses_wrong_key_and_bad_ttl(world: Any) -> None:
    with pytest.raises(ValueError, match="directory key"):
        _issue(world, key=SigningKey.generate())
    for ttl in (0, cs.MAX_CONSENT_TTL + 1):
        with pytest.raises(ValueError, match="ttl"):
            _issue(world, ttl=ttl)
    with pytest.raises(MalformedInput):
        _issue(world, action="deploy\x1b[2K")
