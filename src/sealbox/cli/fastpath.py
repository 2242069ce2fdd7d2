"""The command lines answered before argparse and the rest of sealbox are imported.

``sealbox --version``, and ``sealbox read REF`` when the cache agent holds the
value.  Such a read needs no network, no approval and no verification (the
value was verified when it was released, and the agent is this user's own
process), so all it would cost is Python's start and imports: here it costs
nothing of sealbox but :mod:`sealbox.client.cache_socket`, which imports only
modules written in C.

Only command lines recognised exactly are answered here.  Anything else (an
abbreviated option, ``--help``, a value argparse would refuse) and every cache
miss returns ``None``: the full parser then answers as it always does, with
the same result or the usual error, so this module never has to repeat an
error message or a check of the full path.
"""

from __future__ import annotations

import os
import sys

__all__ = ["answer"]

#: The options of ``sealbox read`` that take a value (what ``_common`` in items.py adds).
_VALUED = ("--profile", "--purpose", "--cache")
#: Most seconds ``--cache`` may ask for (items.py refuses more, with a usage error).
_CACHE_MAX = 30 * 86400


def answer(argv: list[str]) -> int | None:
    """The exit code if this command line was answered here; ``None``: use the full CLI."""
    if argv == ["--version"]:
        from sealbox._version import __version__

        sys.stdout.write(f"sealbox {__version__}\n")
        return 0
    if argv[:1] == ["read"]:
        return _cached_read(argv[1:])
    return None


def _profile_ok(name: str) -> bool:
    # The rule of client.profile.profile_name (its regex, without importing re):
    # a name it would refuse goes to the full path, which says why.
    allowed = "._-"
    return (
        0 < len(name) <= 64
        and name.isascii()
        and name[0].isalnum()
        and all(c.isalnum() or c in allowed for c in name)
    )


def _seconds_ok(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= _CACHE_MAX


def _cached_read(args: list[str]) -> int | None:
    ref: str | None = None
    newline = True
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-n", "--no-newline"):
            newline = False
        elif arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name not in _VALUED:
                return None
            if not eq:
                i += 1
                if i == len(args) or args[i].startswith("-"):
                    return None
                value = args[i]
            options[name] = value  # as argparse: the last one counts
        elif ref is None:
            ref = arg
        else:
            return None
        i += 1
    if ref is None:
        return None
    # What the full path would refuse even on a cache hit, it must be left to refuse.
    cache = options.get("--cache")
    if cache is None:
        cache = os.environ.get("SEALBOX_CACHE_SECONDS") or None
    if cache is not None and not _seconds_ok(cache):
        return None
    if options.get("--profile") is None and os.environ.get("SEALBOX_IDENTITY"):
        return None  # a machine identity: its agent is named by its client id (client/sdk.py)
    profile = options.get("--profile") or os.environ.get("SEALBOX_PROFILE") or "default"
    if not _profile_ok(profile):
        return None

    from sealbox.client.cache_socket import lookup

    found = lookup(profile, ref)
    if found is None:
        return None
    try:
        sys.stdout.buffer.write(found + b"\n" if newline else found)
        sys.stdout.buffer.flush()
    except OSError as exc:
        sys.stderr.write(f"sealbox read: {exc.strerror or exc}\n")
        return 1
    return 0
