"""``sealbox approve`` and ``sealbox approver serve|add|remove|list|grant|policy``.

The interactive approver shows each pending request with only verified
information, labelled as such, and what the relay alone reports apart from it;
answering needs a deliberate confirmation (typing ``yes``, the login's user
code, or the new device's pairing code) and the key file's passphrase, unless
the key was unlocked for a bounded time with ``--unlock-for``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import queue
import re
import shlex
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sealbox._relay.text import displayable
from sealbox.cli import exits

__all__ = ["add_approver_actions", "add_parsers", "run_approve", "run_approver"]


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
    _key_options(serve)

    add = asub.add_parser("add", help="pair THIS device as another approver of a vault")
    add.add_argument("--server", required=True, help="the relay's URL")
    add.add_argument("--name", default=socket.gethostname(), help="this device's name")
    add.add_argument("--kind", choices=("terminal", "automated"), default="terminal")
    add.add_argument("--key-file", help="where to keep the keys (default: the config directory)")
    add.add_argument("--passphrase-file", help="read the new key file's passphrase from this file "
                     "(env SEALBOX_PASSPHRASE; default: ask twice)")  # fmt: skip
    add.add_argument("--keyring", action="store_true",
                     help="keep what opens the key file in the OS keyring")  # fmt: skip

    remove = asub.add_parser("remove", help="remove an approver; re-seal what it held")
    remove.add_argument("approver", metavar="APV_ID")
    remove.add_argument("--force", action="store_true",
                        help="remove even if some items could never be read again")  # fmt: skip
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _key_options(remove)

    lst = asub.add_parser("list", help="the vault's approvers, from the verified directory")
    _key_options(lst)

    grant = asub.add_parser("grant", help="let a client ask for items matching a pattern")
    grant.add_argument("client", metavar="CLI_ID")
    grant.add_argument("pattern", help="PROJECT/ENV/ITEM, each segment may use * and ?")
    _key_options(grant)

    policy = asub.add_parser("policy", help="set who must approve items matching a pattern")
    policy.add_argument("pattern")
    policy.add_argument("--approvers", required=True, help="comma-separated apv_ ids")
    policy.add_argument("--threshold", type=int, default=1, help="how many must approve (M)")
    policy.add_argument("--expiry", type=int, default=300, help="seconds a request may wait")
    policy.add_argument("--max-cache", type=int, default=0,
                        help="seconds a client may keep released values (0: never)")  # fmt: skip
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


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


# --- sealbox approver serve -----------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from sealbox.approver.rules import load_rules
    from sealbox.approver.serve import AutomatedApprover

    rules = load_rules(Path(args.rules))
    session = _session(args)
    log = open(args.log, "a") if args.log else sys.stdout  # noqa: SIM115 - kept open while serving
    if args.log:
        os.chmod(args.log, 0o600)
    bot = AutomatedApprover(session, rules, log=log)

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

    runner = threading.Thread(target=bot.run, kwargs={"on_ready": ready}, daemon=True)
    runner.start()
    while not bot.stopping.wait(0.5):
        pass
    bot.close()
    session.close()
    print("Stopped.", file=sys.stderr)
    return exits.OK


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
    session = _session(args)
    approvers = [a.strip() for a in args.approvers.split(",") if a.strip()]
    body = {"pattern": args.pattern, "approvers": approvers, "threshold": args.threshold,
            "expiry_seconds": args.expiry, "max_cache_seconds": args.max_cache,
            "store_needs_approval": True}  # fmt: skip
    session.ok("PUT", "/policies", "setting the policy", json_body=body)
    print(f"Policy for {args.pattern}: {args.threshold} of {len(approvers)} approver(s).")
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


class _Terminal:
    """The interactive approver's loop: a reader thread feeds events; this thread asks."""

    def __init__(self, args: argparse.Namespace, path: Path, session: Any) -> None:
        self.args = args
        self.path = path
        self.session = session
        self.unlock_for = _duration(args.unlock_for)
        self.unlocked_until = 0.0
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: set[str] = set()

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def ask(self, prompt: str) -> str:
        try:
            return input(prompt).strip()
        except EOFError:
            raise KeyboardInterrupt from None

    def verified(self) -> bool:
        """User verification: the passphrase again, unless unlocked for a while."""
        from sealbox.approver import keystore
        from sealbox.errors import DecryptionFailed

        if time.monotonic() < self.unlocked_until:
            return True
        if keystore.uses_keyring(self.path):
            # The OS keyring holds the secret: confirm with a second deliberate "yes".
            return self.ask("Confirm once more: type 'yes': ").lower() == "yes"
        try:
            keystore.load(self.path, _passphrase(self.args, "Passphrase to confirm: "))
        except DecryptionFailed:
            self.say("Wrong passphrase: nothing was answered.")
            return False
        if self.unlock_for:
            self.unlocked_until = time.monotonic() + self.unlock_for
        return True

    def reader(self) -> None:
        import httpx

        from sealbox.errors import SealboxError

        while True:
            try:
                with self.session.stream() as stream:
                    self.events.put(("connected", None))
                    for event, data in stream:
                        if event in ("request", "device-requests", "pairing", "directory"):
                            self.events.put((event, data))
            except (httpx.HTTPError, SealboxError) as exc:
                self.events.put(("error", type(exc).__name__))
            time.sleep(1)

    def show_request(self, entry: dict[str, Any]) -> None:
        from sealbox.approver import review as rv
        from sealbox.errors import SealboxError

        now = int(time.time())
        try:
            rev = rv.review(entry, directory=self.session.directory(fresh=True),
                            keys=self.session.keys, now=now)  # fmt: skip
        except SealboxError as exc:
            self.say(
                f"!! Request {entry.get('id', '?')[:12]} does NOT verify ({exc.code}: "
                f"{exc.message}). It is not shown and not answered: tell your team."
            )
            return
        c = rev.context
        title = "ACCESS REQUEST" if rev.kind == "access" else "STORE REQUEST"
        self.say("")
        self.say(f"=== {title} {rev.id[:12]} " + "=" * 30)
        self.say(
            "Verified (certificate checked against the directory; details signed by the client):"
        )
        self.say(f"  who:      {rev.client_name} ({rev.client_kind}, {rev.client_id})")
        issuer = self.session.directory().approvers.get(rev.issuer)
        by = f"{issuer.name} ({rev.issuer})" if issuer else rev.issuer
        self.say(f"            certified by {by}; scopes {', '.join(rev.scopes)}")
        self.say(f"  host:     {c.host or '-'}")
        self.say(f"  user:     {c.user or '-'}" + (f" (uid {c.uid})" if c.uid is not None else ""))
        self.say(f"  process:  {c.exe or '-'} (pid {c.pid}, parent {c.ppid})")
        if c.exe_sha256:
            self.say(f"            sha256 {c.exe_sha256}")
        self.say(f"  command:  {shlex.join(c.argv) or '-'}")
        self.say(f"  cwd:      {c.cwd or '-'}")
        self.say(f"  purpose:  {rev.purpose}")
        for item in rev.items:
            label = "stores:" if rev.kind == "store" else "reads: "
            self.say(f"  {label}   {item.path} v{item.version}: {', '.join(item.fields)}"
                     f"  ({item.threshold}-of-{item.holders})")  # fmt: skip
        left = max(0, rev.expires_at - now)
        self.say(f"  time:     asked {_when(rev.at)}; expires {_when(rev.expires_at)} "
                 f"(in {left // 60}:{left % 60:02d})")  # fmt: skip
        if rev.kind == "access":
            cache = (f"{rev.cache_seconds} s ({rev.cache_scope})" if rev.cache_seconds
                     else "no caching")  # fmt: skip
            self.say(f"  cache:    {cache}; approvals so far {rev.approvals}/{rev.threshold}")
        self.say("Reported by server (not verified):")
        self.say(f"  source IP: {displayable(rev.reported_by_server.get('source_ip') or '-', 64)}")
        answer = self.ask("Approve? Type 'yes' to approve, 'no' to deny, Enter to skip: ").lower()
        if answer == "yes":
            if not self.verified():
                return
            directory = self.session.directory()
            if rev.kind == "access":
                token = rv.release_token(rev, directory=directory, keys=self.session.keys,
                                         now=int(time.time()))  # fmt: skip
                self.session.ok("POST", f"/access-requests/{rev.id}/release", "releasing",
                                json_body={"release": token})  # fmt: skip
                self.say(f"Released {rev.id[:12]}.")
            else:
                token = rv.manifest_token(rev, directory=directory, keys=self.session.keys,
                                          now=int(time.time()))  # fmt: skip
                self.session.ok("POST", f"/store-requests/{rev.id}/manifest", "approving",
                                json_body={"manifest": token})  # fmt: skip
                self.say(f"Stored {rev.items[0].path} v{rev.items[0].version}.")
        elif answer == "no":
            reason = self.ask("Reason (shown to the requester): ") or "denied by an approver"
            if not self.verified():
                return
            token = rv.deny_token(rev.id, reason=reason, directory=self.session.directory(),
                                  keys=self.session.keys, now=int(time.time()))  # fmt: skip
            self.session.ok("POST", f"/{rev.kind}-requests/{rev.id}/deny", "denying",
                            json_body={"deny": token})  # fmt: skip
            self.say(f"Denied {rev.id[:12]}.")
        else:
            self.say("Skipped: it stays pending (shown again when you restart `sealbox approve`).")

    def show_logins(self) -> None:
        from sealbox.approver import admin
        from sealbox.crypto.keys import VerifyKey

        logins = self.session.ok("GET", "/device-requests", "listing logins")["device_requests"]
        for login in logins:
            code = displayable(login["user_code"], 16)
            if "login " + code in self.seen:
                continue
            self.seen.add("login " + code)
            self.say("")
            self.say(f"=== LOGIN {code} " + "=" * 30)
            # Everything here comes from the relay: the key's codes are computed here from
            # the key itself, and the name is made safe to print.
            key = VerifyKey.from_text(login["sig_pk"])
            name = displayable(login["client_name"], 128)
            self.say(f"  client:       {name} (human, {displayable(login['client_id'], 40)})")
            self.say(f"  key:          {key.fingerprint()}")
            self.say(f"  safety code:  {key.safety_code()}")
            self.say(f"  expires:      {_when(login['expires_at'])}")
            self.say("Compare the user code and the key safety code with the person's terminal.")
            typed = self.ask("Type the user code to approve, 'no' to deny, Enter to skip: ")
            if typed.lower() == "no":
                self.session.ok("POST", f"/device-requests/{code}/deny", "denying the login")
                self.say(f"Login {code} denied.")
                continue
            if not typed:
                self.say("Skipped.")
                continue
            if typed.upper().replace(" ", "") != code.upper().replace(" ", ""):
                self.say("That is not this login's user code: nothing was approved.")
                continue
            grant = self.ask("Items this person may ask for [*/*/*, or 'none']: ") or "*/*/*"
            if not self.verified():
                continue
            client = admin.approve_login(self.session, login, scopes=["read", "write"],
                                         grant=None if grant == "none" else grant)  # fmt: skip
            self.say(f"Login {code} approved: {client} certified"
                     + ("" if grant == "none" else f", granted {grant}") + ".")  # fmt: skip

    def show_pairings(self) -> None:
        from sealbox.approver import admin
        from sealbox.errors import SealboxError
        from sealbox.protocol import directory as dirs
        from sealbox.protocol.statements import ApproverRecord

        pairings = self.session.ok("GET", "/pairing-requests", "listing pairings")
        for entry in pairings["pairing_requests"]:
            if "pair " + entry["id"] in self.seen:
                continue
            self.seen.add("pair " + entry["id"])
            try:
                record = ApproverRecord.from_json(entry["approver"])
            except SealboxError as exc:
                self.say(f"!! A pairing request is malformed ({exc.message}); ignored.")
                continue
            code = dirs.pairing_code(record)
            self.say("")
            self.say("=== NEW APPROVER DEVICE " + "=" * 30)
            self.say(f"  name:        {record.name} ({record.kind}, {record.id})")
            self.say(f"  signing key: {record.sig_pk.fingerprint()}")
            ip = displayable((entry.get("reported_by_server") or {}).get("source_ip"), 64)
            self.say(f"Reported by server (not verified): source IP {ip}")
            self.say("The new device shows a pairing code. It is NOT shown here: type it.")
            typed = self.ask("Pairing code (or 'no' to refuse, Enter to skip): ")
            if typed.lower() == "no":
                self.session.ok("POST", f"/pairing-requests/{entry['id']}/deny", "refusing")
                self.say("Refused.")
                continue
            if not typed:
                self.say("Skipped.")
                continue
            if re.sub(r"\s", "", typed) != re.sub(r"\s", "", code):
                self.say("The codes differ: the device was NOT added (someone may have swapped "
                         "its keys on the way).")  # fmt: skip
                continue
            if not self.verified():
                continue
            directory = admin.add_device(self.session, record)
            self.say(f"Added {record.id}; directory head is now {directory.head.seq}.")

    def show_pending(self, request_id: str | None = None) -> None:
        if request_id is not None:
            response = self.session.request("GET", f"/approvals/{request_id}")
            entries = [response.json()] if response.status_code == 200 else []
        else:
            entries = self.session.ok("GET", "/approvals", "listing requests")["requests"]
        for entry in entries:
            if entry["id"] in self.seen or entry.get("answered"):
                continue
            self.seen.add(entry["id"])
            self.show_request(entry)

    def loop(self) -> int:
        import httpx

        from sealbox.errors import SealboxError

        keys = self.session.keys
        directory = self.session.directory(fresh=True)
        self.say(f"sealbox approve: {keys.record.id} ({keys.record.name}), vault {keys.vault} "
                 f"at {keys.server}")  # fmt: skip
        self.say(f"Vault safety code: {directory.safety_code}")
        threading.Thread(target=self.reader, daemon=True).start()
        while True:
            event, data = self.events.get()
            try:
                self.dispatch(event, data)
            except (SealboxError, httpx.HTTPError) as exc:
                # One request that cannot be answered must not end the session.
                message = exc.message if isinstance(exc, SealboxError) else type(exc).__name__
                self.say(f"!! Could not complete that: {message}")

    def dispatch(self, event: str, data: Any) -> None:
        if event == "connected":
            self.say("Watching for requests, logins and new devices (Ctrl-C to stop).")
            self.show_logins()
            self.show_pairings()
            self.show_pending()
        elif event == "request" and isinstance(data, dict) and data.get("state") == "pending":
            self.show_pending(str(data.get("id")))
        elif event == "device-requests":
            self.show_logins()
        elif event == "pairing":
            self.show_pairings()
        elif event == "directory":
            self.session.forget_directory()
        elif event == "error":
            self.say(f"(lost the relay: {data}; reconnecting)")


def run_approve(args: argparse.Namespace) -> int:
    def go() -> int:
        path, keys = _unlock(args)
        from sealbox.approver.session import ApproverSession

        session = ApproverSession(keys, head_path=path.with_name(path.stem + ".head.json"))
        terminal = _Terminal(args, path, session)
        if terminal.unlock_for:
            terminal.unlocked_until = time.monotonic() + terminal.unlock_for
        try:
            return terminal.loop()
        except KeyboardInterrupt:
            print("\nStopped.")
            return exits.OK

    return exits.guarded(go, "approve")
