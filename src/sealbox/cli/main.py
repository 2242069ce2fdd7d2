"""Entry point of the ``sealbox`` command.

Exit codes are listed in :mod:`sealbox.cli.exits` and the README.

What a command imports is what it costs before it does anything, so this
module imports nearly nothing at its top: ``sealbox --version`` and a
``sealbox read`` the cache agent answers are recognised first
(:mod:`sealbox.cli.fastpath`) and never load argparse, the HTTP client or the
protocol; every other command imports what it needs where it needs it.
"""

from __future__ import annotations

import io
import os
import sys
import time

# Not typing's: importing typing costs a fast path a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    import httpx

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: The commands of :mod:`sealbox.cli.items` (``items.COMMANDS``; a test keeps them equal).
ITEM_COMMANDS = ("store", "read", "get", "ls", "history", "run", "inject")


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (env SEALBOX_DB_URL; "
                        "default: SQLite in the data directory)")  # fmt: skip
    parser.add_argument(
        "--db-schema", metavar="NAME", help="PostgreSQL schema (env SEALBOX_DB_SCHEMA)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (env SEALBOX_DATA_DIR)")


def _fatigue_options(parser: argparse.ArgumentParser) -> None:
    """The relay's limits on each requester (against approval fatigue)."""
    group = parser.add_argument_group(
        "limits per requester (an approver may set others for one client: "
        "`sealbox approver requesters limits`)"
    )
    for option, env, text in (
        ("--prompts-per-minute", "SEALBOX_PROMPTS_PER_MINUTE",
         "new requests one client may make in any 60 seconds (default 60)"),
        ("--pending-cap", "SEALBOX_PENDING_CAP",
         "requests one client may have waiting at once (default 20)"),
        ("--storm-prompts", "SEALBOX_STORM_PROMPTS",
         "more requests than this from one client in a minute is audited as a prompt storm "
         "(default 20)"),
        ("--lockout-denials", "SEALBOX_LOCKOUT_DENIALS",
         "denials in a row after which a client is locked out until an approver unlocks it "
         "(default 5; 0: never)"),
        ("--lockout-window", "SEALBOX_LOCKOUT_WINDOW",
         "seconds within which denials count as in a row (default 3600)"),
    ):  # fmt: skip
        group.add_argument(option, type=int, metavar="N", help=f"{text} (env {env})")


def _alert_options(parser: argparse.ArgumentParser) -> None:
    """Where email alerts go out, and how fast failed deliveries are retried."""
    group = parser.add_argument_group(
        "alerts (targets: `sealbox approver alerts`; the SMTP password only from env "
        "SEALBOX_SMTP_PASSWORD)"
    )
    group.add_argument("--smtp-host", metavar="HOST", help="SMTP server for email alerts "
                       "(env SEALBOX_SMTP_HOST; STARTTLS whenever it offers it)")  # fmt: skip
    group.add_argument("--smtp-port", type=int, metavar="N",
                       help="its port (env SEALBOX_SMTP_PORT; default 25)")  # fmt: skip
    group.add_argument("--smtp-from", metavar="ADDRESS",
                       help="the From address (env SEALBOX_SMTP_FROM)")  # fmt: skip
    group.add_argument("--smtp-user", metavar="NAME", help="SMTP login, sent only over TLS "
                       "(env SEALBOX_SMTP_USER)")  # fmt: skip
    group.add_argument("--smtp-ca-file", metavar="PEM", help="CA certificates to trust for "
                       "the SMTP server's TLS instead of the system's "
                       "(env SEALBOX_SMTP_CA_FILE)")  # fmt: skip
    for option, env, text in (
        ("--alert-retry-base", "SEALBOX_ALERT_RETRY_BASE",
         "seconds before the first retry of a failed delivery, doubled per failure with "
         "full jitter (default 10)"),
        ("--alert-retry-cap", "SEALBOX_ALERT_RETRY_CAP", "longest wait between retries "
         "(default 3600)"),
        ("--alert-timeout", "SEALBOX_ALERT_TIMEOUT", "seconds a webhook call or SMTP session "
         "may take (default 10)"),
    ):  # fmt: skip
        group.add_argument(option, type=float, metavar="SECONDS", help=f"{text} (env {env})")
    group.add_argument(
        "--smtp-require-tls",
        action="store_true",
        default=None,
        help="send alert mail only over STARTTLS (env SEALBOX_SMTP_REQUIRE_TLS)",
    )
    group.add_argument("--alert-allow-network", action="append", metavar="CIDR",
                       help="a non-public network webhooks may reach, e.g. 10.0.0.0/8; "
                       "repeatable (env SEALBOX_ALERT_ALLOW_NETWORKS, comma-separated); "
                       "loopback and private addresses are refused by default")  # fmt: skip


def _profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="which login to use (env SEALBOX_PROFILE; default: default)",
    )


def _default_client_name() -> str:
    import getpass
    import socket

    host = socket.gethostname() or "localhost"
    try:
        return f"{getpass.getuser()}@{host}"[:128]
    except (KeyError, OSError):
        return host[:128]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``sealbox``; for an item ``command``, one with only the item commands.

    Such a command line parses the same either way (its own subparser does
    the work, errors and ``--help`` included), and a ``sealbox read`` that
    needs a release then does not import the approver commands as well.
    """
    import argparse
    import socket

    from sealbox import __version__

    parser = argparse.ArgumentParser(
        prog="sealbox",
        description=(
            "Vendor-blind secrets release: the relay stores only ciphertext; "
            "approver devices hold the keys."
        ),
    )
    parser.add_argument("--version", action="version", version=f"sealbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in ITEM_COMMANDS:
        from sealbox.cli import items

        items.add_parsers(sub)
        return parser
    from sealbox.cli import (
        agents,
        alerts,
        approvers,
        audit,
        cache,
        ci,
        consent,
        fatigue,
        freeze,
        items,
        machines,
        mcp,
        network,
        share,
        skill,
        team,
    )

    up = sub.add_parser("up", help="run the relay (embedded SQLite unless --db says otherwise)")
    _server_options(up)
    up.add_argument("--host", help="address to listen on (env SEALBOX_HOST; default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port (env SEALBOX_PORT; default 8300)")
    up.add_argument(
        "--public-url", help="URL clients use to reach the relay (env SEALBOX_PUBLIC_URL)"
    )
    up.add_argument(
        "--console-origin", action="append", metavar="ORIGIN",
        help="another origin the browser console may run on, e.g. http://localhost:8400 for "
        "`sealbox console` (repeatable; env SEALBOX_CONSOLE_ORIGINS, comma-separated)",
    )  # fmt: skip
    up.add_argument(
        "--trusted-proxy", action="append", metavar="CIDR",
        help="a proxy in front of the relay whose X-Forwarded-For and X-Forwarded-Proto are "
        "believed (repeatable; env SEALBOX_TRUSTED_PROXIES, comma-separated; default: none)",
    )  # fmt: skip

    _fatigue_options(up)
    _alert_options(up)

    dbp = sub.add_parser("db", help="relay database: migrate or show the schema revision")
    dbsub = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (("migrate", "bring the schema to the newest revision"),
                       ("status", "show the current and the newest schema revision")):  # fmt: skip
        _server_options(dbsub.add_parser(name, help=text))

    approver = sub.add_parser("approver", help="approver devices on this machine")
    asub = approver.add_subparsers(dest="approver_command", metavar="ACTION", required=True)
    init = asub.add_parser("init", help="create the vault's first approver on this machine")
    init.add_argument("--server", required=True, help="the relay's URL, e.g. http://localhost:8300")
    init.add_argument("--setup-token", help="the one-time token `sealbox up` printed "
                      "(env SEALBOX_SETUP_TOKEN; '-' reads it from standard input)")  # fmt: skip
    init.add_argument("--name", default=socket.gethostname(), help="this device's name")
    init.add_argument("--key-file", help="where to keep the keys (default: the config directory)")
    init.add_argument("--passphrase-file", help="read the key file's passphrase from this file "
                      "(env SEALBOX_PASSPHRASE; default: ask twice)")  # fmt: skip
    init.add_argument(
        "--keyring",
        action="store_true",
        help="keep what opens the key file in the OS keyring instead of a passphrase",
    )
    approvers.add_approver_actions(asub)
    network.add_parsers(asub)
    fatigue.add_parsers(asub)
    freeze.add_parsers(asub)
    alerts.add_parsers(asub)
    team.add_approver_actions(asub)
    approvers.add_parsers(sub)
    team.add_parsers(sub)
    team.add_policy_parsers(sub)
    items.add_parsers(sub)
    cache.add_parsers(sub)
    agents.add_parsers(sub)
    consent.add_parsers(sub)
    audit.add_parsers(sub)
    machines.add_parsers(sub)
    mcp.add_parsers(sub)
    ci.add_parsers(sub)
    skill.add_parsers(sub)
    share.add_parsers(sub)

    login = sub.add_parser("login", help="log in to a relay: this device gets a client key "
                           "that an approver certifies")  # fmt: skip
    login.add_argument(
        "--server", required=True, help="the relay's URL, e.g. http://localhost:8300"
    )
    login.add_argument(
        "--name",
        default=_default_client_name(),
        help="this client's name, shown to the approver (default: user@host)",
    )
    login.add_argument("--force", action="store_true",
                       help="replace the profile even if it is logged in")  # fmt: skip
    login.add_argument("--invite", metavar="CODE", help="join a project with the role of this "
                       "invite (`sealbox approver invite` made it); '-' reads it from standard "
                       "input (hidden on a terminal), as does env SEALBOX_INVITE")  # fmt: skip
    _profile_option(login)
    whoami = sub.add_parser("whoami", help="show the session of a profile, checked with the relay")
    _profile_option(whoami)
    logout = sub.add_parser("logout", help="revoke the session and delete the profile")
    _profile_option(logout)

    rotate = sub.add_parser(
        "rotate-master-key", help="re-wrap the relay's data keys under a new master key"
    )
    _server_options(rotate)

    console = sub.add_parser(
        "console", help="serve the browser console from this machine (localhost), for a relay"
    )
    console.add_argument("--relay", required=True, help="the relay's URL")
    console.add_argument("--port", type=int, default=8400, help="local port (default 8400)")
    console.add_argument("--open", action="store_true", help="open the console in a browser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    from sealbox.cli import fastpath

    answered = fastpath.answer(arguments)
    if answered is not None:
        return answered
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command in ITEM_COMMANDS:
        from sealbox.cli import items

        return items.run_command(args)
    if args.command == "agent":
        from sealbox.cli import agents

        return agents.run(args)
    if args.command == "consent":
        from sealbox.cli import consent

        return consent.run(args)
    if args.command == "audit":
        from sealbox.cli import audit

        return audit.run(args)
    if args.command == "cache":
        from sealbox.cli import cache

        return cache.run_cache(args)
    if args.command == "ci":
        from sealbox.cli import ci

        return ci.run(args)
    if args.command in ("approver", "approve"):
        from sealbox.cli import approvers

        if args.command == "approve":
            return approvers.run_approve(args)
        if args.approver_command == "network":
            from sealbox.cli import network

            return network.run(args)
        if args.approver_command == "requesters":
            from sealbox.cli import fatigue

            return fatigue.run(args)
        if args.approver_command in ("freeze", "unfreeze", "frozen"):
            from sealbox.cli import freeze

            return freeze.run(args)
        if args.approver_command == "alerts":
            from sealbox.cli import alerts

            return alerts.run(args)
        if args.approver_command == "invite":
            from sealbox.cli import team

            return team.run_invite(args)
        if args.approver_command != "init":
            return approvers.run_approver(args)
        return _approver_init(args)
    if args.command == "share":
        from sealbox.cli import share

        return share.run(args)
    if args.command == "skill":
        from sealbox.cli import skill

        return skill.run(args)
    if args.command == "machine":
        from sealbox.cli import machines

        return machines.run(args)
    if args.command == "mcp":
        from sealbox.cli import mcp

        return mcp.run(args)
    if args.command in ("login", "whoami", "logout"):
        return _session_command(args)
    if args.command in ("member", "policy"):
        from sealbox.cli import team

        return team.run(args) if args.command == "member" else team.run_policy(args)
    if args.command == "console":
        return _console(args)
    from sealbox.cli.exits import CANNOT_LISTEN
    from sealbox.server import runner
    from sealbox.server.config import Settings

    try:
        # Inside: a bad option value (an origin, a proxy network) is one line, exit 1.
        settings = Settings.load(
            data_dir=args.data_dir, db_url=args.db, db_schema=args.db_schema,
            host=getattr(args, "host", None), port=getattr(args, "port", None),
            public_url=getattr(args, "public_url", None),
            console_origins=getattr(args, "console_origin", None),
            trusted_proxies=getattr(args, "trusted_proxy", None),
            pending_cap=getattr(args, "pending_cap", None),
            prompts_per_minute=getattr(args, "prompts_per_minute", None),
            storm_prompts=getattr(args, "storm_prompts", None),
            lockout_denials=getattr(args, "lockout_denials", None),
            lockout_window_seconds=getattr(args, "lockout_window", None),
            smtp_host=getattr(args, "smtp_host", None),
            smtp_port=getattr(args, "smtp_port", None),
            smtp_from=getattr(args, "smtp_from", None),
            smtp_user=getattr(args, "smtp_user", None),
            smtp_ca_file=getattr(args, "smtp_ca_file", None),
            alert_retry_base=getattr(args, "alert_retry_base", None),
            alert_retry_cap=getattr(args, "alert_retry_cap", None),
            alert_timeout=getattr(args, "alert_timeout", None),
            smtp_require_tls=getattr(args, "smtp_require_tls", None),
            alert_allow_networks=getattr(args, "alert_allow_network", None),
        )  # fmt: skip
        if args.command == "up":
            runner.serve(settings)
        elif args.command == "db" and args.db_command == "migrate":
            print(f"schema at revision {runner.migrate(settings)}")
        elif args.command == "db":
            current, head = runner.db_status(settings)
            state = "up to date" if current == head else "needs `sealbox db migrate`"
            print(f"current revision: {current or 'none'}\nnewest revision:  {head}\n{state}")
        else:
            count = runner.rotate_key(settings)
            print(f"re-wrapped {count} data key(s) under the new master key")
    except runner.CannotListen as exc:
        print(f"sealbox: {exc}", file=sys.stderr)
        return CANNOT_LISTEN
    except KeyboardInterrupt:
        return EXIT_OK
    except (OSError, ValueError) as exc:
        print(f"sealbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _console(args: argparse.Namespace) -> int:
    from sealbox.web import local

    try:
        local.serve(args.relay, port=args.port, open_browser=args.open)
    except ValueError as exc:
        print(f"sealbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _secret(explicit: str | None, env: str, prompt: str, *, confirm: bool) -> str:
    """A secret from a file/argument, the environment, or the terminal (never echoed)."""
    import getpass

    if explicit is not None:
        return explicit
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise ValueError(f"no terminal to ask for it: set {env}")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again, to confirm: ") != first:
        raise ValueError("the two entries differ")
    return first


def _approver_init(args: argparse.Namespace) -> int:
    import getpass
    from pathlib import Path

    import httpx

    from sealbox.approver import keystore
    from sealbox.approver.setup import create_first_approver, vault_to_set_up
    from sealbox.errors import SealboxError

    server = args.server.rstrip("/")
    try:
        # First: a vault that already has its approver is said before any prompt.
        vault_to_set_up(server)
        token = args.setup_token
        if token == "-":  # noqa: S105 - "-" means standard input, not a password
            # Pasted on a terminal: hidden, as a password is (it is one, once).
            token = (
                getpass.getpass("Setup token (input hidden): ")
                if sys.stdin.isatty()
                else sys.stdin.readline()
            ).strip()
            if not token:
                raise ValueError("no setup token was given on standard input")
        token = _secret(token, "SEALBOX_SETUP_TOKEN", "Setup token (input hidden): ",
                        confirm=False)  # fmt: skip
        passphrase = None
        if args.keyring:
            keystore.require_keyring()  # refuse before anything is made if there is none
        else:
            file_secret = (
                Path(args.passphrase_file).read_text().rstrip("\n")
                if args.passphrase_file
                else None
            )
            passphrase = _secret(
                file_secret,
                "SEALBOX_PASSPHRASE",
                "Passphrase for this approver's key file: ",
                confirm=True,
            )
            if len(passphrase) < 8:
                raise ValueError("choose a passphrase of at least 8 characters")
        result = create_first_approver(args.server, token, name=args.name)
        path = Path(args.key_file) if args.key_file else keystore.default_path(result.keys.vault)
        if passphrase is None:
            keystore.save_in_keyring(path, result.keys)
        else:
            keystore.save(path, result.keys, passphrase)
    except SealboxError as exc:
        print(f"sealbox: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  {exc.hint}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError, httpx.HTTPError) as exc:
        print(f"sealbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    keys = result.keys
    print(f"Approver {keys.record.id} ({keys.record.name}) created for vault {keys.vault}.")
    sealed_with = "a secret kept in the OS keyring" if args.keyring else "your passphrase"
    print(f"Keys kept in {path} (0600, sealed with {sealed_with}).")
    print(f"Vault fingerprint: {keys.fingerprint}")
    print(f"Vault safety code: {result.safety_code}")
    print("Compare this safety code when a client logs in to this vault.")
    return EXIT_OK


# --- login, whoami, logout ------------------------------------------------------------------


def _http() -> httpx.Client:
    import httpx

    return httpx.Client(timeout=30)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _out(text: str = "") -> None:
    # Flushed line by line: whoever reads a piped stdout sees the user code at once.
    print(text, flush=True)


def _fail(message: str, hint: str | None) -> int:
    print(f"sealbox: {message}", file=sys.stderr)
    if hint:
        print(f"  {hint}", file=sys.stderr)
    return EXIT_FAILED


def _session_command(args: argparse.Namespace) -> int:
    import httpx

    from sealbox.cli import exits
    from sealbox.client import profile
    from sealbox.errors import NotLoggedIn, SealboxError, VerificationError

    try:
        name = profile.profile_name(args.profile)
    except SealboxError as exc:
        print(f"sealbox {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    path = profile.profile_path(name)
    try:
        with _http() as http:
            if args.command == "login":
                return _login(http, args, name, path)
            if args.command == "whoami":
                machine = _identity_in_use(args)
                if machine is not None:
                    return _whoami_identity(http, machine)
                return _whoami(http, name, path)
            return _logout(http, name, path)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return _fail("interrupted; nothing was saved", None)
    except NotLoggedIn as exc:
        _fail(exc.message, exc.hint)
        return exits.NOT_LOGGED_IN
    except VerificationError as exc:
        # As every other command: what the relay served does not verify (rolled back,
        # forked, a certificate the directory does not back).
        _fail(f"refused: {exc.message} [{exc.code}]", exc.hint)
        return exits.VERIFICATION
    except SealboxError as exc:
        return _fail(exc.message, exc.hint)
    except httpx.HTTPError as exc:
        return _fail(f"could not talk to the relay: {exc}",
                     "Check the server URL and that the relay is running.")  # fmt: skip
    except OSError as exc:
        return _fail(str(exc), None)


def _utc(timestamp: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _qr(text: str) -> str | None:
    """The URL as a QR code for a terminal, or ``None`` if this output cannot show one."""
    try:
        import segno

        buffer = io.StringIO()
        segno.make(text, error="l").terminal(out=buffer, compact=True)
        rendered = buffer.getvalue()
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        rendered.encode(encoding)
    except (ImportError, UnicodeError, ValueError):
        return None
    return rendered.rstrip("\n")


class _WaitLine:
    """One line saying the login waits for an approver; redrawn in place on a terminal."""

    SPIN = "|/-\\"

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.deadline = 0.0
        self.ticks = 0

    def update(self, status: Any) -> None:
        self.deadline = time.monotonic() + status.remaining
        if status.slowed_down:
            self._line(f"The relay asked to poll less often: every {status.interval} s now.")
        elif status.polls == 0:
            minutes = max(1, round(status.remaining / 60))
            self._line(f"Waiting for an approver (checking every {status.interval} s; "
                       f"the code expires in {minutes} min)...")  # fmt: skip

    def _line(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K")
        _out(text)

    def sleep(self, seconds: float) -> None:
        if not self.tty:
            _sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            remaining = max(0, int(self.deadline - time.monotonic()))
            self.ticks += 1
            sys.stdout.write(f"\r\033[K{self.SPIN[self.ticks % 4]} waiting "
                             f"({remaining // 60}:{remaining % 60:02d} left)")  # fmt: skip
            sys.stdout.flush()
            _sleep(min(1.0, left))

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


def _invite_code(args: argparse.Namespace) -> str | None:
    """The invite code: ``--invite CODE``, ``--invite -`` (standard input, hidden on a
    terminal: a code on the command line is visible to other users of the machine), or
    ``SEALBOX_INVITE``."""
    import getpass

    code = args.invite if args.invite is not None else os.environ.get("SEALBOX_INVITE")
    if code == "-":
        code = (
            getpass.getpass("Invite code (input hidden): ")
            if sys.stdin.isatty()
            else sys.stdin.readline()
        ).strip()
    return code or None


def _login(http: httpx.Client, args: argparse.Namespace, name: str, path: Path) -> int:
    from sealbox.client import login as flow

    def show(prompt: flow.DevicePrompt) -> None:
        _out(f"Logging in to {prompt.server} (vault {prompt.vault}) as {prompt.client_name!r}.")
        _out()
        _out(f"  User code:   {prompt.user_code}")
        _out(f"  Approve at:  {prompt.verification_uri_complete}")
        qr = _qr(prompt.verification_uri_complete)
        if qr:
            _out()
            _out(qr)
        _out()
        _out(f"  Client id:              {prompt.client_id}")
        _out(f"  Client key fingerprint: {prompt.key_fingerprint}")
        _out(f"  Client key safety code: {prompt.key_safety_code}")
        if prompt.invited_role is not None:
            _out(f"  Invited as:             {prompt.invited_role} of project "
                 f"{prompt.invited_project}")  # fmt: skip
        _out("Your approver must see this user code and this fingerprint before approving.")
        _out()

    wait = _WaitLine()
    try:
        result = flow.login(
            http, server=args.server, name=args.name, path=path, force=args.force,
            on_prompt=show, on_wait=wait.update, sleep=wait.sleep, invite=_invite_code(args),
        )  # fmt: skip
    finally:
        wait.done()
    session, cert = result.profile, result.certificate
    _out(f"Logged in as {session.client_id} (profile {name!r}).")
    _out(f"Vault safety code: {result.safety_code}")
    _out("Compare it with the safety code your approver's device shows for this vault. If they")
    _out("differ, this relay is not your vault: run `sealbox logout` and tell your approver.")
    _out(f"Certificate: scopes {', '.join(cert.scopes) or 'none'}; issued by {cert.issuer}; "
         f"valid until {_utc(cert.constraints.not_after)}.")  # fmt: skip
    return EXIT_OK


def _whoami(http: httpx.Client, name: str, path: Path) -> int:
    from sealbox.client import login as flow

    who = flow.whoami(http, path)
    cert = who.certificate
    _out(f"profile:      {name}")
    _out(f"server:       {who.server}")
    _out(f"vault:        {who.vault}")
    _out(f"safety code:  {who.safety_code}")
    _out(f"client:       {who.client_id} ({who.client_name})")
    _out(f"role:         {who.role}")
    _out(f"kind:         {who.client_kind}")
    _out(f"scopes:       {', '.join(cert.scopes) or 'none'}")
    _out(f"certificate:  issued by {cert.issuer}, valid until "
         f"{_utc(cert.constraints.not_after)}")  # fmt: skip
    return EXIT_OK


def _identity_in_use(args: argparse.Namespace) -> Path | None:
    """The machine identity ``SEALBOX_IDENTITY`` names, unless ``--profile`` picks a login."""
    from sealbox.client import identity

    return identity.from_environment() if args.profile is None else None


def _whoami_identity(http: httpx.Client, where: Path) -> int:
    from sealbox.client import login as flow

    who = flow.whoami_identity(http, where)
    cert = who.certificate
    _out(f"identity:     {where}")
    _out(f"server:       {who.server}")
    _out(f"vault:        {who.vault}")
    _out(f"safety code:  {who.safety_code}")
    _out(f"client:       {who.client_id} ({who.client_name})")
    _out(f"kind:         {who.client_kind}")
    _out(f"scopes:       {', '.join(cert.scopes) or 'none'}")
    _out(f"certificate:  issued by {cert.issuer}, valid until "
         f"{_utc(cert.constraints.not_after)}")  # fmt: skip
    return EXIT_OK


def _logout(http: httpx.Client, name: str, path: Path) -> int:
    from sealbox.client import login as flow

    revoked = flow.logout(http, path)
    if revoked:
        _out(f"Logged out: the session is revoked and profile {name!r} is deleted.")
    else:
        _out(f"Profile {name!r} is deleted.")
        print("sealbox: the relay could not be reached, so the session could not be revoked",
              file=sys.stderr)  # fmt: skip
        print("  Its tokens stop working when they expire; an approver can disable the client.",
              file=sys.stderr)  # fmt: skip
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
