"""``sealbox approver freeze|unfreeze|frozen``: stop every request in a project, and resume.

While a project is frozen, every access or store request for its items is
refused by the relay before any approver is asked, and nothing pending in it
is released.  The release of a canary freezes its project by itself.  Each
change is a request signed by this approver, audited by the relay
(``project.frozen``, ``project.unfrozen``).

Exit codes: 0 done (also when nothing changed), 1 the relay refused (not an
approver), 2 usage (a PROJECT that is not a project name).
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from sealbox.cli import exits

__all__ = ["COMMANDS", "add_parsers", "describe", "run"]

COMMANDS = ("freeze", "unfreeze", "frozen")


def add_parsers(asub: Any) -> None:
    """``freeze``, ``unfreeze`` and ``frozen`` under ``sealbox approver``."""
    from sealbox.cli.approvers import key_options

    freeze = asub.add_parser("freeze", help="refuse every request for a project's items "
                             "until it is unfrozen")  # fmt: skip
    freeze.add_argument("project", metavar="PROJECT", help="the project (first part of a path)")
    freeze.add_argument("--reason", metavar="TEXT", help="why, for the other approvers and the "
                        "audit log (never shown to clients)")  # fmt: skip
    unfreeze = asub.add_parser("unfreeze", help="lift a project's freeze")
    unfreeze.add_argument("project", metavar="PROJECT", help="the frozen project")
    frozen = asub.add_parser("frozen", help="list the frozen projects")
    for parser in (freeze, unfreeze, frozen):
        key_options(parser)


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def describe(entry: dict[str, Any]) -> str:
    """One frozen project, as the relay reports it (made safe to print)."""
    from sealbox._relay.text import displayable

    project = displayable(entry.get("project") or "?", 64)
    at = entry.get("frozen_at")
    since = _when(at) if isinstance(at, int) else "?"
    if entry.get("cause") == "canary":
        why = f"a canary was released (request {displayable(entry.get('request') or '?', 64)})"
    else:
        why = f"frozen by {displayable(entry.get('frozen_by') or '?', 64)}"
        if entry.get("reason"):
            why += f": {displayable(entry['reason'], 500)}"
    return f"{project}  FROZEN since {since}; {why}"


def _run(args: argparse.Namespace) -> int:
    from sealbox.cli.approvers import open_session
    from sealbox.errors import MalformedInput
    from sealbox.protocol import ids

    action = args.approver_command
    if action != "frozen":
        try:
            ids.check_segment(args.project, "PROJECT")
        except MalformedInput:
            raise exits.UsageError(
                "PROJECT is a project's name as item paths start with it (shop in "
                "sealbox://shop/prod/db): letters, digits, '.', '_' and '-'"
            ) from None
    session = open_session(args)
    try:
        if action == "frozen":
            listed = session.ok("GET", "/projects/frozen", "listing frozen projects")
        elif action == "freeze":
            body = {"reason": args.reason} if args.reason else None
            done = session.ok("POST", f"/projects/{args.project}/freeze", "freezing it",
                              json_body=body)  # fmt: skip
        else:
            done = session.ok("POST", f"/projects/{args.project}/unfreeze", "unfreezing it")
    finally:
        session.close()
    if action == "frozen":
        found = listed["frozen"]
        if not found:
            print("No project is frozen.")
        for entry in found:
            print(describe(entry))
        return exits.OK
    if action == "freeze":
        if not done.get("changed"):
            print(f"{args.project} was frozen already: nothing changed.")
        else:
            print(f"Froze {args.project}: every request for its items is refused until "
                  f"`sealbox approver unfreeze {args.project}`.")  # fmt: skip
        print(describe(done))
        return exits.OK
    if not done.get("changed"):
        print(f"{args.project} was not frozen: nothing changed.")
    else:
        print(f"Unfroze {args.project}: requests for its items are answered again.")
    return exits.OK


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _run(args), f"approver {args.approver_command}")
