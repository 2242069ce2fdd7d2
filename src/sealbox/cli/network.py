"""``sealbox approver network allow|remove|show|enable|disable``: the vault's network allowlist.

Machines and agents of the vault may call the relay only from the listed
networks while the allowlist is enabled; people and approvers are not held to
it.  Each change is a request signed by this approver, audited by the relay.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]


def add_parsers(asub: Any) -> None:
    """``network`` under ``sealbox approver``."""
    from sealbox.cli.approvers import key_options

    network = asub.add_parser(
        "network", help="where the vault's machines and agents may call from (IP allowlist)"
    )
    nsub = network.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    allow = nsub.add_parser("allow", help="add networks (CIDRs, IPv4 or IPv6, or addresses)")
    allow.add_argument("cidrs", nargs="+", metavar="CIDR", help="e.g. 10.1.0.0/16, 2001:db8::/32")
    remove = nsub.add_parser("remove", help="take a network out of the allowlist")
    remove.add_argument("cidr", metavar="CIDR", help="as shown by `sealbox approver network show`")
    nsub.add_parser("show", help="the allowlist and whether it is enabled")
    nsub.add_parser("enable", help="hold machines and agents to the allowlist "
                    "(an empty one then refuses them all)")  # fmt: skip
    nsub.add_parser("disable", help="stop applying the allowlist (its networks are kept)")
    for parser in nsub.choices.values():
        key_options(parser)


def _print(state: dict[str, Any]) -> None:
    cidrs = list(state.get("cidrs") or [])
    if not state.get("enabled"):
        print("Network allowlist: disabled (machines and agents may call from anywhere).")
    elif not cidrs:
        print("Network allowlist: ENABLED and empty: every machine and agent is refused.")
    else:
        print("Network allowlist: enabled: machines and agents may call only from these.")
    for cidr in cidrs:
        print(f"  {cidr}")
    if cidrs and not state.get("enabled"):
        print("Run `sealbox approver network enable` to apply it.")


def _run(args: argparse.Namespace) -> int:
    from sealbox.cli.approvers import open_session

    session = open_session(args)
    try:
        action = args.network_command
        if action == "show":
            state = session.ok("GET", "/network", "reading the allowlist")
        elif action == "allow":
            state = session.ok("POST", "/network/cidrs", "allowing networks",
                               json_body={"cidrs": args.cidrs})  # fmt: skip
        elif action == "remove":
            state = session.ok("DELETE", f"/network/cidrs?cidr={quote(args.cidr, safe='')}",
                               "removing the network")  # fmt: skip
        else:
            state = session.ok("POST", f"/network/{action}", f"{action[:-1]}ing the allowlist")
    finally:
        session.close()
    if action != "show" and not state.get("changed", True):
        print("Nothing changed.")
    _print(state)
    return exits.OK


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _run(args), f"approver network {args.network_command}")
