"""Alerts, sans I/O: which events a target selects, the webhook signature, the retry schedule.

Everything here is pure: the current time and the randomness are arguments,
so the relay's delivery loop, the tests and a receiver verifying a webhook all
run the same code.  The public entry point for receivers is
:func:`sealbox.alerts.verify_webhook`.

The signature (``X-Sealbox-Signature: t=<unix seconds>,v1=<hex>``) is
HMAC-SHA256, keyed with the webhook's secret as text, over
``"<t>." + body`` (the exact bytes received): the timestamp is signed with the
body, so a captured delivery replayed later fails the receiver's window.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import Final

from sealbox.errors import InvalidInput, SignatureInvalid
from sealbox.protocol.severities import SEVERITIES

__all__ = [
    "DEFAULT_MIN_SEVERITY",
    "SEVERITY_ORDER",
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "backoff_seconds",
    "check_patterns",
    "check_severity",
    "selects",
    "sign",
    "signature_header",
    "verify",
]

SIGNATURE_HEADER: Final = "X-Sealbox-Signature"
#: How far a signature's timestamp may be from the receiver's clock (either way).
TOLERANCE_SECONDS: Final = 300
#: Severities, least to most severe (the audit log's).
SEVERITY_ORDER: Final = SEVERITIES
#: What a target selects when it names neither actions nor a severity.
DEFAULT_MIN_SEVERITY: Final = "alert"
#: Most action patterns one target may name.
MAX_PATTERNS: Final = 32

# An action ("canary.read"), a prefix ending in "*" ("canary.*"), or "*" alone.  Lowercase
# letters, digits, "_" and "." only: nothing a log line or a header would have to escape.
_PATTERN = re.compile(r"\*|[a-z0-9_]+(?:\.[a-z0-9_]+)*(?:\.\*)?|[a-z0-9_]+\*")
# One header element: "t=<digits>" or "v1=<64 lowercase hex>" (other schemes are skipped,
# so a later scheme can be sent beside v1 without breaking today's receivers).
_ELEMENT = re.compile(r"([a-z0-9]+)=([^,]*)")
_DIGITS = re.compile(r"[0-9]{1,12}")


def check_severity(value: object) -> str:
    """``value`` if it is a severity; :class:`InvalidInput` otherwise."""
    if not isinstance(value, str) or value not in SEVERITY_ORDER:
        raise InvalidInput(f"a severity is one of {', '.join(SEVERITY_ORDER)}")
    return value


def check_patterns(values: Sequence[object]) -> tuple[str, ...]:
    """Action patterns, each an action, a prefix ending in ``*``, or ``*``; deduplicated."""
    if len(values) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} action patterns")
    found: list[str] = []
    for value in values:
        if not isinstance(value, str) or len(value) > 64 or not _PATTERN.fullmatch(value):
            raise InvalidInput(
                "an action pattern is an action (canary.read), a prefix ending in * "
                "(canary.*), or * for every action"
            )
        found.append(value)
    return tuple(dict.fromkeys(found))


def _matches(pattern: str, action: str) -> bool:
    if pattern.endswith("*"):
        return action.startswith(pattern[:-1])
    return action == pattern


def selects(patterns: Sequence[str], min_severity: str, action: str, severity: str) -> bool:
    """Whether a target with these ``patterns`` and ``min_severity`` wants this event.

    Both criteria must hold: the action matches one pattern (no patterns: any
    action) and the severity is at least ``min_severity``.
    """
    if patterns and not any(_matches(p, action) for p in patterns):
        return False
    try:
        return SEVERITY_ORDER.index(severity) >= SEVERITY_ORDER.index(min_severity)
    except ValueError:
        return False


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Sealbox-Signature`` value for ``body`` sent at ``timestamp``."""
    return f"t={int(timestamp)},v1={sign(secret, body, timestamp)}"


def verify(
    secret: str, body: bytes, header: str, *, now: int, tolerance: int = TOLERANCE_SECONDS
) -> int:
    """Check a webhook's signature header against ``body``; return its timestamp.

    Raises :class:`SignatureInvalid` when the header is malformed, no ``v1``
    signature matches (compared in constant time), or the timestamp is more
    than ``tolerance`` seconds from ``now`` (a replayed delivery).
    """
    if not isinstance(header, str) or len(header) > 1024:
        raise SignatureInvalid("the signature header is missing or too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        element = _ELEMENT.fullmatch(part.strip())
        if element is None:
            raise SignatureInvalid("the signature header is malformed")
        key, value = element.groups()
        if key == "t":
            # One timestamp, digits only: "t=1,t=2" or "t=-5" could pick the window to check.
            # ASCII digits: str.isdigit() also takes "²", which int() then refuses.
            if timestamp is not None or not _DIGITS.fullmatch(value):
                raise SignatureInvalid("the signature header's timestamp is malformed")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid("the signature header needs t= and v1=")
    expected = sign(secret, body, timestamp)
    # Every candidate is compared (no early exit): how many there were is all that leaks.
    good = False
    for candidate in candidates:
        good |= hmac.compare_digest(candidate.encode("ascii", "replace"), expected.encode())
    if not good:
        raise SignatureInvalid("the webhook signature does not match its body")
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid("the webhook signature is outside the replay window")
    return timestamp


def backoff_seconds(
    failures: int, *, base: float, cap: float, random: Callable[[], float]
) -> float:
    """How long to wait before the next try after ``failures`` failures in a row.

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base *
    2**(failures - 1)))``, ``random`` giving a float in ``[0, 1)``.  Full jitter
    spreads the retries of many targets that failed at once (a receiver that
    was down) instead of having them all come back together.
    """
    if failures < 1:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 62))
    return float(ceiling * random())
