"""Entry point of the ``sealbox`` command.

Exit codes (documented in the README): 0 success, 1 operation failed,
2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sealbox import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (env SEALBOX_DB_URL; "
                        "default: SQLite in the data directory)")  # fmt: skip
    parser.add_argument(
        "--db-schema", metavar="NAME", help="PostgreSQL schema (env SEALBOX_DB_SCHEMA)"
    )
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (env SEALBOX_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealbox",
        description=(
            "Vendor-blind secrets release: the relay stores only ciphertext; "
            "approver devices hold the keys."
        ),
    )
    parser.add_argument("--version", action="version", version=f"sealbox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="run the relay (embedded SQLite unless --db says otherwise)")
    _server_options(up)
    up.add_argument("--host", help="address to listen on (env SEALBOX_HOST; default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port (env SEALBOX_PORT; default 8300)")
    up.add_argument(
        "--public-url", help="URL clients use to reach the relay (env SEALBOX_PUBLIC_URL)"
    )

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

    rotate = sub.add_parser(
        "rotate-master-key", help="re-wrap the relay's data keys under a new master key"
    )
    _server_options(rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "approver":
        return _approver_init(args)
    # Imported here: `sealbox --version` and `--help` stay fast.
    from sealbox.server import runner
    from sealbox.server.config import Settings

    settings = Settings.load(
        data_dir=args.data_dir, db_url=args.db, db_schema=args.db_schema,
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        public_url=getattr(args, "public_url", None),
    )  # fmt: skip
    try:
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
    except KeyboardInterrupt:
        return EXIT_OK
    except (OSError, ValueError) as exc:
        print(f"sealbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _secret(explicit: str | None, env: str, prompt: str, *, confirm: bool) -> str:
    """A secret from a file/argument, the environment, or the terminal (never echoed)."""
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
    import httpx

    from sealbox.approver import keystore
    from sealbox.approver.setup import create_first_approver
    from sealbox.errors import SealboxError

    try:
        token = args.setup_token
        if token == "-":  # noqa: S105 - "-" means standard input, not a password
            token = sys.stdin.readline().strip()
        token = _secret(token, "SEALBOX_SETUP_TOKEN", "Setup token: ", confirm=False)
        file_secret = (
            Path(args.passphrase_file).read_text().rstrip("\n") if args.passphrase_file else None
        )
        passphrase = _secret(file_secret, "SEALBOX_PASSPHRASE",
                             "Passphrase for this approver's key file: ", confirm=True)  # fmt: skip
        if len(passphrase) < 8:
            raise ValueError("choose a passphrase of at least 8 characters")
        result = create_first_approver(args.server, token, name=args.name)
        path = Path(args.key_file) if args.key_file else keystore.default_path(result.keys.vault)
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
    print(f"Keys kept in {path} (0600, sealed with your passphrase).")
    print(f"Vault fingerprint: {keys.fingerprint}")
    print(f"Vault safety code: {result.safety_code}")
    print("Compare this safety code when a client logs in to this vault.")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
