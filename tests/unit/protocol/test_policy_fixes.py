"""What a signed policy may say so that every approver can evaluate it: bounded destroy dates,
zones every system means the same by; and what an approver does when it cannot."""

from __future__ import annotations

import pytest

from sealbox.errors import MalformedInput, VerificationError
from sealbox.protocol.policies import PolicyUnreadable, check_policy, describe
from sealbox.protocol.policy_rules import MAX_DESTROY_AT, parse_window, zones
from sealbox.protocol.statements import PolicyStatement

BASE = PolicyStatement(
    vault="vlt_" + "a" * 26, approver="apv_" + "b" * 26, pattern="app/prod/*",
    approvers=("apv_" + "b" * 26,), threshold=1, expiry_seconds=300, max_cache_seconds=0,
    store_needs_approval=True, cidrs=(), hours=(), max_reads=None, cosigner=None,
    destroy_at=None, rotate_after=None, at=1_700_000_000,
)  # fmt: skip


@pytest.mark.parametrize(
    "zone", ["localtime", "posixrules", "Factory", "posix/Europe/Berlin", "right/UTC"]
)
def test_local_aliases_and_posix_or_right_copies_are_not_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        parse_window(f"mon 09:00-10:00 {zone}")
    assert zone not in zones()


def test_real_zones_still_are() -> None:
    assert parse_window("mon 09:00-10:00 Europe/Berlin").zone == "Europe/Berlin"
    assert "UTC" in zones()


def test_a_destroy_date_past_year_9999_is_malformed() -> None:
    fine = {**BASE.to_json(), "destroy_at": MAX_DESTROY_AT}
    assert PolicyStatement.from_json(fine).destroy_at == MAX_DESTROY_AT
    with pytest.raises(MalformedInput):
        PolicyStatement.from_json({**fine, "destroy_at": MAX_DESTROY_AT + 1})


def test_an_unreadable_policy_is_a_verification_error_not_a_crash() -> None:
    # Built directly (as a hostile signer could, if a reader let it through).
    far = BASE.__class__(**{**BASE.__dict__, "destroy_at": 2**53 - 1})
    with pytest.raises(PolicyUnreadable) as raised:
        describe(far)
    assert isinstance(raised.value, VerificationError)
    unknown = BASE.__class__(**{**BASE.__dict__, "hours": ("mon 09:00-10:00 Nowhere/Land",)})
    with pytest.raises(PolicyUnreadable):
        check_policy(unknown, "app/prod/db", 1_700_000_000)
