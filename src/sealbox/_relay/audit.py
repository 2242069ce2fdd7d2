"""Verifying a vault's audit log on this device: from an export file, or fetched from the relay.

Everything the relay (or whoever wrote the file) says is checked against the
vault's pinned fingerprint: the directory links from it, each checkpoint's
approver signature against that directory, every event's seq, link and hash
(:mod:`sealbox.protocol.audit`).  On top of what the log carries, this device
remembers the highest head it verified for each vault (:class:`SeenHeads`, a
0600 file): a relay that later serves less, or another history, is caught even
if it withholds every checkpoint.

Fetching reads the checkpoints first and the events after them, so every
checkpoint fetched names an event the relay had already written; a relay that
then serves fewer events than a checkpoint names has truncated its log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sealbox._relay.files import config_dir, locked, private_dir, write_private
from sealbox.errors import MalformedInput, SealboxError
from sealbox.protocol import directory as dirs
from sealbox.protocol.audit import (
    AuditBroken,
    AuditEvent,
    AuditExport,
    AuditHead,
    CheckpointSignerUnknown,
    LogCheck,
    compare_logs,
    export_header,
    parse_head,
    verify_checkpoint,
    verify_log,
)
from sealbox.protocol.statements import CheckpointStatement

__all__ = [
    "PAGE",
    "SeenHeads",
    "Verified",
    "fetch_checkpoints",
    "fetch_events",
    "fetch_export",
    "verify_export",
    "verify_fork",
]

#: Events asked for at a time (the relay's most).
PAGE = 1000

#: ``get(path)`` returns the relay's JSON answer to a signed GET under the vault.
Get = Callable[[str], Any]


@dataclass(frozen=True)
class Verified:
    """An export that verified, and what it established."""

    vault: str
    directory: dirs.Directory | None
    """The directory verified from the pinned fingerprint (``None``: the file carries none)."""
    check: LogCheck
    skipped: int
    """Checkpoints by signers no longer approvers of the vault (not counted, not trusted)."""
    behind: AuditHead | None = None
    """A head this device verified before that lies beyond this (older) file's end."""


class SeenHeads:
    """The highest audit head this device verified, per vault (a 0600 JSON file each)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else config_dir() / "audit"

    def _path(self, vault: str) -> Path:
        return self.root / f"{vault}.json"

    def get(self, vault: str) -> AuditHead | None:
        try:
            document = json.loads(self._path(vault).read_text())
            # Parsed as strictly as a head typed on the command line.
            return parse_head(f"{document['seq']}:{document['hash']}")
        except (OSError, ValueError, KeyError, TypeError, MalformedInput):
            return None

    def advance(self, vault: str, head: AuditHead | None) -> None:
        """Keep ``head`` if it is beyond the one kept (never move back)."""
        if head is None:
            return
        private_dir(self.root)
        path = self._path(vault)
        with locked(path):
            held = self.get(vault)
            if held is None or head.seq > held.seq:
                write_private(path, json.dumps({"vault": vault, "seq": head.seq,
                                                "hash": head.hash}) + "\n")  # fmt: skip


def _checkpoints(
    tokens: Sequence[str], directory: dirs.Directory
) -> tuple[list[CheckpointStatement], int]:
    out, skipped = [], 0
    for token in tokens:
        try:
            out.append(verify_checkpoint(token, directory))
        except CheckpointSignerUnknown:
            skipped += 1  # a removed approver's: its key may be why it was removed
    return out, skipped


def verify_export(
    export: AuditExport, *, fingerprint: str, known: AuditHead | None = None,
    strict_known: bool = True, directory: Sequence[str] | None = None,
) -> Verified:  # fmt: skip
    """Verify an export against the pinned ``fingerprint``; raise at the first failure.

    ``known`` is a head verified before: the events must hold it with that
    hash, and (``strict_known``, for what a relay serves now) reach it: one
    beyond the end is a truncation.  An older file may end before it
    (``strict_known=False``): reported in :attr:`Verified.behind`, not refused.
    ``directory`` (links fetched from the relay) stands in for the file's own.
    """
    if not export.complete:
        raise MalformedInput("this export is filtered (not every event from seq 1): its "
                             "chain cannot be verified",
                             hint="Export without filters to verify.")  # fmt: skip
    links = tuple(directory) if directory is not None else export.directory
    verified_dir = None
    checkpoints: list[CheckpointStatement] = []
    skipped = 0
    if links:
        try:
            verified_dir = dirs.verify_directory(links, pinned=fingerprint)
        except SealboxError as exc:
            raise AuditBroken(f"the directory does not verify from the pinned vault "
                              f"fingerprint: {exc.message}", seq=0) from None  # fmt: skip
        if export.vault is not None and export.vault != verified_dir.vault:
            raise AuditBroken("the export is another vault's than its directory's", seq=0)
        checkpoints, skipped = _checkpoints(export.checkpoints, verified_dir)
    elif export.checkpoints:
        raise AuditBroken("the export has checkpoints but no directory to check them", seq=0)
    behind = None
    heads: list[AuditHead] = []
    if known is not None:
        end = export.events[-1].seq if export.events else 0
        if strict_known or known.seq <= end:
            heads.append(known)
        else:
            behind = known
    check = verify_log(export.events, checkpoints=checkpoints, known=heads)
    vault = verified_dir.vault if verified_dir is not None else (export.vault or "")
    return Verified(vault, verified_dir, check, skipped, behind)


def verify_fork(a: Verified, b: Verified, *, a_name: str, b_name: str) -> int:
    """Refuse two verified exports of one vault that disagree (see ``compare_logs``)."""
    if a.vault and b.vault and a.vault != b.vault:
        raise MalformedInput(f"{a_name} and {b_name} are logs of different vaults")
    return compare_logs(a.check, b.check, a_name=a_name, b_name=b_name)


# --- from the relay -----------------------------------------------------------------------------


def fetch_checkpoints(get: Get, *, after: int = 0) -> list[dict[str, Any]]:
    """Every checkpoint after ``after`` as the relay lists them (unverified)."""
    found: list[dict[str, Any]] = []
    while True:
        body = get(f"/audit/checkpoints?after_seq={after}&limit=1000")
        page = body.get("checkpoints") if isinstance(body, dict) else None
        if not isinstance(page, list):
            raise MalformedInput("the relay's checkpoint list is not a list")
        found.extend(page)
        nxt = body.get("next_after_seq")
        if not page or not isinstance(nxt, int) or nxt <= after:
            return found
        after = nxt


def _tokens(listed: Sequence[Any]) -> list[str]:
    tokens = [c.get("statement") if isinstance(c, dict) else None for c in listed]
    if not all(isinstance(t, str) for t in tokens):
        raise MalformedInput("the relay listed a checkpoint without its statement")
    return [str(t) for t in tokens]


def fetch_events(
    get: Get, *, after: int = 0, filters: dict[str, Any] | None = None
) -> Iterator[AuditEvent]:
    """Events after ``after`` (matching ``filters``), parsed strictly, a page at a time."""
    while True:
        query = urlencode({**(filters or {}), "after_seq": after, "limit": PAGE})
        body = get(f"/audit?{query}")
        page = body.get("events") if isinstance(body, dict) else None
        nxt = body.get("next_after_seq") if isinstance(body, dict) else None
        if not isinstance(page, list) or isinstance(nxt, bool) or not isinstance(nxt, int):
            raise MalformedInput("the relay's audit page is not a list of events")
        for raw in page:
            yield AuditEvent.from_json(raw)
        if len(page) < PAGE or nxt <= after:
            return
        after = nxt


def fetch_export(get: Get, *, vault: str, directory: dirs.Directory) -> AuditExport:
    """The whole log as the relay serves it now: checkpoints first, then every event."""
    tokens = _tokens(fetch_checkpoints(get))
    events = tuple(fetch_events(get))
    return AuditExport(vault, directory.fingerprint, directory.tokens, tuple(tokens), events,
                       complete=True)  # fmt: skip


def header_line(export: AuditExport) -> str:
    assert export.vault is not None
    assert export.fingerprint is not None
    header = export_header(vault=export.vault, fingerprint=export.fingerprint,
                           directory=export.directory, checkpoints=export.checkpoints,
                           complete=export.complete)  # fmt: skip
    return json.dumps(header, separators=(",", ":"))
