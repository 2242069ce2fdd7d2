"""``sealbox approver alerts add-webhook|add-email|list|remove|enable|test``: alert targets.

The relay turns audit events into alerts: each target (a webhook or email
recipients) selects events by action patterns (``canary.*``, ``item.rotation_due``)
and/or a least severity (default ``alert``).  Webhooks are signed with a secret
printed once, when the webhook is added; a target that fails 10 times in a
row is disabled (the other targets hear of it) until ``enable``.  Each change
is a request signed by this approver, audited by the relay.

Exit codes: 0 done, 1 the relay refused (not an approver, a bad URL or
address, no such target), 2 usage.
"""

from __future__ import annotations

import argparse
import re
from typing import Any
from urllib.parse import quote

from sealbox.cli import exits
from sealbox.protocol.severities import SEVERITIES

__all__ = ["add_parsers", "run"]

_TARGET = re.compile(r"alt_[a-z2-7]{26}")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", action="append", metavar="PATTERN", default=[],
        help="an action (canary.read), a prefix (canary.*) or * (repeatable, or comma-separated; "
        "default: every action)",
    )  # fmt: skip
    parser.add_argument(
        "--min-severity", choices=SEVERITIES, metavar="LEVEL",
        help="least severity sent: " + ", ".join(SEVERITIES)
        + " (default: alert; with --events: info, so the named actions all go)",
    )  # fmt: skip


def add_parsers(asub: Any) -> None:
    """``alerts`` under ``sealbox approver``."""
    from sealbox.cli.approvers import key_options

    group = asub.add_parser("alerts", help="where the relay sends alerts: webhooks and email")
    sub = group.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    hook = sub.add_parser("add-webhook", help="POST selected events to a URL, signed "
                          "(prints the signing secret once)")  # fmt: skip
    hook.add_argument("url", metavar="URL", help="http(s) URL of the receiver")
    _selection(hook)
    mail = sub.add_parser("add-email", help="email selected events (the relay's SMTP server)")
    mail.add_argument("addresses", nargs="+", metavar="ADDRESS", help="recipients")
    _selection(mail)
    sub.add_parser("list", help="the vault's alert targets and their state")
    for name, text in (("remove", "remove a target (its waiting deliveries are dropped)"),
                       ("enable", "enable a target again after it was disabled for failing"),
                       ("test", "send a test event (alert.test) to one target")):  # fmt: skip
        one = sub.add_parser(name, help=text)
        one.add_argument("target", metavar="ID", help="the target's id (alt_…)")
    for parser in sub.choices.values():
        key_options(parser)


def _patterns(values: list[str]) -> list[str]:
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def describe(target: dict[str, Any]) -> list[str]:
    """Lines about one target, as the relay reports it (made safe to print)."""
    from sealbox._relay.text import displayable

    if target["kind"] == "webhook":
        where = displayable(target.get("url") or "?", 200)
    else:
        where = ", ".join(displayable(a, 254) for a in target.get("addresses") or [])
    events = ", ".join(displayable(e, 64) for e in target.get("events") or []) or "any action"
    state = "enabled" if target.get("enabled") else "DISABLED"
    lines = [
        f"{displayable(target['id'], 40)}  {displayable(target['kind'], 8)} {where}: {state}",
        f"  selects: {events}, severity {displayable(target['min_severity'], 8)} and up",
    ]
    failures, pending = int(target.get("failures") or 0), int(target.get("pending") or 0)
    if failures or pending:
        error = displayable(target.get("last_error") or "", 200)
        lines.append(f"  {failures} failure(s) in a row, {pending} delivery(ies) waiting"
                     + (f"; last error: {error}" if error else ""))  # fmt: skip
    return lines


def _run(args: argparse.Namespace) -> int:
    from sealbox.cli.approvers import open_session

    action = args.alerts_command
    if action in ("remove", "enable", "test") and not _TARGET.fullmatch(args.target):
        raise exits.UsageError(
            "ID is a target's id (alt_ and 26 letters and digits), as "
            "`sealbox approver alerts list` shows it"
        )
    body: dict[str, Any] | None = None
    if action in ("add-webhook", "add-email"):
        body = {"events": _patterns(args.events), "min_severity": args.min_severity}
        if action == "add-webhook":
            body["url"] = args.url
        else:
            body["addresses"] = args.addresses
    session = open_session(args)
    try:
        if action == "list":
            done = session.ok("GET", "/alerts", "listing alert targets")
        elif action == "add-webhook":
            done = session.ok("POST", "/alerts/webhooks", "adding the webhook", json_body=body)
        elif action == "add-email":
            done = session.ok("POST", "/alerts/emails", "adding the email target",
                              json_body=body)  # fmt: skip
        else:
            path = f"/alerts/{quote(args.target, safe='')}"
            if action == "remove":
                done = session.ok("DELETE", path, "removing the target")
            elif action == "enable":
                done = session.ok("POST", path + "/enable", "enabling the target")
            else:
                done = session.ok("POST", path + "/test", "sending a test event",
                                  expect=(202,))  # fmt: skip
    finally:
        session.close()
    if action == "list":
        targets = done["targets"]
        if not targets:
            print("No alert targets: add one with `sealbox approver alerts add-webhook URL` "
                  "or `add-email ADDRESS`.")  # fmt: skip
        for target in targets:
            print("\n".join(describe(target)))
        return exits.OK
    if action == "test":
        print(f"Test event queued for {args.target} (delivery {done['delivery']}).")
        return exits.OK
    if action == "enable" and not done.get("changed"):
        print("It was enabled already: nothing changed.")
    elif action == "remove":
        print("Removed:")
    print("\n".join(describe(done)))
    if action == "add-webhook":
        print("Signing secret (shown only now; the receiver checks X-Sealbox-Signature with it):")
        print(done["secret"])
    return exits.OK


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _run(args), f"approver alerts {args.alerts_command}")
