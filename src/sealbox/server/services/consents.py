"""Consent requests: a client asks an approver to consent to one action (CIBA-like).

A client posts a signed consent request (its action and full details); the
relay checks what it can (the client's certificate and source address, the
statement's signature and window, replay, a pending cap) and wakes the
approvers.  Any current approver may answer: with a consent it signed for
exactly this request (:func:`consent`), or a signed deny of its hash
(:func:`deny`).  The relay verifies either against the directory and the
stored request before storing it, so it never hands a client an answer that
does not bind to what it asked; the client and any third party verify the
consent again for themselves.

Every state change goes through the consent store's compare-and-set along the
state table (:data:`sealbox.protocol.state.CONSENT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

from sealbox.crypto import jws
from sealbox.errors import NotAuthorized
from sealbox.protocol.access import verify_deny
from sealbox.protocol.consent import (
    check_consent_answers,
    consent_details_hash,
    read_filed_request,
    verify_consent_request,
)
from sealbox.protocol.state import ConsentEvent, ConsentState
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, NotFound
from sealbox.server.notify import CLOSED, approvers_channel, request_channel
from sealbox.server.relay import Relay, Tx
from sealbox.server.services import fatigue
from sealbox.server.services.caller import check_source, load_caller
from sealbox.server.store import audit, replay
from sealbox.server.store import clients as client_store
from sealbox.server.store import consents as consent_store
from sealbox.server.store import requests as request_store
from sealbox.server.store.consents import ConsentRow
from sealbox.server.store.fatigue import Recent

__all__ = [
    "APPROVALS_MAX",
    "MAX_WAIT",
    "STREAM_EVENT",
    "ConsentApproval",
    "ConsentStatus",
    "cancel",
    "consent",
    "create",
    "deny",
    "list_pending",
    "wait_status",
]

#: Longest a long poll holds a consent request open (seconds).
MAX_WAIT = 60.0
#: Most pending consent requests one listing returns (oldest first).
APPROVALS_MAX = 100
#: What the approvals stream says when a consent request waits or was answered.
STREAM_EVENT = "consent-requests"


@dataclass(frozen=True)
class ConsentStatus:
    """A consent request as its client sees it."""

    id: str
    state: str
    expires_at: int
    consent: str | None = None
    """Consented or delivered: the approver's signed consent (the client verifies it)."""
    deny: str | None = None
    """Denied: the approver's signed refusal (the client verifies it and shows its reason)."""


@dataclass(frozen=True)
class ConsentApproval:
    """A pending consent request with what an approver needs to verify it."""

    row: ConsentRow
    certificate: str | None
    enrollment: str | None
    recent: Recent | None = None
    """The requester's requests and denials lately, as the relay counts them (unsigned)."""


def _status(row: ConsentRow, now: int) -> ConsentStatus:
    state = row.state_at(now)
    answer = row.answer
    return ConsentStatus(
        row.id, state, row.expires_at,
        consent=answer if state in (ConsentState.CONSENTED, ConsentState.DELIVERED) else None,
        deny=answer if state == ConsentState.DENIED else None,
    )  # fmt: skip


def _wake(tx: Tx, row: ConsentRow, state: str) -> None:
    """Wake the request's owner (its long poll reads again) and the approvers' streams."""
    tx.wake(request_channel(row.id), json.dumps({"id": row.id, "state": state}))
    tx.wake(approvers_channel(row.vault), STREAM_EVENT)


def _no_such_request() -> NotFound:
    return NotFound("no_such_request", "you have no consent request with this id")


# --- a client asks, waits, cancels ---------------------------------------------------------------


async def create(
    relay: Relay, *, vault: str, principal: Principal, statement_token: str, now: int,
    source_ip: str | None,
) -> ConsentStatus:  # fmt: skip
    """File a client's signed consent request; approvers are woken.

    The request id is the statement hash without its ``sha256:`` prefix.
    """
    async with relay.read() as conn:
        caller = await load_caller(relay, conn, vault, principal.id, policies=False)
        verified = verify_consent_request(
            statement_token, directory=caller.directory, certificate=caller.row.certificate,
            now=now, enrollment=caller.row.enrollment,
        )  # fmt: skip
    check_source(verified.certificate, source_ip)
    s = verified.statement
    if s.client != principal.id:
        raise NotAuthorized("the consent request names another client than the caller")
    request_id = verified.hash.removeprefix("sha256:")
    row = ConsentRow(
        vault=vault, id=request_id, client_id=principal.id, statement=statement_token,
        action=s.action, state=ConsentState.PENDING.value, answer=None, answered_by=None,
        source_ip=source_ip, created_at=now, expires_at=s.exp, updated_at=now,
    )  # fmt: skip
    async with (
        fatigue.auditing_refusals(relay, vault=vault, client_id=principal.id, now=now,
                                  kind="consent", source_ip=source_ip),
        relay.tx() as tx,
    ):  # fmt: skip
        # A consent request is a prompt like an access request: the same lockout, rate and
        # pending cap (counted over both kinds), checked under the client's creation lock.
        await request_store.lock_client(tx.conn, vault, principal.id)
        storm = await fatigue.admit_prompt(relay, tx.conn, vault=vault, client_id=principal.id,
                                           now=now, kind="consent")  # fmt: skip
        await replay.insert_jti(tx.conn, vault, s.jti, s.exp)
        await consent_store.insert(tx.conn, row)
        await fatigue.report_storm(tx.conn, storm, vault=vault, now=now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="consent.requested",
            client_id=principal.id, source_ip=source_ip,
            # The action and the details' hash: the details themselves stay in the statement.
            detail={"request": request_id, "action": s.action, "ttl": s.ttl,
                    "details": consent_details_hash(s.details)},
        )  # fmt: skip
        _wake(tx, row, row.state)
    return _status(row, now)


async def _mine(relay: Relay, vault: str, request_id: str, principal: Principal) -> ConsentRow:
    async with relay.read() as conn:
        row = await consent_store.get(conn, vault, request_id, client_id=principal.id)
    if row is None:
        # Someone else's request is as absent as one that does not exist.
        raise _no_such_request()
    return row


async def _deliver(relay: Relay, row: ConsentRow, now: int, source_ip: str | None) -> None:
    """Record that the client has taken its consent (once; later reads return it again)."""
    async with relay.tx() as tx:
        taken = await consent_store.transition(
            tx.conn, row.vault, row.id, ConsentState.CONSENTED, ConsentEvent.FETCHED, now,
            client_id=row.client_id,
        )  # fmt: skip
        if taken is not None:
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor=row.client_id,
                action="consent.delivered", client_id=row.client_id, source_ip=source_ip,
                detail={"request": row.id},
            )  # fmt: skip


async def wait_status(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, wait: float,
    source_ip: str | None,
) -> ConsentStatus:  # fmt: skip
    """The caller's consent request; held until it leaves ``pending`` or ``wait`` seconds pass.

    A consented request read by its client is delivered (recorded once); its
    consent is in every answer from then on.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), MAX_WAIT)
    async with relay.hub.subscribe(request_channel(request_id), maxsize=1) as queue:
        while True:
            row = await _mine(relay, vault, request_id, principal)
            now = relay.now()
            status = _status(row, now)
            left = deadline - loop.time()
            if status.state != ConsentState.PENDING or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    if await queue.get() is CLOSED:  # the relay is stopping: answer as it is
                        deadline = loop.time()
    if status.state == ConsentState.CONSENTED:
        await _deliver(relay, row, now, source_ip)
        status = ConsentStatus(status.id, ConsentState.DELIVERED.value, status.expires_at,
                               consent=status.consent)  # fmt: skip
    return status


async def cancel(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, now: int,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Withdraw the caller's pending consent request."""
    row = await _mine(relay, vault, request_id, principal)
    async with relay.tx() as tx:
        cancelled = await consent_store.transition(
            tx.conn, vault, request_id, ConsentState.PENDING, ConsentEvent.CANCELLED, now,
            client_id=principal.id,
        )  # fmt: skip
        if cancelled is None:
            fresh = await consent_store.get(tx.conn, vault, request_id)
            state = fresh.state_at(now) if fresh is not None else "gone"
            raise Conflict("not_pending", f"the consent request is no longer waiting (it is "
                           f"{state})")  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="consent.cancelled",
            client_id=principal.id, source_ip=source_ip, detail={"request": request_id},
        )  # fmt: skip
        _wake(tx, row, cancelled)
    return cancelled


# --- approvers see and answer --------------------------------------------------------------------


async def list_pending(relay: Relay, *, vault: str, now: int) -> list[ConsentApproval]:
    """Pending consent requests, oldest first, each with its client's certificate and the
    relay's count of that client's recent prompts (as access requests carry it)."""
    async with relay.read() as conn:
        rows = await consent_store.pending(conn, vault, now, APPROVALS_MAX)
        recent: dict[str, Recent] = {}
        out = []
        for row in rows:
            # Clients are disabled, never deleted; absent, there is nothing to verify with.
            holder = await client_store.get(conn, vault, row.client_id)
            if row.client_id not in recent:  # once per requester in a listing
                recent[row.client_id] = await fatigue.recent(
                    relay, conn, vault=vault, client_id=row.client_id, now=now)  # fmt: skip
            out.append(ConsentApproval(row, holder.certificate if holder else None,
                                       holder.enrollment if holder else None,
                                       recent=recent[row.client_id]))  # fmt: skip
    return out


async def _pending_row(relay: Relay, vault: str, request_id: str, now: int) -> ConsentRow:
    async with relay.read() as conn:
        row = await consent_store.get(conn, vault, request_id)
    if row is None:
        raise NotFound("no_such_request", "no consent request with this id")
    if not row.waiting(now):
        raise _not_pending(row.state_at(now))
    return row


def _not_pending(state: str) -> Conflict:
    return Conflict(
        "not_pending", f"the consent request is no longer waiting for answers (it is {state})"
    )


async def _refused(relay: Relay, vault: str, request_id: str, now: int) -> Conflict:
    async with relay.read() as conn:
        row = await consent_store.get(conn, vault, request_id)
    return _not_pending(row.state_at(now) if row is not None else "gone")


async def consent(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, token: str, now: int,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Answer a pending consent request with the consent the approver signed for exactly it.

    The consent must verify against the directory, be uploaded by its signer, and
    bind to the stored request: its action, client, details hash and hash.
    """
    row = await _pending_row(relay, vault, request_id, now)
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a consent is uploaded by the approver that signed it")
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
    # The stored statement verified when it was filed: read its payload again as such.
    request = read_filed_request(row.statement)
    check_consent_answers(token, directory=directory, request=request,
                          request_hash="sha256:" + row.id, now=now)  # fmt: skip
    async with relay.tx() as tx:
        done = await consent_store.transition(
            tx.conn, vault, request_id, ConsentState.PENDING, ConsentEvent.CONSENTED, now,
            answer=token, answered_by=principal.id,
        )  # fmt: skip
        if done is None:
            raise await _refused(relay, vault, request_id, now)
        await fatigue.record_approval(tx.conn, vault=vault, client_id=row.client_id)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="consent.consented",
            client_id=row.client_id, source_ip=source_ip,
            detail={"request": request_id, "action": row.action},
        )  # fmt: skip
        _wake(tx, row, done)
    return done


async def deny(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, token: str, now: int,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Refuse a pending consent request with a deny statement the approver signed for it."""
    row = await _pending_row(relay, vault, request_id, now)
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a deny is uploaded by the approver that signed it")
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
    # The reason is the approver's free text for the requester: it stays in the signed
    # statement (kept as the answer) and out of the audit log.
    statement = verify_deny(token, directory=directory, request_hash="sha256:" + request_id)
    refused = statement.grounds is not None
    async with relay.tx() as tx:
        # A denial counts toward its requester's lockout (a refusal of what did not verify
        # does not: the requester may not be at fault), before any audit event: it takes
        # the client's creation lock, and every writer takes the audit chain's lock last.
        lockout = None if refused else await fatigue.record_denial(
            relay, tx.conn, vault=vault, client_id=row.client_id, now=now,
        )  # fmt: skip
        done = await consent_store.transition(
            tx.conn, vault, request_id, ConsentState.PENDING, ConsentEvent.DENIED, now,
            answer=token, answered_by=principal.id,
        )  # fmt: skip
        if done is None:
            raise await _refused(relay, vault, request_id, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="consent.denied",
            severity="alert" if refused else "notice", client_id=row.client_id,
            source_ip=source_ip,
            detail={"request": request_id, "action": row.action,
                    **({"grounds": statement.grounds} if refused else {})},
        )  # fmt: skip
        if lockout is not None:
            await fatigue.audit_lockout(
                tx.conn, lockout, vault=vault, client_id=row.client_id, now=now,
                actor=principal.id, source_ip=source_ip,
            )  # fmt: skip
        _wake(tx, row, done)
    return done


async def expire_due(relay: Relay, now: int, limit: int) -> int:
    """Expire pending consent requests past their expiry (audited, their waiters woken)."""
    async with relay.tx() as tx:
        expired = await consent_store.expire_due(tx.conn, now, limit)
        for row in expired:
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor="relay", action="consent.expired",
                client_id=row.client_id, detail={"request": row.id, "action": row.action},
            )  # fmt: skip
            _wake(tx, row, ConsentState.EXPIRED.value)
    return len(expired)
