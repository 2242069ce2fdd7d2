"""``sealbox approve`` and ``sealbox approver serve|add|remove|list|grant|policy``.

Argument parsing, passphrase prompts and wiring only: the terminal approver is
:mod:`sealbox.approver.terminal`, the automated one :mod:`sealbox.approver.serve`,
and both answer through :mod:`sealbox.approver.answer`.  Answering in the
terminal takes the key file's passphrase each time (asked here), unless the
key was unlocked for a bounded time with ``--unlock-for``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sealbox.cli import exits, policy_axes

__all__ = [
    "add_approver_actions", "add_parsers", "key_options", "open_session", "run_approve",
    "run_approver",
]  # fmt: skip


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", help="this approver's key file (default: the only one in "
                        "the config directory)")  # fmt: skip
    parser.add_argument("--passphrase-file", help="read the passphrase from this file "
                        "(env SEALBOX_PASSPHRASE; default: ask)")  # fmt: skip


def add_parsers(sub: Any) -> None:
    approve = sub.add_parser("approve", help="the interactive terminal approver: answer requests, "
                             "logins and new devices as they arrive")  # fmt: skip
    _key_options(approve)
    approve.add_argument("--unlock-for", metavar="DURATION", default="0",
                         help="after one passphrase, approve without asking again for this "
                         "long (e.g. 10m; at most 8h; default: ask every time)")  # fmt: skip


def add_approver_actions(asub: Any) -> None:
    serve = asub.add_parser("serve", help="the automated approver: answer requests by rules")
    serve.add_argument("--rules", required=True, help="the rules file (TOML)")
    serve.add_argument("--log", help="append decisions here as JSON lines (default: stdout)")
    serve.add_argument("--on-canary", metavar="CMD",
                       help="run CMD (split as a shell would, no shell) each time this approver "
                       "releases a canary, with SEALBOX_CANARY_PATHS, _REQUEST, _CLIENT, "
                       "_CLIENT_NAME, _PURPOSE, _SOURCE_IP and _RULE in its environment (never "
                       "a value)")  # fmt: skip
    serve.add_argument("--checkpoint-every", type=float, default=3600, metavar="SECONDS",
                       help="verify the audit log and sign a checkpoint of its head this "
                       "often (default: 3600; 0: never)")  # fmt: skip
    _key_options(serve)

    add = asub.add_parser("add", help="pair THIS device as another approver of a vault")
    add.add_argument("--server", required=True, help="the relay's URL")
    add.add_argument("--name", default=socket.gethostname(), help="this device's name")
    add.add_argument("--kind", choices=("terminal", "automated"), default="terminal",
                     help="terminal: a person answers with `sealbox approve` (default); "
                     "automated: `sealbox approver serve` answers by rules")  # fmt: skip
    add.add_argument("--key-file", help="where to keep the keys (default: the config directory)")
    add.add_argument("--passphrase-file", help="read the new key file's passphrase from this file "
                     "(env SEALBOX_PASSPHRASE; default: ask twice)")  # fmt: skip
    add.add_argument("--keyring", action="store_true",
                     help="keep what opens the key file in the OS keyring")  # fmt: skip

    remove = asub.add_parser("remove", help="remove an approver; re-seal what it held")
    remove.add_argument("approver", metavar="APV_ID",
                        help="the approver to remove (see `sealbox approver list`)")  # fmt: skip
    remove.add_argument("--force", action="store_true",
                        help="remove even if some items could never be read again")  # fmt: skip
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _key_options(remove)

    lst = asub.add_parser("list", help="the vault's approvers, from the verified directory")
    _key_options(lst)

    grant = asub.add_parser("grant", help="let a client ask for items matching a pattern")
    grant.add_argument("client", metavar="CLI_ID",
                       help="the client's id (`sealbox login` and `whoami` show it)")  # fmt: skip
    grant.add_argument("pattern", help="PROJECT/ENV/ITEM, each segment may use * and ?")
    _key_options(grant)

    policy = asub.add_parser("policy", help="set who must approve items matching a pattern")
    policy.add_argument("pattern", help="PROJECT/ENV/ITEM, each segment may use * and ?")
    policy.add_argument("--approvers", required=True, help="comma-separated apv_ ids")
    policy.add_argument("--threshold", type=int, default=1, help="how many must approve (M)")
    policy.add_argument("--expiry", type=int, default=300, help="seconds a request may wait")
    policy.add_argument("--max-cache", type=int, default=0,
                        help="seconds a client may keep released values (0: never)")  # fmt: skip
    policy.add_argument("--cidr", action="append", default=[], metavar="CIDR",
                        help="a network clients must ask from for these items (repeatable; "
                        "default: any)")  # fmt: skip
    policy_axes.add_axis_options(policy)
    _key_options(policy)


# --- keys -------------------------------------------------------------------------------------


def _key_path(args: argparse.Namespace) -> Path:
    from sealbox.approver import keystore

    if args.key_file:
        return Path(args.key_file)
    found = sorted(
        p
        for p in (keystore.config_dir() / "approvers").glob("vlt_*.json")
        if not p.name.endswith(".head.json")  # the verified directory head kept beside it
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise exits.Failed("no approver key file here: run `sealbox approver init` or "
                           "`sealbox approver add` first, or pass --key-file")  # fmt: skip
    raise exits.UsageError("several approver key files: pick one with --key-file")


def _passphrase(args: argparse.Namespace, prompt: str = "Passphrase: ") -> str:
    import getpass

    if getattr(args, "passphrase_file", None):
        return Path(args.passphrase_file).read_text().rstrip("\n")
    if os.environ.get("SEALBOX_PASSPHRASE"):
        return os.environ["SEALBOX_PASSPHRASE"]
    if not sys.stdin.isatty():
        raise exits.UsageError("no terminal to ask for the passphrase: set SEALBOX_PASSPHRASE "
                               "or pass --passphrase-file")  # fmt: skip
    return getpass.getpass(prompt)


def _unlock(args: argparse.Namespace) -> tuple[Path, Any]:
    from sealbox.approver import keystore
    from sealbox.errors import DecryptionFailed

    path = _key_path(args)
    try:
        if keystore.uses_keyring(path):
            return path, keystore.load(path, keystore.keyring_passphrase(path))
        return path, keystore.load(path, _passphrase(args, f"Passphrase for {path.name}: "))
    except DecryptionFailed:
        raise exits.Failed("wrong passphrase for the key file") from None


def _session(args: argparse.Namespace) -> Any:
    from sealbox.approver.session import ApproverSession

    path, keys = _unlock(args)
    return ApproverSession(keys, head_path=path.with_name(path.stem + ".head.json"))


#: For the groups under ``sealbox approver`` that live in modules of their own (network).
key_options = _key_options
open_session = _session


# --- sealbox approver serve -----------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from sealbox.approver.rules import load_rules
    from sealbox.approver.serve import AutomatedApprover

    rules = load_rules(Path(args.rules))
    on_canary = None
    if args.on_canary is not None:
        import shlex

        try:
            on_canary = shlex.split(args.on_canary)
        except ValueError as exc:
            raise exits.UsageError(f"--on-canary: {exc}") from None
        if not on_canary:
            raise exits.UsageError("--on-canary needs a command")
    session = _session(args)
    log = open(args.log, "a") if args.log else sys.stdout  # noqa: SIM115 - kept open while serving
    if args.log:
        os.chmod(args.log, 0o600)
    bot = AutomatedApprover(session, rules, log=log, on_canary=on_canary)

    def stop(*_: Any) -> None:
        bot.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    keys = session.keys
    print(
        f"sealbox approver serve: {keys.record.id} ({keys.record.name}) for vault "
        f"{keys.vault} at {keys.server}; {len(rules.rules)} rule(s).",
        file=sys.stderr,
    )

    def ready() -> None:
        print("Listening for requests.", file=sys.stderr, flush=True)

    checkpointer = _checkpointer(args, session, log)
    runner = threading.Thread(target=bot.run, kwargs={"on_ready": ready}, daemon=True)
    runner.start()
    while not bot.stopping.wait(0.5):
        pass
    if checkpointer is not None:
        checkpointer.close()
    bot.close()
    session.close()
    print("Stopped.", file=sys.stderr)
    return exits.OK


def _checkpointer(args: argparse.Namespace, session: Any, log: Any) -> Any:
    """Sign audit checkpoints on a schedule, with a session of its own (its own connection)."""
    from sealbox.approver.checkpoints import Checkpointer, memory
    from sealbox.approver.session import ApproverSession

    every = args.checkpoint_every
    if not (every == 0 or 0.1 <= every <= 366 * 86400):  # NaN and infinities fail too
        raise exits.UsageError("--checkpoint-every must be 0 (never) or 0.1 seconds to a year")
    if not args.checkpoint_every:
        return None
    path = _key_path(args)
    own = ApproverSession(session.keys, head_path=session.head_path)
    checkpointer = Checkpointer(own, every=args.checkpoint_every, log=log,
                                seen=memory(path))  # fmt: skip
    checkpointer.start()
    return checkpointer


# --- sealbox approver add / remove / list / grant / policy -------------------------------------


def _add(args: argparse.Namespace) -> int:
    import httpx

    from sealbox.approver import admin, keystore

    server = args.server.rstrip("/")
    if args.keyring:
        keystore.require_keyring()
    passphrase = None if args.keyring else _new_passphrase(args)
    with httpx.Client(timeout=30) as http:
        started = admin.pair_new_device(http, server, name=args.name, kind=args.kind)
        print(f"Pairing this device with vault {started.vault} at {server}.")
        print(f"  Vault safety code:   {started.safety_code}")
        print(f"  Pairing code:        {started.pairing_code}")
        print(f"  Approver id:         {started.record.id}")
        print(f"  Signing key:         {started.record.sig_pk.fingerprint()}")
        print("On a device that is already an approver, run `sealbox approve` and type this")
        print("pairing code when it shows this device. Compare the vault safety code too.")
        print("Waiting...", flush=True)
        deadline = time.monotonic() + 600
        while (keys := admin.pairing_done(http, server, started)) is None:
            if time.monotonic() > deadline:
                raise exits.Failed("the pairing expired")
            time.sleep(1)
    path = Path(args.key_file) if args.key_file else keystore.default_path(keys.vault)
    if passphrase is None:
        keystore.save_in_keyring(path, keys)
    else:
        keystore.save(path, keys, passphrase)
    print(f"Added: {keys.record.id} is now an approver of {keys.vault}.")
    print(f"Keys kept in {path} (0600, sealed with your passphrase).")
    return exits.OK


def _new_passphrase(args: argparse.Namespace) -> str:
    import getpass

    if args.passphrase_file:
        passphrase = Path(args.passphrase_file).read_text().rstrip("\n")
    elif os.environ.get("SEALBOX_PASSPHRASE"):
        passphrase = os.environ["SEALBOX_PASSPHRASE"]
    else:
        if not sys.stdin.isatty():
            raise exits.UsageError("no terminal to ask for a passphrase: set SEALBOX_PASSPHRASE")
        passphrase = getpass.getpass("Passphrase for this approver's key file: ")
        if getpass.getpass("Again, to confirm: ") != passphrase:
            raise exits.UsageError("the two entries differ")
    if len(passphrase) < 8:
        raise exits.UsageError("choose a passphrase of at least 8 characters")
    return passphrase


def _remove(args: argparse.Namespace) -> int:
    from sealbox.approver import admin

    session = _session(args)
    removal = admin.plan_removal(session, args.approver)
    print(f"Removing {args.approver}: it holds shares of {len(removal.plans)} item(s).")
    for plan in removal.plans:
        print(f"  {plan.path} v{plan.version} ({plan.threshold}-of-N): {plan.action}")
    if removal.stranded and not args.force:
        raise exits.Failed(f"{len(removal.stranded)} item(s) would be left with fewer holders "
                           "than their threshold; re-store them first or pass --force")  # fmt: skip
    if not args.yes:
        if not sys.stdin.isatty():
            raise exits.UsageError("confirm with --yes (no terminal to ask)")
        if input("Type 'remove' to go on: ").strip() != "remove":
            raise exits.Failed("not removed")
    for line in admin.remove_approver(session, removal, force=args.force):
        print(line)
    return exits.OK


def _list(args: argparse.Namespace) -> int:
    session = _session(args)
    directory = session.directory(fresh=True)
    print(f"Vault {directory.vault}, safety code {directory.safety_code}, "
          f"directory head {directory.head.seq} (verified from the pinned link 0):")  # fmt: skip
    for record in sorted(directory.approvers.values(), key=lambda r: r.id):
        me = "  (this device)" if record.id == session.id else ""
        print(f"  {record.id}  {record.name}  {record.kind}  "
              f"{record.sig_pk.fingerprint()[:23]}…{me}")  # fmt: skip
    return exits.OK


def _grant(args: argparse.Namespace) -> int:
    session = _session(args)
    session.ok("POST", f"/clients/{args.client}/grants", "granting",
               json_body={"pattern": args.pattern})  # fmt: skip
    print(f"{args.client} may now ask for {args.pattern}.")
    return exits.OK


def _policy(args: argparse.Namespace) -> int:
    axes = policy_axes.axis_body(args)  # a malformed axis is a usage error before anything
    session = _session(args)
    approvers = [a.strip() for a in args.approvers.split(",") if a.strip()]
    body = {"pattern": args.pattern, "approvers": approvers, "threshold": args.threshold,
            "expiry_seconds": args.expiry, "max_cache_seconds": args.max_cache,
            "store_needs_approval": True, "cidrs": args.cidr, **axes}  # fmt: skip
    # Signed, so that every approver can verify it and check its windows and destroy date.
    body["statement"] = policy_axes.sign(session, body)
    stored = session.ok("PUT", "/policies", "setting the policy", json_body=body)
    print(f"Policy for {args.pattern}: {args.threshold} of {len(approvers)} approver(s), "
          "signed by this approver.")  # fmt: skip
    for line in policy_axes.describe(stored):
        print(f"  {line}")
    return exits.OK


_ACTIONS = {"serve": _serve, "add": _add, "remove": _remove, "list": _list, "grant": _grant,
            "policy": _policy}  # fmt: skip


def run_approver(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _ACTIONS[args.approver_command](args),
                         f"approver {args.approver_command}")  # fmt: skip


# --- sealbox approve (interactive) -------------------------------------------------------------


def _duration(text: str) -> int:
    found = re.fullmatch(r"(\d+)([smh]?)", text.strip())
    if not found:
        raise exits.UsageError("--unlock-for takes a duration like 90s, 10m or 1h")
    seconds = int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]
    if seconds > 8 * 3600:
        raise exits.UsageError("--unlock-for is at most 8h")
    return seconds


def _console(args: argparse.Namespace, path: Path) -> Any:
    """The terminal the approver talks through: print, ask, and the passphrase before answers."""
    from sealbox.approver import keystore
    from sealbox.approver.terminal import Console
    from sealbox.errors import DecryptionFailed

    unlock_for = _duration(args.unlock_for)
    # After the passphrase that opened the key file, answers need none for this long.
    unlocked_until = time.monotonic() + unlock_for

    def say(text: str = "") -> None:
        print(text, flush=True)

    def ask(prompt: str) -> str:
        try:
            return input(prompt).strip()
        except EOFError:
            raise KeyboardInterrupt from None

    def verify() -> bool:
        """User verification: the passphrase again, unless unlocked for a while."""
        nonlocal unlocked_until
        if time.monotonic() < unlocked_until:
            return True
        if keystore.uses_keyring(path):
            # The OS keyring holds the secret: confirm with a second deliberate "yes".
            return ask("Confirm once more: type 'yes': ").lower() == "yes"
        try:
            keystore.load(path, _passphrase(args, "Passphrase to confirm: "))
        except DecryptionFailed:
            say("Wrong passphrase: nothing was answered.")
            return False
        if unlock_for:
            unlocked_until = time.monotonic() + unlock_for
        return True

    return Console(say=say, ask=ask, verify=verify)


def run_approve(args: argparse.Namespace) -> int:
    def go() -> int:
        from sealbox.approver.session import ApproverSession
        from sealbox.approver.terminal import TerminalApprover

        _duration(args.unlock_for)  # a bad duration is a usage error before any passphrase
        path, keys = _unlock(args)
        session = ApproverSession(keys, head_path=path.with_name(path.stem + ".head.json"))
        try:
            TerminalApprover(session, _console(args, path)).loop()
        except KeyboardInterrupt:
            print("\nStopped.")
            return exits.OK
        finally:
            session.close()
        return exits.OK  # pragma: no cover - the loop ends only by an interruption

    return exits.guarded(go, "approve")
