"""``sealbox approver invite``, ``sealbox member list|set-role|revoke``, ``sealbox policy``.

Argument parsing and printing only: the approver's acts are
:mod:`sealbox.approver.members`.  Every command here runs on an approver's
device and signs with its key (the key file's passphrase is asked, as for the
other approver commands); a person joins with ``sealbox login --invite CODE``.
``sealbox policy`` runs as a logged-in member instead (its profile's session):
a policy admin sets its project's policies with it.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from sealbox.cli import exits, policy_axes
from sealbox.cli.approvers import _key_options, _session

__all__ = [
    "add_approver_actions", "add_parsers", "add_policy_parsers", "run", "run_invite",
    "run_policy",
]  # fmt: skip

_ROLES = ("viewer", "writer", "machine-admin", "policy-admin")
_ROLE_HELP = ("viewer: item metadata and history; writer: ask to read and to store; "
              "machine-admin: machines for the project (and ask to read); policy-admin: the "
              "project's policies (and ask to read). No role reads a value without a "
              "release.")  # fmt: skip


def add_approver_actions(asub: Any) -> None:
    invite = asub.add_parser("invite", help="invite a person to a project with a role (prints "
                             "a one-time code for `sealbox login --invite`)")  # fmt: skip
    invite.add_argument("--project", required=True, help="the project, e.g. shop")
    invite.add_argument("--role", required=True, choices=_ROLES, help=_ROLE_HELP)
    invite.add_argument("--expires", default="24h", metavar="DURATION",
                        help="how long the code works, e.g. 30m, 24h, 7d (default 24h; "
                        "at most 7d)")  # fmt: skip
    _key_options(invite)


def add_parsers(sub: Any) -> None:
    member = sub.add_parser("member", help="the vault's members: people with roles in projects")
    msub = member.add_subparsers(dest="member_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="members and their roles, from verified certificates")
    _key_options(lst)
    setrole = msub.add_parser("set-role", help="give a client this role in a project (signs a "
                              "new certificate for its same key)")  # fmt: skip
    setrole.add_argument("client", metavar="CLI_ID", help="the member's client id")
    setrole.add_argument("--project", required=True, help="the project")
    setrole.add_argument(
        "--role",
        required=True,
        action="append",
        choices=_ROLES,
        help="the role in that project (repeat for several); " + _ROLE_HELP,
    )
    _key_options(setrole)
    revoke = msub.add_parser("revoke", help="take a member's roles away (in one project, or "
                             "all: then the client is disabled)")  # fmt: skip
    revoke.add_argument("client", metavar="CLI_ID", help="the member's client id")
    revoke.add_argument("--project", help="only this project's roles (default: every role)")
    _key_options(revoke)


def add_policy_parsers(sub: Any) -> None:
    policy = sub.add_parser("policy", help="release policies of your projects, as a member "
                            "(setting one needs the policy-admin role)")  # fmt: skip
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    lst = psub.add_parser("list", help="the policies of the projects you are a member of")
    setp = psub.add_parser("set", help="set who must approve items matching a pattern")
    setp.add_argument("pattern", help="PROJECT/ENV/ITEM; the project part is exactly yours")
    setp.add_argument("--approvers", required=True, help="comma-separated apv_ ids")
    setp.add_argument("--threshold", type=int, default=1, help="how many must approve (M)")
    setp.add_argument("--expiry", type=int, default=300, help="seconds a request may wait")
    setp.add_argument("--max-cache", type=int, default=0,
                      help="seconds a client may keep released values (0: never)")  # fmt: skip
    setp.add_argument("--cidr", action="append", default=[], metavar="CIDR",
                      help="a network clients must ask from (repeatable)")  # fmt: skip
    policy_axes.add_axis_options(setp)
    remove = psub.add_parser("remove", help="remove the policy for exactly this pattern")
    remove.add_argument("pattern", help="PROJECT/ENV/ITEM, exactly as it was set")
    for parser in (lst, setp, remove):
        parser.add_argument(
            "--profile",
            metavar="NAME",
            help="which login to use (env SEALBOX_PROFILE; default: default)",
        )


def run_policy(args: argparse.Namespace) -> int:
    def go() -> int:
        from sealbox.client.policies import PolicyAxes
        from sealbox.client.sdk import Client

        with Client(args.profile) as client:
            if args.policy_command == "list":
                found = client.policies()
                if not found:
                    print("No policy you may see (a member sees its projects' policies).")
                for entry in found:
                    print(f"  {entry.pattern}  {entry.threshold} of "
                          f"{', '.join(entry.approvers)}  wait {entry.expiry_seconds}s  "
                          f"cache {entry.max_cache_seconds}s")  # fmt: skip
                    for line in policy_axes.describe(entry.axes.to_json()):
                        print(f"    {line}")
            elif args.policy_command == "set":
                approvers = [a.strip() for a in args.approvers.split(",") if a.strip()]
                # A member's policy is not signed: approvers see it as the relay's word.
                given = policy_axes.axis_body(args)
                axes = PolicyAxes(**{**given, "hours": tuple(given["hours"]),
                                     "cidrs": tuple(args.cidr)})  # fmt: skip
                done = client.set_policy(
                    args.pattern, approvers=approvers, threshold=args.threshold,
                    expiry_seconds=args.expiry, max_cache_seconds=args.max_cache, axes=axes,
                )  # fmt: skip
                print(f"Policy for {done.pattern}: {done.threshold} of "
                      f"{len(done.approvers)} approver(s).")  # fmt: skip
                for line in policy_axes.describe(done.axes.to_json()):
                    print(f"  {line}")
            else:
                client.remove_policy(args.pattern)
                print(f"Policy for {args.pattern} removed.")
        return exits.OK

    return exits.guarded(go, f"policy {args.policy_command}")


def _duration(text: str) -> int:
    found = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not found:
        raise exits.UsageError("--expires takes a duration like 30m, 24h or 7d")
    seconds = int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
    if not 60 <= seconds <= 7 * 86400:
        raise exits.UsageError("--expires is at least 1m and at most 7d")
    return seconds


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _roles(roles: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{project}: {', '.join(held)}" for project, held in roles.items()) or "none"


def run_invite(args: argparse.Namespace) -> int:
    def go() -> int:
        from sealbox.approver import members

        seconds = _duration(args.expires)
        session = _session(args)
        try:
            made = members.create_invite(session, project=args.project, role=args.role,
                                         seconds=seconds)  # fmt: skip
        finally:
            session.close()
        print(f"Invite to project {made.project} as {made.role}, valid until "
              f"{_utc(made.expires_at)}, for one login:")  # fmt: skip
        print()
        print(f"  sealbox login --server {session.keys.server} --invite {made.code}")
        print()
        print("Give it to the person privately. Their login waits for an approver, who sees the")
        print("role and must compare the login's key safety code with the person's screen.")
        return exits.OK

    return exits.guarded(go, "approver invite")


def _list(args: argparse.Namespace) -> int:
    from sealbox.approver import members

    session = _session(args)
    try:
        found = members.list_members(session)
    finally:
        session.close()
    if not found:
        print("No members (no client holds a role).")
        return exits.OK
    print("Members (roles read from each certificate, verified on this device):")
    for entry in found:
        state = "  DISABLED" if entry.disabled else ""
        print(f"  {entry.client_id}  {entry.name}  {_roles(entry.roles)}  "
              f"until {_utc(entry.not_after)}{state}")  # fmt: skip
    return exits.OK


def _set_role(args: argparse.Namespace) -> int:
    from sealbox.approver import members

    session = _session(args)
    try:
        roles = members.set_role(session, args.client, project=args.project, roles=args.role)
    finally:
        session.close()
    print(f"{args.client} re-certified: {_roles(roles)}. It holds from its next request.")
    return exits.OK


def _revoke(args: argparse.Namespace) -> int:
    from sealbox.approver import members

    session = _session(args)
    try:
        done = members.revoke(session, args.client, project=args.project)
    finally:
        session.close()
    if done.disabled:
        print(f"{done.client_id} holds no role any more and is disabled (its sessions end now).")
    else:
        print(f"{done.client_id} re-certified: {_roles(done.roles)}.")
    return exits.OK


_ACTIONS = {"list": _list, "set-role": _set_role, "revoke": _revoke}


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _ACTIONS[args.member_command](args),
                         f"member {args.member_command}")  # fmt: skip
