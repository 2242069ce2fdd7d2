"""Audit checkpoints: an approver signs "event ``seq`` of this vault's log has hash ``head``".

The relay stores a checkpoint only if it is signed by a current approver (the
one uploading it), names this vault, and its head is the hash of the relay's
own event at that seq: a checkpoint the relay keeps is one its log agrees
with.  Anything else is refused (400 malformed or not verifying, 409 not
matching the log) and nothing is stored; the refusal is audited.  Storing is
audited too (``audit.checkpoint``).

The relay's check protects the relay's operators from storing nonsense; it
protects nobody from the relay: every verifier checks checkpoints against the
events it was served itself (:mod:`sealbox.protocol.audit`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sealbox.crypto import jws
from sealbox.errors import NotAuthorized, SealboxError
from sealbox.protocol.audit import head_digest
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import CheckpointStatement, verify_statement
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Invalid, RelayError
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import checkpoints as store
from sealbox.server.store.checkpoints import CheckpointRow

__all__ = ["ACTION", "CLOCK_SKEW", "REFUSED_ACTION", "Stored", "file", "listed"]

ACTION = "audit.checkpoint"
REFUSED_ACTION = "audit.checkpoint_refused"
#: How far in the future a checkpoint's ``at`` may be (the signer's clock may run ahead).
CLOCK_SKEW = 300


@dataclass(frozen=True)
class Stored:
    row: CheckpointRow
    created: bool
    """False: the same approver had already checkpointed this seq (nothing changed)."""


def _check(
    token: str, vault: str, principal: Principal, directory: Directory, now: int
) -> CheckpointStatement:
    try:
        kid = jws.read_header(token).kid
    except SealboxError as exc:
        raise Invalid(
            "invalid_checkpoint",
            f"the checkpoint is not a signed statement: {exc.message}",
            "Send the compact JWS the approver signed.",
        ) from None
    if kid != principal.id:
        raise NotAuthorized("a checkpoint is uploaded by the approver that signed it")
    record = directory.approver(principal.id)
    try:
        statement = verify_statement(token, CheckpointStatement, record.sig_pk, record.id)
    except SealboxError as exc:
        raise Invalid(
            "invalid_checkpoint",
            f"the checkpoint does not verify: {exc.message}",
            "Sign a sealbox.checkpoint.v1 statement with your approver key.",
        ) from None
    if statement.vault != vault or statement.approver != principal.id:
        raise Invalid("invalid_checkpoint", "the checkpoint names another vault or approver",
                      "Sign a checkpoint of this vault, as yourself.")  # fmt: skip
    if statement.seq < 1:
        raise Invalid("invalid_checkpoint", "a checkpoint names an event (seq 1 or more)",
                      "Checkpoint the seq of an event of the log.")  # fmt: skip
    if statement.at > now + CLOCK_SKEW:
        raise Invalid("invalid_checkpoint", "the checkpoint is dated in the future",
                      "Check the signing device's clock.")  # fmt: skip
    return statement


async def _refused(relay: Relay, vault: str, principal: Principal, exc: Exception, now: int,
                   source_ip: str | None, seq: int | None) -> None:  # fmt: skip
    code = getattr(exc, "code", "invalid_checkpoint")
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action=REFUSED_ACTION,
            severity="warning", source_ip=source_ip,
            detail={"error": code, **({"seq": seq} if seq is not None else {})},
        )  # fmt: skip


async def file(
    relay: Relay, *, vault: str, principal: Principal, token: str, now: int,
    source_ip: str | None,
) -> Stored:  # fmt: skip
    """Verify a checkpoint against the directory and the relay's own log; store it, audited."""
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
    seq: int | None = None
    try:
        statement = _check(token, vault, principal, directory, now)
        seq = statement.seq
        async with relay.tx() as tx:
            held = await store.get(tx.conn, vault, statement.seq, principal.id)
            if held is not None:
                if held.statement != token and held.head != statement.head:
                    raise Conflict(  # pragma: no cover - the event's hash cannot change
                        "checkpoint_mismatch",
                        "a different head is checkpointed at this seq",
                        "The audit log changed: compare exports.",
                    )
                return Stored(held, created=False)
            ours = await store.event_hash_at(tx.conn, vault, statement.seq)
            if ours is None:
                last, _ = await audit.last(tx.conn, vault)
                raise Conflict(
                    "checkpoint_beyond_head",
                    f"the checkpoint names event {statement.seq}; the log ends at event {last}",
                    "Checkpoint an event the relay has: fetch the log's head first.",
                )
            if not hmac.compare_digest(head_digest(ours), statement.head):
                raise Conflict(
                    "checkpoint_mismatch",
                    f"the checkpoint's head is not the hash of event {statement.seq} here",
                    "The log you verified is not the relay's: keep your export, it is "
                    "evidence, and compare it with this relay's (sealbox audit verify --against).",
                )  # fmt: skip
            row = CheckpointRow(statement.seq, principal.id, statement.head, token, statement.at,
                                now)  # fmt: skip
            await store.insert(tx.conn, vault, row)
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action=ACTION,
                source_ip=source_ip, detail={"seq": statement.seq, "head": statement.head},
            )  # fmt: skip
    except (RelayError, SealboxError) as exc:
        if not isinstance(exc, NotAuthorized):  # a 403 is audited by the error handler
            await _refused(relay, vault, principal, exc, now, source_ip, seq)
        raise
    return Stored(row, created=True)


async def listed(relay: Relay, *, vault: str, after: int, limit: int) -> list[CheckpointRow]:
    async with relay.read() as conn:
        return await store.listed(conn, vault, after=after, limit=limit)
