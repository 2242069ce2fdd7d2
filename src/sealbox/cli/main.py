"""Entry point of the ``sealbox`` command.

Exit codes (documented in the README): 0 success, 2 usage error.  Later
commands add their own codes to the same table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sealbox import __version__

EXIT_OK = 0
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealbox",
        description=(
            "Vendor-blind secrets release: the relay stores only ciphertext; "
            "approver devices hold the keys."
        ),
        epilog="The relay (`sealbox up`) and the client commands arrive in the next releases.",
    )
    parser.add_argument("--version", action="version", version=f"sealbox {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    parser.parse_args(args)
    return EXIT_OK  # pragma: no cover - every accepted argument today exits inside argparse


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
