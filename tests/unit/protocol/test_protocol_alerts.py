"""Alerts, pure: the webhook signature recipe, the retry schedule, what a target selects."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from sealbox.alerts import SIGNATURE_HEADER, verify_webhook
from sealbox.errors import InvalidInput, SignatureInvalid
from sealbox.protocol import alerts

SECRET = "whsec_" + "A" * 43
BODY = json.dumps({"action": "canary.read", "severity": "critical"}).encode()
T = 1_800_000_000


def test_the_recipe_is_hmac_sha256_over_timestamp_dot_body() -> None:
    # Written out as docs/protocol.md tells a receiver in any language to do it.
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert alerts.signature_header(SECRET, BODY, T) == f"t={T},v1={expected}"
    assert SIGNATURE_HEADER == "X-Sealbox-Signature"


def test_a_good_signature_verifies_within_the_window_and_returns_its_time() -> None:
    header = alerts.signature_header(SECRET, BODY, T)
    assert verify_webhook(SECRET, BODY, header, now=T) == T
    assert verify_webhook(SECRET, BODY, header, now=T + 300) == T
    assert verify_webhook(SECRET, BODY, header, now=T - 300) == T


@pytest.mark.parametrize("now", [T + 301, T - 301, T + 86400])
def test_a_replay_outside_the_window_is_refused(now: int) -> None:
    header = alerts.signature_header(SECRET, BODY, T)
    with pytest.raises(SignatureInvalid, match="replay window"):
        verify_webhook(SECRET, BODY, header, now=now)


def test_a_changed_body_another_secret_or_a_moved_timestamp_is_refused() -> None:
    header = alerts.signature_header(SECRET, BODY, T)
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_webhook(SECRET, BODY + b" ", header, now=T)
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_webhook("whsec_other", BODY, header, now=T)
    moved = header.replace(f"t={T}", f"t={T + 60}")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_webhook(SECRET, BODY, moved, now=T + 60)


def test_another_scheme_beside_v1_is_skipped_and_any_matching_v1_is_enough() -> None:
    good = alerts.sign(SECRET, BODY, T)
    header = f"t={T},v0=abc,v1={'0' * 64},v1={good}"
    assert alerts.verify(SECRET, BODY, header, now=T) == T


@pytest.mark.parametrize(
    "header",
    [
        "", "garbage", f"v1={'0' * 64}", f"t={T}", f"t={T},t={T},v1={'0' * 64}",
        f"t=-{T},v1={'0' * 64}", f"t={T};v1=00", f"t={T},v1={'0' * 64}," + "x" * 1100,
        f"t=1e9,v1={'0' * 64}",
    ],
)  # fmt: skip
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureInvalid):
        alerts.verify(SECRET, BODY, header, now=T)


def test_backoff_is_exponential_with_full_jitter_and_a_cap() -> None:
    base, cap = 10.0, 3600.0
    highest = [alerts.backoff_seconds(n, base=base, cap=cap, random=lambda: 0.999999)
               for n in range(1, 12)]  # fmt: skip
    ceilings = [min(cap, base * 2 ** (n - 1)) for n in range(1, 12)]
    assert highest == pytest.approx([c * 0.999999 for c in ceilings])
    assert ceilings[:4] == [10, 20, 40, 80]
    assert ceilings[-1] == cap
    # Full jitter: anywhere from 0 to the ceiling, never above it.
    assert alerts.backoff_seconds(3, base=base, cap=cap, random=lambda: 0.0) == 0.0
    assert alerts.backoff_seconds(3, base=base, cap=cap, random=lambda: 0.5) == 20.0
    assert alerts.backoff_seconds(0, base=base, cap=cap, random=lambda: 0.5) == 0.0
    # A very long run of failures stays at the cap (no overflow).
    assert alerts.backoff_seconds(10_000, base=base, cap=cap, random=lambda: 0.5) == 1800.0


def test_backoff_draws_stay_within_bounds_for_real_randomness() -> None:
    import random

    draw = random.Random(7).random
    for failures in range(1, 15):
        ceiling = min(60.0, 0.5 * 2 ** (failures - 1))
        for _ in range(200):
            assert 0 <= alerts.backoff_seconds(failures, base=0.5, cap=60.0, random=draw) < ceiling


@pytest.mark.parametrize(
    ("patterns", "least", "action", "severity", "selected"),
    [
        ((), "alert", "canary.read", "critical", True),
        ((), "alert", "requests.storm", "alert", True),
        ((), "alert", "item.stored", "info", False),
        (("canary.*",), "info", "canary.read", "critical", True),
        (("canary.*",), "info", "canaryx.read", "critical", False),
        (("canary*",), "info", "canaryx.read", "critical", True),
        (("item.rotation_due",), "info", "item.rotation_due", "alert", True),
        (("item.rotation_due",), "info", "item.rotation", "alert", False),
        (("*",), "warning", "alert.target_removed", "warning", True),
        (("*",), "warning", "network.allowed", "notice", False),
        (("canary.*", "requests.storm"), "critical", "requests.storm", "alert", False),
        ((), "info", "anything", "unknown-severity", False),
    ],
)  # fmt: skip
def test_what_a_target_selects(
    patterns: tuple[str, ...], least: str, action: str, severity: str, selected: bool
) -> None:
    assert alerts.selects(patterns, least, action, severity) is selected


@pytest.mark.parametrize(
    "bad", ["", "Canary.*", "canary.**", "*.read", "canary .read", "a\nb", "x" * 65, "%", 5]
)
def test_bad_patterns_and_severities_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        alerts.check_patterns([bad])
    with pytest.raises(InvalidInput):
        alerts.check_severity(bad)


def test_patterns_are_deduplicated_and_limited() -> None:
    assert alerts.check_patterns(["canary.*", "canary.*", "*"]) == ("canary.*", "*")
    with pytest.raises(InvalidInput):
        alerts.check_patterns([f"a{i}" for i in range(33)])


@pytest.mark.parametrize(
    "stamp", ["\u00b2", "\u0661\u0662\u0663", "\uff11\uff12", "1\u00b2", "\U0001d7d9"]
)
def test_a_timestamp_of_non_ascii_digits_is_malformed_not_a_crash(stamp: str) -> None:
    header = f"t={stamp},v1={'0' * 64}"
    with pytest.raises(SignatureInvalid, match="timestamp is malformed"):
        alerts.verify(SECRET, BODY, header, now=T)
    with pytest.raises(SignatureInvalid):
        verify_webhook(SECRET, BODY, header, now=T)
