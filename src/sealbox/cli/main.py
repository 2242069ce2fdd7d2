"""Entry point of the ``sealbox`` command.

Exit codes (documented in the README): 0 success, 1 operation failed,
2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
