"""``sealbox audit verify|checkpoint|tail|export``: the vault's audit log, checked on this device.

``verify`` checks the log offline against the vault's pinned fingerprint: the
directory links from it, every checkpoint's approver signature, and every
event's seq, link and hash.  With FILE it reads an export (``audit export``'s
JSON lines, or the relay's plain ``/audit/export`` JSON lines: chain only, and
it says so: no directory or checkpoint checked, so nothing ties the file to
the vault but a ``--head`` given) and contacts nothing; without, it fetches the
log from the relay as this approver.
``--against OTHER`` verifies a second export and refuses a fork between the
two (the same seq with different hashes, or a checkpoint of one contradicted
by the other).  The highest head verified is remembered per vault (a 0600
file under the config directory); a relay that later serves less, or other
events up to it, fails.  Exit codes: 0 valid; 5 ``INVALID:`` and a reason
naming the seq, or a log with no event at all (an empty file: nothing
verified); 2 usage (an unreadable or malformed file); 1 the relay cannot be
reached or refuses.

``checkpoint`` verifies the log from the head this approver key checked last
(kept beside its key file, the memory ``approver serve --checkpoint-every``
with that key uses too), signs its end with this approver's key and files it
with the relay.

``tail`` follows the log live (one line an event, with its severity);
``export`` writes it out (``--format jsonl``: a header line with the
directory and checkpoints, then one event a line, what ``verify`` reads;
``csv``: the relay's CSV).  Both take the relay's filters.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sealbox.cli import exits
from sealbox.protocol.severities import SEVERITIES

__all__ = ["add_parsers", "run"]

_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parsers(sub: Any) -> None:
    from sealbox.cli.approvers import key_options

    audit = sub.add_parser("audit", help="the vault's audit log: verify it offline, sign "
                           "checkpoints, follow and export it")  # fmt: skip
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = asub.add_parser("verify", help="verify the chain and checkpoints, offline")
    verify.add_argument("file", nargs="?", metavar="FILE", help="an export (`sealbox audit "
                        "export`); default: fetch the log from the relay")  # fmt: skip
    verify.add_argument("--against", metavar="OTHER", help="another export of the same vault: "
                        "refuse a fork between the two")  # fmt: skip
    verify.add_argument("--vault", metavar="sha256:…", help="the vault's pinned fingerprint "
                        "(default: the one this approver's key file pinned)")  # fmt: skip
    verify.add_argument("--head", metavar="SEQ:HASH", help="a head known already (an earlier "
                        "verify printed it): the log must reach it with that hash")  # fmt: skip
    checkpoint = asub.add_parser("checkpoint", help="verify the log and sign its head as this "
                                 "approver (a checkpoint)")  # fmt: skip
    tail = asub.add_parser("tail", help="follow the log live, one line an event")
    tail.add_argument("--after-seq", type=int, metavar="SEQ", help="start after this event "
                      "(default: from now on; with --since: from the start)")  # fmt: skip
    export = asub.add_parser("export", help="write the log out (jsonl: verifiable; csv)")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                        help="jsonl (default): a header line with the directory and the "
                        "checkpoints, then one event a line, what `verify` reads; csv: the "
                        "relay's CSV (header row; detail as JSON text)")  # fmt: skip
    export.add_argument("--out", metavar="FILE", help="write here (mode 0600) instead of "
                        "standard output")  # fmt: skip
    for parser in (tail, export):
        parser.add_argument("--action", help="an action, or a prefix ending in * (access.*)")
        parser.add_argument("--actor", help="who did it (apv_…, cli_…, relay, anonymous)")
        parser.add_argument("--client", metavar="ID", help="events about this client (cli_…)")
        parser.add_argument("--item", metavar="ID", help="events about this item (itm_…)")
        parser.add_argument("--severity", choices=SEVERITIES, help="at least this severe")
        parser.add_argument("--since", metavar="WHEN", help="events at or after: unix "
                            "seconds, or a time ago (30m, 2h, 7d)")  # fmt: skip
    for parser in (verify, checkpoint, tail, export):
        key_options(parser)


# --- helpers ------------------------------------------------------------------------------------


def _since(text: str | None, now: float) -> int | None:
    if text is None:
        return None
    if text.isascii() and text.isdigit() and len(text) <= 12:
        return int(text)
    found = _DURATION.fullmatch(text)
    if not found:
        raise exits.UsageError("--since: unix seconds, or a time ago like 30m, 2h or 7d")
    return max(0, int(now) - int(found.group(1)) * _UNITS[found.group(2)])


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {
        "action": args.action, "actor": args.actor, "client_id": args.client,
        "item_id": args.item, "severity": args.severity, "since": _since(args.since, time.time()),
    }  # fmt: skip
    return {k: v for k, v in chosen.items() if v is not None}


def _read_export(name: str) -> Any:
    from sealbox.errors import MalformedInput
    from sealbox.protocol.audit import parse_export

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise exits.UsageError(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") \
            from None  # fmt: skip
    try:
        return parse_export(text)
    except MalformedInput as exc:
        raise exits.UsageError(f"{name} is not an audit export: {exc.message}") from None


def _fingerprint(args: argparse.Namespace) -> tuple[str, Path | None]:
    """The pinned fingerprint: --vault, else the public part of this approver's key file."""
    from sealbox.cli.approvers import _key_path

    if args.vault:
        return args.vault, None
    try:
        path = _key_path(args)
    except (exits.Failed, exits.UsageError) as exc:
        raise exits.UsageError(f"give the vault's fingerprint with --vault ({exc})") from None
    try:
        document = json.loads(path.read_text())
        return str(document["fingerprint"]), path
    except (OSError, ValueError, KeyError, TypeError):
        raise exits.UsageError(f"cannot read the pinned fingerprint from {path}: give "
                               "--vault") from None  # fmt: skip


def _invalid(exc: Any) -> int:
    from sealbox._relay.text import displayable

    # The message may quote what was served (an id from a token's header): made safe to print.
    print(f"sealbox audit verify: INVALID: {displayable(exc.message, 1000)} [{exc.code}]",
          file=sys.stderr)  # fmt: skip
    if exc.hint:
        print(f"  {exc.hint}", file=sys.stderr)
    return exits.VERIFICATION


def _seen() -> Any:
    from sealbox._relay.audit import SeenHeads

    return SeenHeads()


# --- verify -------------------------------------------------------------------------------------


def _describe(verified: Any, source: str, *, head_given: bool = False) -> None:
    from sealbox.protocol.audit import format_head

    check = verified.check
    head = format_head(check.head) if check.head is not None else "(empty log)"
    print(f"valid: {check.events} event(s) of vault {verified.vault or '?'} from {source}; "
          f"head {head}")  # fmt: skip
    if check.checkpoints:
        last = check.checkpoints[-1]
        print(f"checkpoints: {len(check.checkpoints)} verified; the latest at event {last.seq}, "
              f"signed by approver {last.approver}")  # fmt: skip
    elif verified.directory is None:
        anchor = (
            "It does reach the --head given."
            if head_given
            else "For that, verify "
            "`sealbox audit export`'s file, or give --head with a head verified before."
        )
        print("checkpoints: NOT CHECKED. This file has no header: no directory and no "
              "checkpoints, so it was checked as a chain only (each event's hash and link). "
              "Anyone can write a chain that checks like this; it is not shown to be the "
              f"vault's log. {anchor}")  # fmt: skip
    else:
        print("checkpoints: none")
    if verified.skipped:
        print(f"  {verified.skipped} checkpoint(s) by former approvers were not counted")
    if verified.behind is not None:
        print(f"note: this file ends before event {verified.behind.seq}, verified here before "
              "(an older export)")  # fmt: skip


def _nothing(source: str) -> int:
    # No event: nothing was verified, and "valid" would vouch for an empty file (or a relay
    # serving nothing) as if it were a vault's log, which always holds its creation.
    print(f"sealbox audit verify: INVALID: {source} holds no audit event: nothing was "
          "verified [audit_empty]", file=sys.stderr)  # fmt: skip
    return exits.VERIFICATION


def _verify(args: argparse.Namespace) -> int:
    from sealbox._relay.audit import fetch_export, verify_export, verify_fork
    from sealbox.errors import MalformedInput, VerificationError
    from sealbox.protocol.audit import parse_head

    try:
        given = None if args.head is None else parse_head(args.head)
    except MalformedInput as exc:
        raise exits.UsageError(f"--head: {exc.message}") from None
    if args.against and not args.file:
        raise exits.UsageError("--against compares two exports: give FILE too")
    seen = _seen()
    if args.file:
        export = _read_export(args.file)
        other = _read_export(args.against) if args.against else None
        fingerprint, _ = _fingerprint(args)
        vault = export.vault
        remembered = seen.get(vault) if vault else None
        try:
            verified = verify_export(export, fingerprint=fingerprint, known=remembered,
                                     strict_known=False)  # fmt: skip
            if given is not None:
                verify_export(export, fingerprint=fingerprint, known=given)
            if other is not None:
                second = verify_export(other, fingerprint=fingerprint)
                common = verify_fork(verified, second, a_name=args.file, b_name=args.against)
        except VerificationError as exc:
            return _invalid(exc)
        except MalformedInput as exc:
            raise exits.UsageError(exc.message) from None
        if verified.check.head is None:
            return _nothing(args.file)
        _describe(verified, args.file, head_given=given is not None)
        if other is not None:
            print(f"no fork: {args.against} agrees on the {common} event(s) both hold")
        if verified.directory is not None:
            seen.advance(verified.vault, verified.check.head)
        return exits.OK
    from sealbox.cli.approvers import open_session

    session = open_session(args)
    try:
        vault = session.keys.vault
        try:
            directory = session.directory(fresh=True)
        except VerificationError as exc:
            return _invalid(exc)
        get = lambda path: session.ok("GET", path, "reading the audit log")  # noqa: E731
        try:
            export = fetch_export(get, vault=vault, directory=directory)
        except MalformedInput as exc:
            print(f"sealbox audit verify: INVALID: the relay served a malformed log: "
                  f"{exc.message}", file=sys.stderr)  # fmt: skip
            return exits.VERIFICATION
    finally:
        session.close()
    try:
        verified = verify_export(export, fingerprint=session.keys.fingerprint,
                                 known=seen.get(vault))  # fmt: skip
        if given is not None:
            verify_export(export, fingerprint=session.keys.fingerprint, known=given)
    except VerificationError as exc:
        return _invalid(exc)
    if verified.check.head is None:
        return _nothing(f"the log {session.keys.server} serves")
    _describe(verified, session.keys.server)
    seen.advance(vault, verified.check.head)
    return exits.OK


# --- checkpoint ---------------------------------------------------------------------------------


def _checkpoint(args: argparse.Namespace) -> int:
    from sealbox.approver.checkpoints import memory, sign_checkpoint
    from sealbox.cli.approvers import _key_path, open_session
    from sealbox.protocol.audit import AuditBroken

    session = open_session(args)
    try:
        try:
            # The memory `approver serve` keeps beside the same key file: one for both, so a
            # head either signer checked is one the other holds the log to.
            signed = sign_checkpoint(session, seen=memory(_key_path(args)))
        except AuditBroken as exc:
            print(f"sealbox audit checkpoint: INVALID: {exc.message} [{exc.code}]; nothing "
                  "was signed", file=sys.stderr)  # fmt: skip
            return exits.VERIFICATION
    finally:
        session.close()
    if signed is None:
        print("The audit log is empty: nothing to checkpoint.")
        return exits.OK
    what = "signed and filed" if signed.created else "already filed by you"
    print(f"checkpoint at event {signed.seq} ({signed.hash}): {what}; {signed.events} "
          "event(s) verified since your last checkpoint.")  # fmt: skip
    return exits.OK


# --- tail ---------------------------------------------------------------------------------------


def line(event: dict[str, Any]) -> str:
    """One readable line for an event (its text made safe to print)."""
    from sealbox._relay.text import displayable

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(event.get("at") or 0)))
    parts = [
        when,
        f"#{int(event.get('seq') or 0)}",
        f"{displayable(str(event.get('severity')), 8).upper():8}",
        displayable(str(event.get("action")), 64),
        f"by {displayable(str(event.get('actor')), 64)}",
    ]
    for key, label in (("client_id", "client"), ("item_id", "item"), ("source_ip", "from")):
        if event.get(key):
            parts.append(f"{label}={displayable(str(event[key]), 64)}")
    detail = event.get("detail")
    if isinstance(detail, dict) and detail:
        parts.append(displayable(json.dumps(detail, separators=(",", ":"), sort_keys=True), 300))
    return "  ".join(parts)


def _head_now(session: Any) -> int:
    # A page matching nothing (events from the far future) answers with the log's head.
    body = session.ok("GET", f"/audit?since={2**62}&limit=1", "reading the audit log's head")
    return int(body["next_after_seq"])


def _tail(args: argparse.Namespace) -> int:
    import httpx

    from sealbox._relay.drive import unreachable
    from sealbox.approver.session import _events, refused_response
    from sealbox.cli.approvers import open_session

    filters = _filters(args)
    session = open_session(args)
    try:
        if args.after_seq is not None:
            after = args.after_seq
        elif "since" in filters:
            after = 0
        else:
            after = _head_now(session)
        print(f"Following the audit log of {session.keys.vault} (Ctrl-C to stop).",
              file=sys.stderr, flush=True)  # fmt: skip
        while True:
            query = urlencode({**filters, "after_seq": after})
            call = session.call("GET", f"/audit/stream?{query}", timeout=60)
            try:
                response = session.driver.response(call, stream=True)
            except httpx.TransportError as exc:
                raise unreachable(session.keys.server, exc) from None
            try:
                if response.status_code != 200:
                    response.read()
                    raise refused_response(response, "following the audit log")
                for name, data in _events(response):
                    if name == "audit" and isinstance(data, dict):
                        print(line(data), flush=True)
                        after = max(after, int(data.get("seq") or after))
                    elif name == "revoked":
                        raise exits.Failed("you are no longer an approver of this vault")
            except httpx.TransportError:
                time.sleep(1)  # the relay restarted: resume after the last event shown
            finally:
                response.close()
    except KeyboardInterrupt:
        return exits.OK
    finally:
        session.close()


# --- export -------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from sealbox._relay.audit import fetch_checkpoints, header_line
    from sealbox._relay.files import write_private
    from sealbox.cli.approvers import open_session
    from sealbox.protocol.audit import AuditExport

    filters = _filters(args)
    session = open_session(args)
    try:
        chunks: list[str] = []
        if args.format == "jsonl":
            # Checkpoints first: each then names an event the export below holds.
            get = lambda path: session.ok("GET", path, "listing checkpoints")  # noqa: E731
            tokens = tuple(
                c["statement"]
                for c in fetch_checkpoints(get)
                if isinstance(c, dict) and isinstance(c.get("statement"), str)
            )
            directory = session.directory(fresh=True)
            header = AuditExport(session.keys.vault, session.keys.fingerprint,
                                 directory.tokens, tokens, (), complete=not filters)  # fmt: skip
            chunks.append(header_line(header) + "\n")
        query = urlencode({**filters, "format": args.format})
        response = session.request("GET", f"/audit/export?{query}", timeout=300)
        if response.status_code != 200:
            from sealbox.approver.session import refused_response

            raise refused_response(response, "exporting the audit log")
        chunks.append(response.text)
    finally:
        session.close()
    text = "".join(chunks)
    if args.out:
        write_private(Path(args.out), text)
        print(f"Wrote the audit log ({args.format}) to {args.out} (mode 0600).", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return exits.OK


def run(args: argparse.Namespace) -> int:
    action = {"verify": _verify, "checkpoint": _checkpoint, "tail": _tail,
              "export": _export}[args.audit_command]  # fmt: skip
    return exits.guarded(lambda: action(args), f"audit {args.audit_command}")
