"""``sealbox approver requesters list|limits|unlock``: limits and lockouts of requesters.

The relay holds every client to a rate of new requests and a cap on those
waiting, and locks one out after repeated denials (``sealbox up``'s
``--prompts-per-minute``, ``--pending-cap``, ``--lockout-denials``).  Here an
approver sees which requesters have their own limits, denials in a row or a
lockout; sets one client's limits; and clears a lockout.  Each change is a
request signed by this approver, audited by the relay.  Only an approver may
do this: a locked-out client cannot unlock itself.

It lives under ``sealbox approver`` with the other rules an approver sets for
clients (``grant``, ``policy``, ``network``), and runs on an approver's device.

Exit codes: 0 done (also when nothing changed), 1 the relay refused (not an
approver, no such client, a limit out of range), 2 usage.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]


def add_parsers(asub: Any) -> None:
    """``requesters`` under ``sealbox approver``."""
    from sealbox.cli.approvers import key_options

    group = asub.add_parser("requesters", help="limits and lockouts of the clients that ask "
                            "(against approval fatigue)")  # fmt: skip
    rsub = group.add_subparsers(dest="requesters_command", metavar="ACTION", required=True)
    rsub.add_parser("list", help="the relay's limits, and requesters with their own limits, "
                    "denials in a row or a lockout (locked first)")  # fmt: skip
    limits = rsub.add_parser("limits", help="hold one client to its own limits")
    limits.add_argument("client", metavar="CLIENT", help="the client's id (cli_…)")
    limits.add_argument("--per-minute", type=int, metavar="N",
                        help="new requests it may make in any 60 seconds "
                        "(left out: the relay's)")  # fmt: skip
    limits.add_argument("--pending", type=int, metavar="N",
                        help="requests it may have waiting at once "
                        "(left out: the relay's)")  # fmt: skip
    limits.add_argument("--default", action="store_true",
                        help="drop its own limits: the relay's apply again")  # fmt: skip
    unlock = rsub.add_parser("unlock", help="let a locked-out client ask again")
    unlock.add_argument("client", metavar="CLIENT", help="the client's id (cli_…)")
    for parser in rsub.choices.values():
        key_options(parser)


def _count(value: int | None, what: str) -> int | None:
    if value is not None and value < 1:
        raise exits.UsageError(f"{what} must be at least 1")
    return value


def _limit(held: dict[str, Any], key: str) -> str:
    own = " (its own)" if held.get(f"{key}_override") else ""
    return f"{int(held[key])}{own}"


def describe(entry: dict[str, Any]) -> list[str]:
    """Lines about one requester, as the relay reports it (names made safe to print)."""
    from sealbox._relay.text import displayable

    name = displayable(entry.get("name") or "?", 128)
    kind = displayable(entry.get("kind") or "?", 16)
    held, recent = entry["limits"], entry["recent"]
    state = "LOCKED OUT" if entry.get("locked_at") is not None else "may ask"
    window = int(recent["window_seconds"])
    period = "hour" if window == 3600 else f"{window} seconds"
    return [
        f"{displayable(entry['client'], 40)}  {name} ({kind}): {state}",
        f"  limits: {_limit(held, 'per_minute')} new requests a minute, "
        f"{_limit(held, 'pending_cap')} waiting",
        f"  denials in a row: {int(entry['denials_in_a_row'])}; in the last {period}: "
        f"{int(recent['requests'])} requests, {int(recent['denials'])} denied",
    ]


def _run(args: argparse.Namespace) -> int:
    from sealbox.cli.approvers import open_session
    from sealbox.errors import MalformedInput
    from sealbox.protocol import ids

    action = args.requesters_command
    body = None
    if action != "list":
        try:
            ids.check_id(args.client, ids.CLIENT, what="CLIENT")
        except MalformedInput:
            raise exits.UsageError(
                "CLIENT is a client's id (cli_ and 26 letters and digits), as "
                "`sealbox approver requesters list` shows it"
            ) from None
    if action == "limits":
        if args.default and (args.per_minute is not None or args.pending is not None):
            raise exits.UsageError("--default drops the client's own limits: give no others")
        if not args.default and args.per_minute is None and args.pending is None:
            raise exits.UsageError("give --per-minute, --pending or --default")
        body = {"per_minute": _count(args.per_minute, "--per-minute"),
                "pending_cap": _count(args.pending, "--pending")}  # fmt: skip
    session = open_session(args)
    try:
        if action == "list":
            listed = session.ok("GET", "/requesters", "listing requesters")
        else:
            path = f"/requesters/{quote(args.client, safe='')}"
            if action == "limits":
                done = session.ok("POST", path + "/limits", "setting its limits", json_body=body)
            else:
                done = session.ok("POST", path + "/unlock", "unlocking it")
    finally:
        session.close()
    if action == "list":
        d = listed["defaults"]
        lockout = (f"locked out after {int(d['lockout_denials'])} denials in a row"
                   if d["lockout_denials"] else "no lockout")  # fmt: skip
        print(f"The relay's limits: {int(d['per_minute'])} new requests a minute and "
              f"{int(d['pending_cap'])} waiting per client; a storm is more than "
              f"{int(d['storm_prompts'])} in a minute; {lockout}.")  # fmt: skip
        found = listed["requesters"]
        if not found:
            print("No requester has its own limits, denials in a row or a lockout.")
        for entry in found:
            print("\n".join(describe(entry)))
        print("Counts are the relay's own (not signed by anyone).")
        return exits.OK
    if action == "unlock" and not done.get("changed"):
        print("It was not locked out: nothing changed.")
    print("\n".join(describe(done)))
    return exits.OK


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _run(args), f"approver requesters {args.requesters_command}")
