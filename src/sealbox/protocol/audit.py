"""The audit log as anyone can check it: event hashes, the chain, checkpoints, exports.

The relay keeps each vault's audit log as a hash chain: event ``n`` carries the
hash of event ``n - 1`` (``prev_hash``; the first one :data:`GENESIS`) and its
own :func:`event_hash` over that link and every field.  The relay computes the
hashes when it appends; a verifier computes them again, here, from what it was
served, so nothing the relay says about its own log is taken on trust.

An approver signs a *checkpoint* (``sealbox.checkpoint.v1``): "event ``seq`` of
this vault's log has hash ``head``".  The relay cannot forge one, so a log
served later that ends before a checkpoint (truncated), or has another event at
its seq (rewritten, or a fork shown to someone else), is caught.

:func:`verify_log` checks a run of events (and the checkpoints that come with
them) against the vault's verified directory; :func:`compare_logs` checks two
runs against each other (a fork: the same seq with different hashes).  Both
raise :class:`AuditBroken` naming the first seq that fails.  Parsing is strict
(:meth:`AuditEvent.from_json`, :func:`parse_export`): a field missing, extra, or
of another type is refused, not guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import (
    MAX_SAFE_INTEGER,
    b64u_encode,
    canonical_json,
    length_prefixed,
)
from sealbox.errors import MalformedInput, SealboxError, VerificationError
from sealbox.protocol import ids
from sealbox.protocol.directory import Directory
from sealbox.protocol.severities import SEVERITIES
from sealbox.protocol.statements import CheckpointStatement, verify_statement

__all__ = [
    "EXPORT_FORMAT",
    "FIELDS",
    "GENESIS",
    "SEVERITIES",
    "AuditBroken",
    "AuditEvent",
    "AuditExport",
    "AuditHead",
    "CheckpointSignerUnknown",
    "LogCheck",
    "compare_logs",
    "event_hash",
    "export_header",
    "format_head",
    "head_digest",
    "parse_export",
    "parse_head",
    "verify_checkpoint",
    "verify_log",
]

#: ``prev_hash`` of a vault's first event.
GENESIS = "0" * 64
#: The fields of an event, in the order every reader shows them (the relay's export too).
FIELDS = ("seq", "at", "actor", "action", "severity", "client_id", "item_id", "source_ip",
          "detail", "prev_hash", "hash")  # fmt: skip
#: First line of a verifiable export (see :func:`export_header`).
EXPORT_FORMAT = "sealbox.audit-export.v1"
#: Largest seq or time an event carries: the largest integer a double holds exactly, so the
#: browser's verifier (``web/static/sealbox/audit.js``) reads every event this one does.
_INT_MAX = MAX_SAFE_INTEGER
_HEX = frozenset("0123456789abcdef")
_MAX_TEXT = 4096


class AuditBroken(VerificationError):
    """The audit log served does not verify; ``seq`` names the first event that fails."""

    code = "audit_broken"

    def __init__(self, message: str, *, seq: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.seq = seq


class CheckpointSignerUnknown(AuditBroken):
    """A checkpoint's signer is not an approver of the directory it is checked against."""

    code = "checkpoint_signer_unknown"


def event_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash of one event (lowercase hex SHA-256), chained to ``prev_hash``.

    ``SHA-256(lp(HASH_AUDIT, prev_hash, seq, at, actor, action, severity,
    client_id or "", item_id or "", source_ip or "", canonical_json(detail)))``
    where ``lp`` is :func:`~sealbox.crypto.encoding.length_prefixed` (integers as
    8-byte big-endian).

    ``lp`` does not tell an integer from an 8-byte string (``lp(1)`` is
    ``lp("\\x00" * 7 + "\\x01")``): what keeps an event from hashing like one with
    other types is that every field's type is fixed when it is parsed
    (:meth:`AuditEvent.from_json`, and ``parseEvent`` in the browser's
    ``audit.js``, which refuse exactly the same events): ``seq`` and ``at``
    integers, the rest text, ``detail`` an object.  Hash only parsed events.  (An
    empty ``client_id``, ``item_id`` or ``source_ip`` hashes alike as ``null`` and
    ``""``: both mean none.)
    """
    # Integers and strings share lp's encoding (8 bytes either way); the strict typing of
    # AuditEvent.from_json / parseEvent, not lp, keeps ``at`` = 1 and ``at`` = "\0...\1" apart.
    data = length_prefixed(
        labels.HASH_AUDIT, prev_hash, int(row["seq"]), int(row["at"]), row["actor"], row["action"],
        row["severity"], row["client_id"] or "", row["item_id"] or "", row["source_ip"] or "",
        canonical_json(row["detail"]),
    )  # fmt: skip
    return hashlib.sha256(data).hexdigest()


def head_digest(hex_hash: str) -> str:
    """An event hash as a checkpoint's ``head`` carries it (``sha256:`` and base64url)."""
    return labels.DIGEST_PREFIX + b64u_encode(bytes.fromhex(hex_hash))


def _hex(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise MalformedInput(f"{what}: expected 64 lowercase hex digits")
    return value


def _text(value: object, what: str, *, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise MalformedInput(f"{what}: expected text (at most {_MAX_TEXT} characters)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\ud800"): no UTF-8 form to hash
        raise MalformedInput(f"{what}: not valid text (a lone surrogate)") from None
    return value


def _int(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _INT_MAX:
        raise MalformedInput(f"{what}: expected an integer of at least {low}")
    return value


@dataclass(frozen=True)
class AuditEvent:
    """One event as the relay exports it (its hash not yet checked)."""

    seq: int
    at: int
    actor: str
    action: str
    severity: str
    client_id: str | None
    item_id: str | None
    source_ip: str | None
    detail: dict[str, Any] = field(hash=False)
    prev_hash: str
    hash: str

    @classmethod
    def from_json(cls, value: object) -> AuditEvent:
        """Parse strictly: exactly :data:`FIELDS`, each of its type; ``detail`` hashable."""
        if not isinstance(value, dict):
            raise MalformedInput("audit event: expected a JSON object")
        keys = set(value)
        if keys != set(FIELDS):
            missing, extra = sorted(set(FIELDS) - keys), sorted(keys - set(FIELDS))
            raise MalformedInput(f"audit event: missing {missing}, unexpected {extra}")
        seq = _int(value["seq"], "audit event.seq", 1)
        what = f"audit event {seq}"
        severity = value["severity"]
        if not isinstance(severity, str) or severity not in SEVERITIES:
            raise MalformedInput(f"{what}.severity: expected one of {list(SEVERITIES)}")
        detail = value["detail"]
        if not isinstance(detail, dict):
            raise MalformedInput(f"{what}.detail: expected a JSON object")
        try:
            canonical_json(detail)
        except (TypeError, ValueError):
            raise MalformedInput(f"{what}.detail: not hashable (floats, big integers, "
                                 "non-ASCII keys)") from None  # fmt: skip
        return cls(
            seq=seq, at=_int(value["at"], f"{what}.at", 0),
            actor=_text(value["actor"], f"{what}.actor"),
            action=_text(value["action"], f"{what}.action"), severity=severity,
            client_id=_text(value["client_id"], f"{what}.client_id", nullable=True),
            item_id=_text(value["item_id"], f"{what}.item_id", nullable=True),
            source_ip=_text(value["source_ip"], f"{what}.source_ip", nullable=True),
            detail=detail, prev_hash=_hex(value["prev_hash"], f"{what}.prev_hash"),
            hash=_hex(value["hash"], f"{what}.hash"),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class AuditHead:
    """A point of the chain a verifier remembers: event ``seq`` has hash ``hash`` (hex)."""

    seq: int
    hash: str


def format_head(head: AuditHead) -> str:
    """``SEQ:HEX``, as ``sealbox audit verify`` prints it and ``--head`` takes it."""
    return f"{head.seq}:{head.hash}"


def parse_head(text: object) -> AuditHead:
    seq, _, hash_ = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 19 and seq == str(int(seq))):
        raise MalformedInput("audit head: expected SEQ:HASH (an event's seq and its hex hash)")
    return AuditHead(_int(int(seq), "audit head seq", 1), _hex(hash_, "audit head hash"))


def verify_checkpoint(token: object, directory: Directory) -> CheckpointStatement:
    """A checkpoint's statement, its signature checked against a current approver's key.

    Raises :class:`AuditBroken` (seq 0: not tied to an event) when the token
    does not verify, its signer is not an approver of ``directory``, or it is
    another vault's.
    """
    try:
        kid = jws.read_header(token).kid
    except SealboxError as exc:
        raise AuditBroken(f"a checkpoint does not verify: {exc.message}", seq=0) from None
    if kid not in directory.approvers:
        raise CheckpointSignerUnknown(f"a checkpoint is signed by {kid}, not a current "
                                      "approver", seq=0)  # fmt: skip
    try:
        record = directory.approver(str(kid))
        statement = verify_statement(token, CheckpointStatement, record.sig_pk, record.id)
    except SealboxError as exc:
        raise AuditBroken(f"a checkpoint does not verify: {exc.message}", seq=0) from None
    if statement.approver != record.id or statement.vault != directory.vault:
        raise AuditBroken(f"checkpoint at seq {statement.seq} is not this vault's, or not "
                          "its signer's", seq=statement.seq)  # fmt: skip
    return statement


@dataclass(frozen=True)
class LogCheck:
    """What :func:`verify_log` established."""

    events: int
    """Events checked (seq, link and hash each)."""
    head: AuditHead | None
    """The last event checked (``None``: none served)."""
    checkpoints: tuple[CheckpointStatement, ...]
    """Checkpoints whose signature and head matched the events."""
    hashes: Mapping[int, str] = field(repr=False, hash=False)
    """The hash of every event checked, by seq."""


_TAMPER_HINT = ("The relay (or whoever held the file) changed the log after it was written. "
                "Keep this export and compare it with an earlier one (--against).")  # fmt: skip


def verify_log(
    events: Iterable[AuditEvent],
    *,
    checkpoints: Sequence[CheckpointStatement] = (),
    start: AuditHead | None = None,
    known: Sequence[AuditHead] = (),
) -> LogCheck:
    """Check a run of events: each one's seq, link and hash, then checkpoints and known heads.

    The run begins at seq 1 (linked to :data:`GENESIS`), or right after
    ``start`` (a head checked before, e.g. the last checkpoint) and linked to
    it.  ``checkpoints`` (signatures already verified, see
    :func:`verify_checkpoint`) and ``known`` heads must each name an event of
    the run with that very hash, or lie before it; one beyond its end means
    the log was truncated.  Raise :class:`AuditBroken` at the first failure.

    A ``known`` head must lie in the run: at ``start`` (then its hash must be
    ``start``'s: a start derived from it) or after.  One before ``start`` cannot be
    checked, and skipping it would let a caller forget a head it promised to hold
    the log to, so it raises :class:`ValueError` (the caller's mistake, not the
    log's): start at or before every head you know.
    """
    first = start.seq if start is not None else 0
    for k in known:
        if k.seq < first:
            raise ValueError(f"the head known at event {k.seq} lies before the start of the "
                             f"check (event {first}): start at or before it")  # fmt: skip
    prev_seq, prev = (start.seq, start.hash) if start is not None else (0, GENESIS)
    hashes: dict[int, str] = {}
    if start is not None:
        hashes[start.seq] = start.hash
    count = 0
    for event in events:
        expected = prev_seq + 1
        if event.seq != expected:
            kind = ("missing (deleted, or the log reordered)" if event.seq > expected
                    else "out of order (repeated, reordered or inserted)")  # fmt: skip
            raise AuditBroken(f"event {expected} is {kind}: event {event.seq} follows event "
                              f"{prev_seq}", seq=expected, hint=_TAMPER_HINT)  # fmt: skip
        if not hmac.compare_digest(event.prev_hash, prev):
            raise AuditBroken(f"event {event.seq} does not link to event {prev_seq} (an event "
                              "was inserted, removed or changed before it)", seq=event.seq,
                              hint=_TAMPER_HINT)  # fmt: skip
        if not hmac.compare_digest(event_hash(prev, event.to_json()), event.hash):
            raise AuditBroken(f"event {event.seq} was changed after it was written (its hash "
                              "does not match its fields)", seq=event.seq,
                              hint=_TAMPER_HINT)  # fmt: skip
        hashes[event.seq] = event.hash
        prev_seq, prev = event.seq, event.hash
        count += 1
    end = prev_seq
    points = [(c.seq, c.head, f"the checkpoint signed by approver {c.approver}") for c in
              checkpoints] + [(k.seq, head_digest(k.hash), "the head verified before") for k in
                              known]  # fmt: skip
    for seq, head, what in sorted(points, key=lambda p: p[0]):
        if seq > end:
            raise AuditBroken(
                f"event {seq} is missing: the log served ends at event {end}, but {what} is "
                f"at event {seq} (the log was truncated)", seq=seq,
                hint="The relay serves less than it did: events after the last one served "
                "were removed, or are being withheld.",
            )  # fmt: skip
        if seq < first or seq == 0:
            # Before the run: checked by whoever checked ``start``.  Only checkpoints get
            # here (a known head before ``start`` was refused above).
            continue
        if not hmac.compare_digest(head_digest(hashes[seq]), head):
            raise AuditBroken(f"event {seq} differs from {what} (the log was rewritten, or "
                              "forked)", seq=seq, hint=_TAMPER_HINT)  # fmt: skip
    held = [c for c in checkpoints if first < c.seq <= end or (c.seq == first and first)]
    return LogCheck(
        events=count, head=AuditHead(end, prev) if end else None,
        checkpoints=tuple(sorted(held, key=lambda c: c.seq)), hashes=hashes,
    )  # fmt: skip


def compare_logs(
    a: LogCheck, b: LogCheck, *, a_name: str = "the first log", b_name: str = "the second log"
) -> int:
    """Refuse two verified runs of one vault's log that disagree; return the seqs both hold.

    A fork: the same seq with different hashes in the two, or a checkpoint
    carried by one that the other's event at that seq contradicts.  One run
    ending earlier than the other is not a fork (an older export).
    """
    common = sorted(set(a.hashes) & set(b.hashes))
    for seq in common:
        if not hmac.compare_digest(a.hashes[seq], b.hashes[seq]):
            raise AuditBroken(f"event {seq} differs between {a_name} and {b_name}: the log "
                              "forked (the relay showed two different histories)", seq=seq,
                              hint="Keep both files: each is signed evidence of what was "
                              "served.")  # fmt: skip
    for mine, theirs, name in ((a, b, a_name), (b, a, b_name)):
        for checkpoint in mine.checkpoints:
            other = theirs.hashes.get(checkpoint.seq)
            if other is not None and not hmac.compare_digest(head_digest(other),
                                                             checkpoint.head):  # fmt: skip
                raise AuditBroken(f"event {checkpoint.seq} contradicts the checkpoint in {name} "
                                  f"signed by approver {checkpoint.approver}: the log forked",
                                  seq=checkpoint.seq)  # fmt: skip
    return len(common)


# --- the export file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditExport:
    """A parsed export: what offline verification needs."""

    vault: str | None
    fingerprint: str | None
    """The vault fingerprint the exporter pinned (informative: verify against your own)."""
    directory: tuple[str, ...]
    """Directory links (compact JWS) from link 0: verify them from the pinned fingerprint."""
    checkpoints: tuple[str, ...]
    """Checkpoint statements (compact JWS)."""
    events: tuple[AuditEvent, ...]
    complete: bool
    """Every event from seq 1 (no filter): a chain that can be verified."""


def export_header(
    *, vault: str, fingerprint: str, directory: Sequence[str], checkpoints: Sequence[str],
    complete: bool,
) -> dict[str, Any]:  # fmt: skip
    """The first line of a verifiable JSON-lines export; the events follow, one a line."""
    return {
        "format": EXPORT_FORMAT, "vault": vault, "fingerprint": fingerprint,
        "directory": list(directory), "checkpoints": list(checkpoints), "complete": complete,
    }  # fmt: skip


def _strict_json(line: str, what: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise MalformedInput(f"{what}: the key {key!r} twice")
            out[key] = value
        return out

    def no_float(_: str) -> Any:
        raise MalformedInput(f"{what}: a float (events hold none)")

    try:
        return json.loads(line, object_pairs_hook=pairs, parse_float=no_float,
                          parse_constant=no_float)  # fmt: skip
    except json.JSONDecodeError as exc:
        raise MalformedInput(f"{what}: not JSON ({exc.msg})") from None


def _tokens(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise MalformedInput(f"export header.{what}: expected a list of compact JWS")
    return tuple(value)


def parse_export(text: str) -> AuditExport:
    """Parse an export: JSON lines, a header line (:func:`export_header`) then one event a line.

    The relay's own ``/audit/export?format=jsonl`` (events only, no header) is
    read too: its chain can be checked, but it carries no checkpoints or directory.
    """
    lines = [line for line in text.split("\n") if line.strip()]
    header: dict[str, Any] | None = None
    if lines:
        first = _strict_json(lines[0], "export line 1")
        if isinstance(first, dict) and "format" in first:
            header = first
            lines = lines[1:]
    events = tuple(
        AuditEvent.from_json(_strict_json(line, f"export line {n + (2 if header else 1)}"))
        for n, line in enumerate(lines)
    )
    if header is None:
        complete = not events or events[0].seq == 1
        return AuditExport(None, None, (), (), events, complete)
    keys = {"format", "vault", "fingerprint", "directory", "checkpoints", "complete"}
    if header.get("format") != EXPORT_FORMAT:
        raise MalformedInput(f"export header: format must be {EXPORT_FORMAT!r}")
    if set(header) != keys:
        raise MalformedInput(f"export header: expected exactly the keys {sorted(keys)}")
    vault = ids.check_id(header["vault"], ids.VAULT, what="export header.vault")
    fingerprint = header["fingerprint"]
    if not isinstance(fingerprint, str):
        raise MalformedInput("export header.fingerprint: expected a sha256: digest")
    if not isinstance(header["complete"], bool):
        raise MalformedInput("export header.complete: expected true or false")
    return AuditExport(
        vault, fingerprint, _tokens(header["directory"], "directory"),
        _tokens(header["checkpoints"], "checkpoints"), events, header["complete"],
    )  # fmt: skip
