"""The policy-axis options shared by ``sealbox approver policy`` and ``sealbox policy set``.

Checked here as strictly as the relay checks them (the same parser,
:mod:`sealbox.protocol.policy_rules`), so a typo is a usage error (exit 2)
before anything is sent.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sealbox.cli import exits
from sealbox.errors import MalformedInput
from sealbox.protocol import policy_rules

__all__ = ["EPILOG", "add_axis_options", "axis_body", "describe", "parse_destroy_at", "sign"]

EPILOG = """\
Time windows (--hours, repeatable; a request must fall in one of them):
  DAYS HH:MM-HH:MM ZONE, e.g. "mon-fri 09:00-18:00 Europe/Berlin".  DAYS is a day
  (mon..sun), a range (mon-fri; fri-mon wraps) or a comma list (mon,wed,fri-sun).
  Wall-clock times in the named IANA zone (daylight saving time is followed),
  00:00 to 24:00, start before end; over midnight, give two windows.
Read-rate cap (--max-reads): N/PERIOD, e.g. 10/h, 3/15m, 100/1d: at most N access
  requests per item in any sliding PERIOD (over: 429 with Retry-After).
Co-signer (--cosigner apv_...): one of --approvers who must release too, on top of
  --threshold others.
Destroy date (--destroy-at): ISO 8601 with a zone, e.g. 2027-01-31T18:00+01:00 or
  2027-01-31T17:00Z; from then on requests are refused (410) and the relay deletes
  the items' versions and blobs.
Rotate after (--rotate-after N): after N releases of an item's latest version it is
  marked as due for rotation and an alert is audited; a new version clears it.
"""


def add_axis_options(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--hours", action="append", default=[], metavar="WINDOW",
                        help='a time window, e.g. "mon-fri 09:00-18:00 Europe/Berlin" '
                        "(repeatable; default: any time)")  # fmt: skip
    parser.add_argument("--max-reads", metavar="N/PERIOD",
                        help="read-rate cap per item, e.g. 10/h (default: none)")  # fmt: skip
    parser.add_argument("--cosigner", metavar="APV_ID",
                        help="an approver that must release on top of the threshold")  # fmt: skip
    parser.add_argument("--destroy-at", metavar="WHEN",
                        help="destroy the items at this ISO 8601 time, e.g. "
                        "2027-01-31T18:00+01:00")  # fmt: skip
    parser.add_argument("--rotate-after", type=int, metavar="N",
                        help="mark an item as due for rotation after N releases")  # fmt: skip


def parse_destroy_at(text: str, now: float | None = None) -> int:
    """An ISO 8601 time with a zone offset (or Z), in the future, as Unix seconds."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise exits.UsageError(
            f"--destroy-at {text!r} is not an ISO 8601 time (e.g. 2027-01-31T18:00+01:00)"
        ) from None
    if when.tzinfo is None:
        raise exits.UsageError(
            "--destroy-at needs a zone offset, e.g. 2027-01-31T18:00+01:00 or 2027-01-31T17:00Z"
        )
    at = int(when.timestamp())
    if at <= (time.time() if now is None else now):
        raise exits.UsageError("--destroy-at must lie in the future")
    return at


def axis_body(args: argparse.Namespace) -> dict[str, Any]:
    """The axes as the relay's policy body takes them; a usage error for a malformed one."""
    # An empty value is a mistake (an unset shell variable, say), never "off": refused.
    for flag, value in (("--max-reads", args.max_reads), ("--destroy-at", args.destroy_at),
                        ("--cosigner", args.cosigner)):  # fmt: skip
        if value is not None and not value.strip():
            raise exits.UsageError(f"{flag} is empty: give a value, or leave the option out")
    try:
        hours = [w.text() for w in policy_rules.parse_windows(args.hours)]
        rate = policy_rules.parse_rate(args.max_reads) if args.max_reads is not None else None
    except ValueError as exc:
        raise exits.UsageError(str(exc)) from None
    if args.rotate_after is not None and args.rotate_after < 1:
        raise exits.UsageError("--rotate-after must be at least 1")
    return {
        "hours": hours, "max_reads": rate.text() if rate else None, "cosigner": args.cosigner,
        "destroy_at": parse_destroy_at(args.destroy_at) if args.destroy_at is not None else None,
        "rotate_after": args.rotate_after,
    }  # fmt: skip


def _utc(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def describe(policy: Mapping[str, Any]) -> list[str]:
    """One line per axis that is set, as the relay reported the policy."""
    lines = []
    if policy.get("cidrs"):
        lines.append(f"Asked for only from: {', '.join(policy['cidrs'])}")
    if policy.get("hours"):
        lines.append(f"Asked for only within: {'; '.join(policy['hours'])}")
    if policy.get("max_reads"):
        lines.append(f"At most {policy['max_reads']} access requests per item")
    if policy.get("cosigner"):
        lines.append(f"Co-signed by {policy['cosigner']} (on top of the threshold)")
    if policy.get("destroy_at"):
        lines.append(f"Destroyed at {_utc(int(policy['destroy_at']))}")
    if policy.get("rotate_after"):
        lines.append(f"Due for rotation after {policy['rotate_after']} release(s)")
    return lines


def sign(session: Any, body: Mapping[str, Any]) -> str:
    """The ``sealbox.policy.v1`` this approver signs over exactly the policy ``body`` sets."""
    from sealbox.protocol.policies import sign_policy
    from sealbox.protocol.statements import PolicyStatement

    keys = session.keys
    try:
        statement = PolicyStatement(
            vault=session.directory().vault, approver=keys.record.id, pattern=body["pattern"],
            approvers=tuple(sorted(set(body["approvers"]))), threshold=body["threshold"],
            expiry_seconds=body["expiry_seconds"], max_cache_seconds=body["max_cache_seconds"],
            store_needs_approval=body["store_needs_approval"],
            cidrs=tuple(sorted(set(body["cidrs"]))), hours=tuple(body["hours"]),
            max_reads=body["max_reads"], cosigner=body["cosigner"],
            destroy_at=body["destroy_at"], rotate_after=body["rotate_after"],
            at=int(time.time()),
        )  # fmt: skip
        # Read back as every approver will: a policy that would not read is not sent.
        PolicyStatement.from_json(statement.to_json())
    except MalformedInput as exc:
        raise exits.UsageError(str(exc)) from None
    return sign_policy(statement, keys.sig)
