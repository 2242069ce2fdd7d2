"""``sealbox mcp [--profile P]``: the MCP server AI agents use secrets through, on stdio.

An MCP client (Claude Code, Claude Desktop, an IDE) starts it as a
subprocess and speaks MCP on its standard input and output; sealbox's own
messages go to standard error.  It runs as the profile's identity, as the SDK
picks it: an agent profile (``sealbox agent create``) is the intended one; a
person's login, or a machine identity (``SEALBOX_IDENTITY``), works too.
The tools are in :mod:`sealbox.mcp.server`; no tool returns a secret value.

Exit codes: 0 when the MCP client closes the connection; 6 if the profile is
not logged in (checked before serving, so the MCP client shows why); 2 for
bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp", help="serve the MCP tools an AI agent uses secrets through, without ever "
        "seeing them (stdio)",
        description="An MCP server on standard input/output for an MCP client to start. "
        "Tools: list_items, describe_item, run_with_secrets, store_secret, request_status, "
        "cancel_request, recent_audit, request_consent. No tool returns a secret value.",
    )  # fmt: skip
    mcp.add_argument("--profile", metavar="NAME", help="the profile to run as, e.g. an agent's "
                     "(env SEALBOX_PROFILE; default: default)")  # fmt: skip


def _serve(args: argparse.Namespace) -> int:
    from sealbox.client import identity as identities
    from sealbox.client import profile as profiles
    from sealbox.mcp.server import build_server

    # Fail before serving: an MCP client shows a server that exits with its message.  The
    # identity is the SDK's: a machine's (SEALBOX_IDENTITY) unless a profile is named.
    machine = identities.from_environment() if args.profile is None else None
    if machine is not None:
        identities.load(machine)
    else:
        name = profiles.profile_name(args.profile)
        profiles.load(profiles.profile_path(name), name=name)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="sealbox mcp: %(message)s")  # fmt: skip
    logging.getLogger("httpx").setLevel(logging.WARNING)
    build_server(args.profile).run("stdio")
    return exits.OK


def run(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _serve(args), "mcp")
