"""``sealbox agent …``: create an agent (a logged-in person), and list, disable, enable or
revoke agents (an approver).

``create`` makes the agent's key on this machine, has an approver certify it,
and then either saves an agent profile (``--save``, the default) or prints the
credentials as JSON for a CI secret store (``--json``: the only place the
private key is ever printed).  An agent profile is used only when named
(``--profile NAME`` or ``SEALBOX_PROFILE``): it never takes the place of a
person's session.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]

SCOPES = ("read", "write")


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", help="this approver's key file (default: the only one in "
                        "the config directory)")  # fmt: skip
    parser.add_argument("--passphrase-file", help="read the passphrase from this file "
                        "(env SEALBOX_PASSPHRASE; default: ask)")  # fmt: skip


def add_parsers(sub: Any) -> None:
    agent = sub.add_parser("agent", help="agents: clients for automation, made by a person and "
                           "certified by an approver")  # fmt: skip
    asub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    create = asub.add_parser(
        "create", help="make an agent's key here and have an approver certify it (run by a "
        "logged-in person)",
    )  # fmt: skip
    create.add_argument("--name", required=True, help="the agent's name, e.g. 'Deploy Bot'")
    create.add_argument("--scopes", default="read",
                        help="read, write or read,write (default: read)")  # fmt: skip
    create.add_argument("--items", action="append", metavar="PATTERN", default=[],
                        help="limit it to items matching PATTERN, e.g. 'shop/prod/*' (repeatable; "
                        "signed into its certificate)")  # fmt: skip
    out = create.add_mutually_exclusive_group()
    out.add_argument("--save", action="store_true",
                     help="save an agent profile on this machine (the default)")  # fmt: skip
    out.add_argument("--json", action="store_true",
                     help="print the credentials (private key included) as JSON for a CI secret "
                     "store, and save nothing")  # fmt: skip
    create.add_argument("--profile", metavar="NAME",
                        help="the agent profile's name (default: from --name, 'Deploy Bot' -> "
                        "deploy-bot)")  # fmt: skip
    create.add_argument("--overwrite", action="store_true",
                        help="replace an existing profile of that name")  # fmt: skip
    create.add_argument("--client-secret", action="store_true",
                        help="also make a client secret, for tools that cannot sign a JWT "
                        "(only its hash goes to the relay)")  # fmt: skip
    create.add_argument("--as", dest="person", metavar="PROFILE",
                        help="the person's login to ask with (default: SEALBOX_PROFILE, else "
                        "default)")  # fmt: skip
    lst = asub.add_parser("list", help="the vault's agents and their states (an approver)")
    _key_options(lst)
    for name, text in (
        ("disable", "stop an agent at once: its tokens are revoked (an approver)"),
        ("enable", "let a disabled agent get tokens again (an approver)"),
        ("revoke", "end an agent for good: disabled, tokens and client secret dropped"),
    ):
        action = asub.add_parser(name, help=text)
        action.add_argument("agent", metavar="NAME-or-ID", help="the agent's name or client id")
        _key_options(action)


def run(args: argparse.Namespace) -> int:
    command = f"agent {args.agent_command}"
    if args.agent_command == "create":
        return exits.guarded(lambda: _create(args), command)
    return exits.guarded(lambda: _APPROVER[args.agent_command](args), command)


# --- create (a person) -------------------------------------------------------------------------


def _scopes(args: argparse.Namespace) -> list[str]:
    from sealbox.protocol import scopes

    plain = [s.strip() for s in args.scopes.split(",") if s.strip()]
    if not plain or any(s not in SCOPES for s in plain):
        raise exits.UsageError("--scopes takes read, write or read,write")
    items = []
    for given in args.items:
        for pattern in (p.strip() for p in given.split(",") if p.strip()):
            try:
                items.append(scopes.ITEMS + scopes.check_pattern(pattern))
            except ValueError as exc:
                raise exits.UsageError(f"--items {pattern!r}: {exc}") from None
    return sorted(set(plain)) + sorted(set(items))


def _say(text: str, *, json_mode: bool) -> None:
    # With --json, stdout is the credentials alone: everything else goes to stderr.
    print(text, file=sys.stderr if json_mode else sys.stdout, flush=True)


def _create(args: argparse.Namespace) -> int:
    import httpx

    from sealbox.client import agents
    from sealbox.client import profile as profiles

    requested = _scopes(args)
    json_mode = bool(args.json)
    target = None
    if not json_mode:
        name = args.profile or agents.slug(args.name)
        name = profiles.profile_name(name)
        if name == profiles.DEFAULT_PROFILE:
            raise exits.UsageError(
                "an agent profile may not be called 'default': that name is a person's session "
                "(pass --profile with another name)"
            )
        target = profiles.profile_path(name)
        if target.exists() and not args.overwrite:
            raise exits.UsageError(f"a profile called {name!r} exists already: pick another "
                                   "--profile, or pass --overwrite to replace it")  # fmt: skip
    person = profiles.profile_name(args.person)
    if target is not None and profiles.profile_path(person) == target:
        raise exits.UsageError("the agent profile would replace the login it is made with")

    def show(prompt: agents.AgentPrompt) -> None:
        def say(text: str) -> None:
            _say(text, json_mode=json_mode)

        say(f"Asked {prompt.server} (vault {prompt.vault}) for agent {prompt.name!r}.")
        say(f"  Client id:              {prompt.client_id}")
        say(f"  Scopes:                 {', '.join(prompt.scopes)}")
        say(f"  Agent key fingerprint:  {prompt.key_fingerprint}")
        say(f"  Agent key safety code:  {prompt.key_safety_code}")
        say("Your approver must see this safety code before approving (`sealbox approve`).")
        say(f"Waiting for an approver (the request expires in {prompt.expires_in // 60} min)...")

    with httpx.Client(timeout=30) as http:
        made = agents.create(
            http, person_path=profiles.profile_path(person), name=args.name, scopes=requested,
            client_secret=args.client_secret, on_prompt=show, on_wait=lambda _: None,
        )  # fmt: skip
    cert = made.cert
    until = datetime.datetime.fromtimestamp(cert.constraints.not_after, datetime.UTC)
    summary = (f"Agent {made.client_id} approved: scopes {', '.join(cert.scopes)}; issued by "
               f"{cert.issuer}; valid until {until:%Y-%m-%d %H:%M} UTC.")  # fmt: skip
    if json_mode:
        _say(summary, json_mode=True)
        print(json.dumps(made.to_json(), indent=2), flush=True)
        return exits.OK
    assert target is not None
    agents.save_profile(target, made, overwrite=args.overwrite)
    _say(summary, json_mode=False)
    _say(f"Saved as profile {target.stem!r} ({target}, 0600). Use it only by name:",
         json_mode=False)  # fmt: skip
    _say(f"  sealbox read --profile {target.stem} sealbox://…   or   "
         f"SEALBOX_PROFILE={target.stem} sealbox read …", json_mode=False)  # fmt: skip
    if made.client_secret is not None:
        _say("A client secret was made and is kept in the profile only (see --json to "
             "export it).", json_mode=False)  # fmt: skip
    return exits.OK


# --- list, disable, enable, revoke (an approver) ---------------------------------------------


def _session(args: argparse.Namespace) -> Any:
    from sealbox.cli import approvers

    return approvers._session(args)


def _list(args: argparse.Namespace) -> int:
    from sealbox._relay.text import displayable
    from sealbox.approver import agents

    found = agents.list_agents(_session(args))
    if not found:
        print("No agents in this vault.")
        return exits.OK
    print(f"{'NAME':<24} {'CLIENT ID':<31} {'STATE':<9} {'SECRET':<6} SCOPES / ASKED BY")
    for entry in found:
        print(f"{displayable(entry['name'], 24):<24} {displayable(entry['client_id'], 31):<31} "
              f"{displayable(entry['state'], 9):<9} {'yes' if entry['client_secret'] else 'no':<6} "
              f"{', '.join(displayable(s, 80) for s in entry['scopes'])} / "
              f"{displayable(entry['requested_by'], 40)}")  # fmt: skip
    return exits.OK


def _switch(args: argparse.Namespace) -> int:
    from sealbox.approver import agents

    session = _session(args)
    entry = agents.find_agent(session, args.agent)
    if args.agent_command == "revoke":
        done = agents.revoke_agent(session, entry["client_id"])
        print(f"Agent {entry['name']!r} ({entry['client_id']}) is revoked for good: its tokens "
              f"and client secret are gone.")  # fmt: skip
        return exits.OK if done.get("state") == "revoked" else exits.FAILED
    disabled = args.agent_command == "disable"
    done = agents.set_disabled(session, entry["client_id"], disabled=disabled)
    if disabled:
        print(f"Agent {entry['name']!r} ({entry['client_id']}) is disabled; "
              f"{done.get('tokens_revoked', 0)} token(s) revoked.")  # fmt: skip
    else:
        print(f"Agent {entry['name']!r} ({entry['client_id']}) is enabled again.")
    return exits.OK


_APPROVER = {"list": _list, "disable": _switch, "enable": _switch, "revoke": _switch}
