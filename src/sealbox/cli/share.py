"""``sealbox share …``: one-time links for people outside the vault.

``create`` seals a value (from ``--file``, standard input, or asked on the
terminal without echo) under a fresh key, uploads only the ciphertext with this
profile's login, and prints the link ``RELAY/s/ID#KEY``: the key is in the
fragment, which browsers never send, so the relay never has it.  ``--ttl`` is
60s to 7d (default 1h).  ``--passphrase`` adds a passphrase the relay checks
(Argon2id; a wrong one destroys the share), read from ``--passphrase-file``,
``SEALBOX_SHARE_PASSPHRASE`` or the terminal (asked twice, never echoed), never
from the command line.

``open URL`` prints the value (once: the share is spent), asking for the
passphrase if the share has one (``--passphrase-file``,
``SEALBOX_SHARE_PASSPHRASE``, or the terminal).  It needs no login, and refuses
under a machine's or an agent's identity: share links are for people.

Exit codes: 0 done; 1 the relay refused (opened already, destroyed, expired:
410; wrong passphrase: 403) or cannot be reached; 2 bad input (a link that is
cut, a TTL out of bounds, an empty or too large value, a passphrase on the
command line); 5 the value does not decrypt with the link's key; 6 not logged in
(create).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]

PASSPHRASE_ENV = "SEALBOX_SHARE_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret


def add_parsers(sub: Any) -> None:
    share = sub.add_parser("share", help="one-time links for people outside the vault")
    ssub = share.add_subparsers(dest="share_command", metavar="ACTION", required=True)
    create = ssub.add_parser("create", help="seal a value (from --file or standard input) and "
                             "print a one-time link to it")  # fmt: skip
    create.add_argument("--ttl", default="1h", help="how long the link lives: 60s to 7d, "
                        "e.g. 90s, 15m, 1h, 7d (default 1h)")  # fmt: skip
    create.add_argument("--file", metavar="PATH", help="the value is this file's content "
                        "(default: standard input; on a terminal, asked without echo)")  # fmt: skip
    create.add_argument("--passphrase", action="store_true", help="also protect it with a "
                        f"passphrase: from --passphrase-file, {PASSPHRASE_ENV}, or asked on "
                        "the terminal (a wrong one at open destroys the share)")  # fmt: skip
    create.add_argument("--profile", metavar="NAME", help="which login to use "
                        "(env SEALBOX_PROFILE; default: default)")  # fmt: skip
    opener = ssub.add_parser("open", help="print the value behind a share link (once)")
    opener.add_argument("url", metavar="URL", help="the whole link, RELAY/s/ID#KEY (quote it: "
                        "the shell treats '#' specially)")  # fmt: skip
    opener.add_argument("-n", "--no-newline", action="store_true",
                        help="no newline after the value")  # fmt: skip
    opener.add_argument(
        "--profile",
        metavar="NAME",
        help="refuse if this profile (env "
        "SEALBOX_PROFILE; default: default) is a machine's or an agent's",
    )
    for parser in (create, opener):
        parser.add_argument("--passphrase-file", metavar="PATH", help="read the passphrase "
                            "from this file (its first line)")  # fmt: skip


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    import os

    if args.passphrase_file:
        try:
            lines = Path(args.passphrase_file).read_text().splitlines()
        except OSError as exc:
            raise exits.UsageError(f"cannot read {args.passphrase_file}: {exc.strerror}") from None
        return lines[0] if lines else ""
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        raise exits.UsageError(f"no terminal to ask for the passphrase: use --passphrase-file "
                               f"or set {PASSPHRASE_ENV}")  # fmt: skip
    first = getpass.getpass("Share passphrase (hidden): ")
    if confirm and getpass.getpass("Again, to confirm: ") != first:
        raise exits.UsageError("the two entries differ")
    return first


def _value(args: argparse.Namespace) -> bytes:
    if args.file:
        try:
            return Path(args.file).read_bytes()
        except OSError as exc:
            raise exits.UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    if sys.stdin.isatty():
        first = getpass.getpass("Value to share (hidden): ")
        if getpass.getpass("Again, to confirm: ") != first:
            raise exits.UsageError("the two entries differ")
        return first.encode()
    return sys.stdin.buffer.read()


def _create(args: argparse.Namespace) -> int:
    from sealbox.client import shares
    from sealbox.errors import MalformedInput
    from sealbox.protocol.shares import parse_ttl

    try:
        ttl = parse_ttl(args.ttl)
    except MalformedInput as exc:
        raise exits.UsageError(f"--ttl: {exc.message}") from None
    if args.passphrase_file and not args.passphrase:
        raise exits.UsageError("--passphrase-file goes with --passphrase")
    why = shares.machine_identity(args.profile)
    if why is not None:
        raise exits.Failed(f"share links are made by people, and {why}")
    value = _value(args)
    passphrase = _passphrase(args, confirm=True) if args.passphrase else None
    try:
        made = shares.create(value, ttl=ttl, passphrase=passphrase, profile=args.profile)
    except MalformedInput as exc:
        raise exits.UsageError(exc.message) from None
    print(made.link.url)
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(made.expires_at))
    print(f"One view, until {until}" + (", with a passphrase (send it another way)"
          if passphrase is not None else "") + ". Anyone with the whole link can open it.",
          file=sys.stderr)  # fmt: skip
    return exits.OK


def _open(args: argparse.Namespace) -> int:
    from sealbox.client import shares
    from sealbox.errors import MalformedInput
    from sealbox.protocol.shares import parse_link

    why = shares.machine_identity(args.profile)
    if why is not None:
        raise exits.Failed(f"share links are for people, and {why}; nothing was opened. "
                           "Open the link in a browser, or give a machine the secret as an "
                           "item it is granted.")  # fmt: skip
    try:
        link = parse_link(args.url)
    except MalformedInput as exc:
        raise exits.UsageError(f"{exc.message}. {exc.hint or ''}".strip()) from None
    value = shares.open_link(link, lambda: _passphrase(args, confirm=False))
    out = sys.stdout.buffer
    out.write(value if args.no_newline else value + b"\n")
    out.flush()
    return exits.OK


def run(args: argparse.Namespace) -> int:
    command = f"share {args.share_command}"
    action = _create if args.share_command == "create" else _open
    return exits.guarded(lambda: action(args), command)
