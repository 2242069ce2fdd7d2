"""``sealbox store | read | get | ls | history | run | inject``: a logged-in client's commands.

Values never come from the command line (other users can read it in the
process table): ``store`` takes them from files, standard input or a prompt.
Every command that reads makes ONE access request for everything it needs,
so a task is one approval.  While it waits, it says what it waits for; on
denial, expiry or anything that does not verify it exits non-zero and prints
no value at all.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run_command"]

COMMANDS = ("store", "read", "get", "ls", "history", "run", "inject")
_PLACEHOLDER = re.compile(r"\{\{\s*(sealbox://[^\s}]+)\s*\}\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUN_DESCRIPTION = """\
Run CMD with released values in its environment: --env VAR=sealbox://…, the
sealbox:// references of --env-file files and of the inherited environment.
All of them are asked for in one request, after CMD is found on PATH.

The values are masked in CMD's output, also as base64, hex, URL-encoded and
JSON-escaped text.  A value shorter than 8 bytes is masked only as a whole
word ("app" in "user=app", not in "application"), and one shorter than 3
bytes not at all; sealbox run says so on stderr when it happens.

When standard output is a terminal, CMD runs on a pseudo-terminal of its own
with the same size, so colours, progress bars and line editing work as
without sealbox; your terminal is in raw mode meanwhile (keys such as Ctrl-C
go to CMD; Ctrl-Z stops CMD and sealbox until `fg`) and is restored when CMD
ends.  CMD's stderr shares that terminal if stderr is one too.  Otherwise
CMD's stdout and stderr are pipes.

sealbox run exits with CMD's status (128+N if signal N ended it); 2 if CMD
cannot be found, and then nothing is asked for.
"""


def _common(parser: argparse.ArgumentParser, *, purpose: bool = True) -> None:
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="which login to use (env SEALBOX_PROFILE; default: default)",
    )
    if purpose:
        parser.add_argument(
            "--purpose",
            metavar="TEXT",
            help="why you need it, shown to the approver (default: the command line)",
        )
        parser.add_argument(
            "--cache",
            type=int,
            default=None,
            metavar="SECONDS",
            help="ask to keep the values in the local cache agent this long "
            "(env SEALBOX_CACHE_SECONDS; the approver and policy may shorten it)",
        )


def add_parsers(sub: Any) -> None:
    store = sub.add_parser(
        "store", help="store a new version of an item (values from files or stdin)"
    )
    store.add_argument("path", metavar="sealbox://PROJECT/ENV/ITEM",
                       help="the item to store, e.g. sealbox://shop/prod/db")  # fmt: skip
    store.add_argument("--field", action="append", default=[], metavar="NAME=@FILE|NAME=-|NAME",
                       help="a field: from a file (@FILE), standard input (-), or a hidden "
                       "prompt (NAME alone); repeat for several fields")  # fmt: skip
    store.add_argument("--type", choices=("secret", "canary"), default="secret",
                       help="canary: a tripwire; its release alerts (critical) and freezes "
                       "its project, and the reader still gets the value "
                       "(default: secret)")  # fmt: skip
    _common(store)

    read = sub.add_parser("read", help="print one value: sealbox://PROJECT/ENV/ITEM[/FIELD]")
    read.add_argument("reference", help="what to print, e.g. sealbox://shop/prod/db/password "
                      "(the /FIELD may be left out when the item has one field)")  # fmt: skip
    read.add_argument("-n", "--no-newline", action="store_true", help="no newline after the value")
    _common(read)

    get = sub.add_parser("get", help="print the released fields of an item")
    get.add_argument("path", metavar="sealbox://PROJECT/ENV/ITEM",
                     help="the item, e.g. sealbox://shop/prod/db")  # fmt: skip
    get.add_argument("--fields", metavar="A,B", help="only these fields (default: all)")
    get.add_argument("--json", action="store_true", help="print JSON")
    _common(get)

    ls = sub.add_parser("ls", help="list the items you may ask for (no values)")
    ls.add_argument("prefix", nargs="?", default="", help="only paths starting with this")
    ls.add_argument("--json", action="store_true", help="print JSON")
    _common(ls, purpose=False)

    history = sub.add_parser("history", help="an item's versions, each manifest verified")
    history.add_argument("path", metavar="sealbox://PROJECT/ENV/ITEM",
                         help="the item, e.g. sealbox://shop/prod/db")  # fmt: skip
    history.add_argument("--json", action="store_true", help="print JSON")
    _common(history, purpose=False)

    run = sub.add_parser(
        "run", help="run a command with secrets in its environment (one approval)",
        description=_RUN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_argument("--env", action="append", default=[], metavar="VAR=sealbox://…",
                     help="set VAR to a released value; repeat")  # fmt: skip
    run.add_argument("--env-file", action="append", default=[], metavar="FILE",
                     help="dotenv file whose values may be sealbox:// references")  # fmt: skip
    run.add_argument("--no-masking", action="store_true",
                     help="do not mask the values in the command's output (colours "
                     "survive masking: no need to turn it off for them)")  # fmt: skip
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS…]",
                     help="the command to run")  # fmt: skip
    _common(run)

    inject = sub.add_parser("inject", help="fill {{ sealbox://… }} placeholders of a template")
    inject.add_argument("-i", "--in-file", required=True, help="the template ('-': stdin)")
    inject.add_argument("-o", "--out-file", help="where to write (0600; default: stdout)")
    _common(inject)


# --- shared -----------------------------------------------------------------------------


def _item(text: str) -> str:
    """The item a person named (``sealbox://P/E/I`` or ``P/E/I``), checked before anything."""
    from sealbox.protocol import ids

    return ids.parse_item_path(text)


def _strip_scheme(text: str) -> str:
    return text.removeprefix("sealbox://").strip("/")


class Waiting:
    """On stderr: what the command waits for, with a spinner and a timer on a terminal."""

    SPIN = "|/-\\"

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.request: str | None = None
        self.approvals = (0, 1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, wait: Any) -> None:
        """The SDK's ``on_wait``: a :class:`sealbox.WaitState` before each long poll."""
        first = self.request is None
        self.request, self.approvals = wait.request, (wait.approvals, wait.threshold)
        if first:
            until = time.strftime("%H:%M:%S", time.localtime(wait.expires_at))
            need = "an approver must" if wait.threshold == 1 else f"{wait.threshold} approvers must"
            print(f"Waiting for approval of {self.what} (request {wait.request[:12]}); "
                  f"{need} approve it before {until}.", file=sys.stderr, flush=True)  # fmt: skip
            if self.tty:
                self._thread = threading.Thread(target=self._spin, daemon=True)
                self._thread.start()

    def _spin(self) -> None:
        tick = 0
        while not self._stop.wait(0.2):
            tick += 1
            elapsed = int(time.monotonic() - self.started)
            got, need = self.approvals
            sys.stderr.write(f"\r\033[K{self.SPIN[tick % 4]} waiting {elapsed // 60}:"
                             f"{elapsed % 60:02d}  ({got}/{need} approvals)")  # fmt: skip
            sys.stderr.flush()

    def done(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _client(args: argparse.Namespace) -> Any:
    from sealbox.client.sdk import Client

    return Client(args.profile)


def _cache_seconds(args: argparse.Namespace) -> int | None:
    value = getattr(args, "cache", None)
    if value is None and os.environ.get("SEALBOX_CACHE_SECONDS"):
        value = int(os.environ["SEALBOX_CACHE_SECONDS"])
    if value is not None and not 0 <= value <= 30 * 86400:
        raise exits.UsageError("--cache must be 0..2592000 seconds")
    return value


def _purpose(args: argparse.Namespace, default: str) -> str:
    return (args.purpose or default)[:500]


def _read_many(args: argparse.Namespace, refs: Sequence[str], what: str) -> dict[str, bytes]:
    wait = Waiting(what)
    try:
        with _client(args) as client:
            return dict(client.read_many_bytes(
                refs, purpose=_purpose(args, "sealbox " + " ".join(sys.argv[1:])[:400]),
                cache_seconds=_cache_seconds(args), on_wait=wait,
            ))  # fmt: skip
    finally:
        wait.done()


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# --- commands -------------------------------------------------------------------------------


def _field_values(specs: Sequence[str]) -> dict[str, bytes]:
    from sealbox.protocol import ids

    values: dict[str, bytes] = {}
    used_stdin = False
    for spec in specs:
        name, sep, source = spec.partition("=")
        ids.check_field_name(name)
        if name in values:
            raise exits.UsageError(f"field {name!r} is given twice")
        if not sep:
            if not sys.stdin.isatty():
                raise exits.UsageError(
                    f"no terminal to ask for {name!r}: use {name}=@FILE or {name}=-"
                )
            first = getpass.getpass(f"Value of {name} (hidden): ")
            if getpass.getpass("Again, to confirm: ") != first:
                raise exits.UsageError("the two entries differ")
            values[name] = first.encode()
        elif source == "-":
            if used_stdin:
                raise exits.UsageError("only one field can come from standard input")
            used_stdin = True
            values[name] = sys.stdin.buffer.read()
        elif source.startswith("@"):
            values[name] = Path(source[1:]).read_bytes()
        else:
            raise exits.UsageError(
                f"the value of {name!r} may not be given on the command line "
                f"(other users can read it there): use {name}=@FILE, {name}=- or {name} alone"
            )
    if not values:
        raise exits.UsageError("give at least one --field")
    return values


def _store(args: argparse.Namespace) -> int:
    path = _item(args.path)
    values = _field_values(args.field)
    wait = Waiting(f"storing {path}")
    try:
        with _client(args) as client:
            stored = client.store(path, values, purpose=_purpose(args, f"store {path}"),
                                  on_wait=wait, item_type=args.type)  # fmt: skip
    finally:
        wait.done()
    kind = "canary " if args.type == "canary" else ""
    print(f"Stored {kind}{stored.path} version {stored.version} "
          f"({', '.join(sorted(values))}); an approver signed its manifest.")  # fmt: skip
    return exits.OK


def _read(args: argparse.Namespace) -> int:
    ref = args.reference
    value = _read_many(args, [ref], ref)[ref]
    _write(value if args.no_newline else value + b"\n")
    return exits.OK


def _get(args: argparse.Namespace) -> int:
    from sealbox.client._flows import Wanted

    path = _item(args.path)
    fields = tuple(sorted(f for f in args.fields.split(",") if f)) if args.fields else None
    wait = Waiting(path)
    try:
        with _client(args) as client:
            read = client.fetch([Wanted(path, fields)],
                                purpose=_purpose(args, f"get {path}"),
                                cache_seconds=_cache_seconds(args), on_wait=wait)  # fmt: skip
    finally:
        wait.done()
    values = read.values[path]
    if args.json:
        try:
            shown = {k: v.decode() for k, v in sorted(values.items())}
        except UnicodeDecodeError:
            raise exits.Failed("a value is not UTF-8 text; read it with `sealbox read`") from None
        document = {"path": path, "version": read.versions[path], "fields": shown}
        _write((json.dumps(document, indent=2) + "\n").encode())
    else:
        for name, value in sorted(values.items()):
            _write(name.encode() + b"=" + value + b"\n")
    return exits.OK


def _ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = [i for i in client.list() if i.path.startswith(_strip_scheme(args.prefix))]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "path": i.path,
                        "id": i.item,
                        "type": i.type,
                        "latest_version": i.latest_version,
                        **({"rotation_due": True} if i.rotation_due else {}),
                    }
                    for i in found
                ],
                indent=2,
            )
        )
        return exits.OK
    if not found:
        print("No items (or none your grants cover).", file=sys.stderr)
        return exits.OK
    width = max(len(i.path) for i in found)
    print(f"{'PATH':<{width}}  VERSION  TYPE")
    for i in found:
        due = "  (rotation due)" if i.rotation_due else ""
        print(f"{i.path:<{width}}  {i.latest_version:>7}  {i.type}{due}")
    return exits.OK


def _history(args: argparse.Namespace) -> int:
    path = _item(args.path)
    with _client(args) as client:
        versions = client.history(path)
    if args.json:
        print(json.dumps([{"version": v.version, "fields": list(v.fields),
                           "stored_at": v.stored_at, "signed_by": v.signed_by,
                           "via_store_request": v.requested, "holders": list(v.holders),
                           "threshold": v.threshold,
                           **({"rotation_due": True} if v.rotation_due else {})}
                          for v in versions], indent=2))  # fmt: skip
        return exits.OK
    print(f"{path}: {len(versions)} version(s), each manifest verified")
    for v in versions:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.stored_at))
        print(f"  v{v.version}  {stamp}  fields: {', '.join(v.fields)}  "
              f"signed by {v.signed_by}  {v.threshold}-of-{len(v.holders)}"
              f"{'  (rotation due: store a new version)' if v.rotation_due else ''}")  # fmt: skip
    return exits.OK


def _dotenv(path: Path) -> dict[str, str]:
    out = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _ENV_NAME.fullmatch(name):
            raise exits.UsageError(f"{path}:{number}: expected NAME=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name] = value
    return out


def _run(args: argparse.Namespace) -> int:
    from sealbox.client import child
    from sealbox.client.masking import Masker, notice

    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise exits.UsageError("give the command to run after --, e.g. sealbox run -- env")
    env = dict(os.environ)
    for file in args.env_file:
        env.update(_dotenv(Path(file)))
    for spec in args.env:
        name, sep, value = spec.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name):
            raise exits.UsageError(f"--env {spec!r}: expected VAR=sealbox://…")
        env[name] = value
    # Before anything is asked for: an approval for a command that cannot start is wasted.
    executable = child.resolve(command[0], env)
    if executable is None:
        where = "no executable file there" if "/" in command[0] else "not found on PATH"
        raise exits.UsageError(f"cannot run {command[0]!r}: {where}")
    refs = {name: value for name, value in env.items() if value.startswith("sealbox://")}
    values: dict[str, bytes] = {}
    if refs and args.purpose is None:
        from sealbox._relay.text import safe_text

        # The default purpose is the command line; a request may not hold line breaks
        # or other control characters, and a `sh -c` script often has some.
        args.purpose = safe_text(" ".join(" ".join(["sealbox", *sys.argv[1:]]).split()), 400)
    if refs:
        what = f"{len(refs)} secret(s) for `{' '.join(' '.join(command).split())[:60]}`"
        values = _read_many(args, sorted(set(refs.values())), what)
    for name, ref in refs.items():
        try:
            env[name] = values[ref].decode()
        except UnicodeDecodeError:
            raise exits.Failed(f"{ref} is not UTF-8 text and cannot go in an environment "
                               "variable") from None  # fmt: skip
    if not args.no_masking and (note := notice(values.values())):
        print(f"sealbox run: {note}", file=sys.stderr, flush=True)
    new_filter = (lambda: None) if args.no_masking else (lambda: Masker(values.values()))
    try:
        return child.run(command, executable=executable, env=env, new_filter=new_filter)
    except child.NotStarted as exc:
        raise exits.Failed(f"cannot run {command[0]!r}: {exc}") from None


def _inject(args: argparse.Namespace) -> int:
    from sealbox._relay.files import write_private

    template = sys.stdin.read() if args.in_file == "-" else Path(args.in_file).read_text()
    refs = sorted(set(_PLACEHOLDER.findall(template)))
    values = _read_many(args, refs, f"{len(refs)} placeholder(s) of {args.in_file}") if refs else {}
    try:
        text = _PLACEHOLDER.sub(lambda m: values[m.group(1)].decode(), template)
    except UnicodeDecodeError:
        raise exits.Failed("a value is not UTF-8 text and cannot go in a template") from None
    if not args.out_file or args.out_file == "-":
        _write(text.encode())
        return exits.OK
    out = Path(args.out_file)
    write_private(out, text)
    print(f"Wrote {out} (0600) with {len(refs)} value(s).", file=sys.stderr)
    return exits.OK


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "store": _store, "read": _read, "get": _get, "ls": _ls, "history": _history,
    "run": _run, "inject": _inject,
}  # fmt: skip


def run_command(args: argparse.Namespace) -> int:
    return exits.guarded(lambda: _HANDLERS[args.command](args), args.command)
