"""Signing audit checkpoints: on demand (``sealbox audit checkpoint``), or on a schedule
(``sealbox approver serve --checkpoint-every``).

An approver signs "event ``seq`` of this vault's log has hash ``head``" only
for a head it has checked links back to the last head it checked, remembered
in a 0600 file beside its key (:func:`state_path`; ``serve`` and ``sealbox
audit checkpoint`` with the same key file share it).  With nothing remembered
there (a fresh copy of the key) it starts from its own latest checkpoint as
the relay lists it, or seq 1 if it has none; a checkpoint listed never moves
the start past the head remembered.  So a relay that rewrote, dropped or
reordered an event since gets no signature over the result; the approver
reports it instead.  A relay that serves fewer events than the approver has
checked before (truncation) is refused the same way.

Filing a checkpoint appends an ``audit.checkpoint`` event; a schedule that
finds nothing new since its own last checkpoint but such events signs nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sealbox._relay.audit import SeenHeads, fetch_checkpoints, fetch_events
from sealbox.approver.session import ApproverSession
from sealbox.errors import SealboxError
from sealbox.protocol.audit import (
    AuditBroken,
    AuditHead,
    CheckpointSignerUnknown,
    head_digest,
    verify_checkpoint,
    verify_log,
)
from sealbox.protocol.statements import CheckpointStatement, sign_statement

__all__ = ["DEFAULT_EVERY", "Checkpointer", "Signed", "memory", "sign_checkpoint", "state_path"]

#: ``--checkpoint-every``'s default: an hour (0 turns it off).
DEFAULT_EVERY = 3600
#: The action of the event the relay appends when it stores a checkpoint.
FILED = "audit.checkpoint"


@dataclass(frozen=True)
class Signed:
    seq: int
    hash: str
    created: bool
    """False: this approver had checkpointed this seq already."""
    events: int
    """Events checked before signing."""


def _start(
    session: ApproverSession, remembered: AuditHead | None
) -> tuple[AuditHead | None, list[Any]]:
    """Where to verify from, and every checkpoint listed (checked against the events later).

    The head kept here, when there is one: a chain verified from it is one that links to
    it.  Starting anywhere beyond it (say at this approver's own latest checkpoint as the
    relay lists it) would skip the head remembered: the relay could rewrite the log
    below it and list a genuine signature of ours over the rewrite (made with this key
    elsewhere, with another memory, every checkpoint withheld), and we would sign on from
    there.  Listed checkpoints, ours too, only add constraints.  With no head kept (a
    fresh memory) our own latest listed checkpoint is where we start: its signature is
    ours, so its head is one this key checked; else seq 1.
    """
    directory = session.directory(fresh=True)
    listed = fetch_checkpoints(lambda path: session.ok("GET", path, "listing checkpoints"))
    start = remembered
    others = []
    for entry in listed:
        token = entry.get("statement") if isinstance(entry, dict) else None
        try:
            statement = verify_checkpoint(token, directory)
        except CheckpointSignerUnknown:
            continue
        mine = statement.approver == session.id and remembered is None
        if mine and (start is None or statement.seq > start.seq):
            start = AuditHead(statement.seq, _hex_of(statement.head))
        others.append(statement)
    return start, others


def _hex_of(head: str) -> str:
    from sealbox.crypto.encoding import b64u_decode

    return b64u_decode(head.removeprefix("sha256:"), length=32, what="checkpoint head").hex()


def sign_checkpoint(
    session: ApproverSession, *, seen: SeenHeads, now: Callable[[], float] = time.time,
    only_if_new: bool = False,
) -> Signed | None:  # fmt: skip
    """Verify the log from this approver's last checked head, sign its end, file it.

    ``None`` when ``only_if_new`` and nothing but filed checkpoints (``audit.checkpoint``
    events) came since this approver's last checkpoint.  Raises :class:`AuditBroken` (nothing
    signed) when the log does not verify.
    """
    vault = session.keys.vault
    # Read once: `serve` and `sealbox audit checkpoint` may advance it meanwhile.
    known = seen.get(vault)
    start, listed = _start(session, known)
    get = lambda path: session.ok("GET", path, "reading the audit log")  # noqa: E731
    events = list(fetch_events(get, after=start.seq if start else 0))
    check = verify_log(events, checkpoints=listed, start=start,
                       known=[known] if known is not None else [])  # fmt: skip
    if check.head is None:
        return None  # an empty log: nothing to checkpoint
    if only_if_new and start is not None and all(e.action == FILED for e in events):
        # Only checkpoints filed since (ours or another approver's): signing over them would
        # have two automated approvers checkpoint each other's checkpoints forever.
        return None
    statement = CheckpointStatement(vault=vault, approver=session.id, seq=check.head.seq,
                                    head=head_digest(check.head.hash), at=int(now()))  # fmt: skip
    token = sign_statement(statement, session.keys.sig, session.id)
    body = session.ok("POST", "/audit/checkpoints", "filing the checkpoint",
                      json_body={"statement": token})  # fmt: skip
    seen.advance(vault, check.head)
    return Signed(check.head.seq, check.head.hash, bool(body.get("created")), check.events)


class Checkpointer:
    """Signs a checkpoint every ``every`` seconds in a thread, logging each outcome."""

    def __init__(self, session: ApproverSession, *, every: float, log: TextIO,
                 seen: SeenHeads) -> None:  # fmt: skip
        self.session = session
        self.every = every
        self.log = log
        self.seen = seen
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="sealbox-checkpoints",
                                        daemon=True)  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)
        self.session.close()

    def _write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.write(json.dumps({"at": int(time.time()), **entry}) + "\n")
            self.log.flush()

    def once(self) -> None:
        try:
            signed = sign_checkpoint(self.session, seen=self.seen, only_if_new=True)
        except AuditBroken as exc:
            self._write({"event": "checkpoint", "outcome": "refused", "severity": "alert",
                         "seq": exc.seq, "reason": exc.message})  # fmt: skip
            return
        except SealboxError as exc:
            self._write({"event": "checkpoint", "outcome": "failed", "reason": exc.message})
            return
        except Exception as exc:  # the schedule outlives one bad round (a dropped connection)
            self._write({"event": "checkpoint", "outcome": "failed",
                         "reason": type(exc).__name__})  # fmt: skip
            return
        if signed is None:
            self._write({"event": "checkpoint", "outcome": "nothing new"})
            return
        self._write({"event": "checkpoint", "outcome": "signed", "seq": signed.seq,
                     "checked": signed.events})  # fmt: skip

    def _loop(self) -> None:
        while not self.stopping.wait(self.every):
            self.once()


def state_path(key_path: Path) -> Path:
    """Where an approver keeps the audit head it last checked: beside its key file."""
    return key_path.with_name(key_path.stem + ".audit")


def memory(key_path: Path) -> SeenHeads:
    """The one memory of heads checked that every signer with this key file uses.

    ``serve --checkpoint-every`` and ``sealbox audit checkpoint`` both: with two, a
    head one of them checked would not hold the other (see :func:`_start`).
    """
    return SeenHeads(state_path(key_path))
