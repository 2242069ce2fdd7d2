"""The audit log, for approvers: list, follow live, export, and verify its hash chain.

Every endpoint takes the same filters; unknown or repeated query parameters
are refused rather than ignored, so a misspelt filter never widens a search
silently.  Reads are bounded by the head of the log read first: appends to a
vault's log are serialised and commit in sequence order, so every event up
to that head is visible, and a page never skips one still being written.

Nothing here writes: looking at the log leaves no trace in it, and what is
shown is exactly what was appended (ids, paths, codes, counts; never
secrets, see :mod:`sealbox.server.audit`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto.encoding import canonical_json
from sealbox.server import audit
from sealbox.server.auth import Principal, require_approver
from sealbox.server.db.tables import audit_events
from sealbox.server.errors import ApiError
from sealbox.server.notify import CLOSED
from sealbox.server.relay import Relay
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory

router = APIRouter(prefix="/v1/vaults/{vault}/audit", tags=["audit"])

#: The fields of an event, in the order every endpoint shows them.
FIELDS = ("seq", "at", "actor", "action", "severity", "client_id", "item_id", "source_ip",
          "detail", "prev_hash", "hash")  # fmt: skip
#: Severities, least to most severe; a filter keeps its level and those above.
SEVERITY_ORDER = ("info", "notice", "warning", "alert")
#: Events read from the database at a time by the stream and the export.
PAGE = 500
#: How often an idle stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0
#: Largest sequence number or time accepted (the columns are 64-bit).
INT_MAX = 2**63 - 1

Severity = Literal["info", "notice", "warning", "alert"]


class Filters(BaseModel):
    """What every audit endpoint can select on; all given filters must match."""

    model_config = ConfigDict(extra="forbid")

    after_seq: int = Field(0, ge=0, le=INT_MAX, description="Only events after this seq.")
    action: str | None = Field(
        None, min_length=1, max_length=65, pattern=r"^[A-Za-z0-9_.\-]*\*?$",
        description="An action (e.g. access.release), or a prefix ending in * (e.g. access.*).",
    )  # fmt: skip
    actor: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.:@\-]+$")
    client_id: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
    item_id: str | None = Field(None, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
    severity: Severity | None = Field(None, description="Minimum: info < notice < warning < alert.")
    since: int | None = Field(None, ge=0, le=INT_MAX, description="Events at or after (unix s).")
    until: int | None = Field(None, ge=0, le=INT_MAX, description="Events before (unix s).")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since is later than until")
        return self


class ListQuery(Filters):
    limit: int = Field(100, ge=1, le=1000, description="Most events to return.")


class ExportQuery(Filters):
    format: Literal["jsonl", "csv"] = "jsonl"


async def _approver(request: Request, vault: str) -> Principal:
    """An approver of the vault, asking once for each filter."""
    principal = await require_approver(request, vault)
    # Starlette keeps the last of repeated parameters; refuse rather than guess.
    keys = [key for key, _ in request.query_params.multi_items()]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ApiError(
            400, "repeated_parameter", f"query parameter(s) given more than once: {repeated}",
            "Give each filter at most once.",
        )  # fmt: skip
    return principal


Approver = Annotated[Principal, Depends(_approver)]


def _where(query: Select[Any], vault: str, f: Filters, after: int, upto: int) -> Select[Any]:
    c = audit_events.c
    query = query.where(c.vault_id == vault, c.seq > after, c.seq <= upto)
    if f.action is not None:
        if f.action.endswith("*"):
            query = query.where(c.action.startswith(f.action[:-1], autoescape=True))
        else:
            query = query.where(c.action == f.action)
    if f.actor is not None:
        query = query.where(c.actor == f.actor)
    if f.client_id is not None:
        query = query.where(c.client_id == f.client_id)
    if f.item_id is not None:
        query = query.where(c.item_id == f.item_id)
    if f.severity is not None:
        query = query.where(c.severity.in_(SEVERITY_ORDER[SEVERITY_ORDER.index(f.severity) :]))
    if f.since is not None:
        query = query.where(c.at >= f.since)
    if f.until is not None:
        query = query.where(c.at < f.until)
    return query


def _event(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in FIELDS}


async def _page(
    conn: AsyncConnection, vault: str, f: Filters, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` matching events after ``after``, and the seq to continue after.

    The head is read first: every event up to it has committed (appends to
    one vault are serialised), so continuing after it loses nothing.
    """
    head = await audit.head(conn, vault)
    rows = await conn.execute(
        _where(select(audit_events), vault, f, after, head)
        .order_by(audit_events.c.seq)
        .limit(limit)
    )
    events = [_event(row) for row in rows.mappings()]
    if len(events) == limit:
        return events, events[-1]["seq"]
    return events, max(after, head)


@router.get("")
async def list_events(
    vault: str, request: Request, principal: Approver, q: Annotated[ListQuery, Query()]
) -> dict[str, Any]:
    """Matching events, oldest first.

    Pass ``next_after_seq`` back as ``after_seq`` for the next page; a page
    shorter than ``limit`` is the last one for now.  ``action`` is exact or
    a prefix ending in ``*``; ``severity`` is a minimum; ``since`` is
    inclusive and ``until`` exclusive.
    """
    async with relay_of(request).read() as conn:
        events, after = await _page(conn, vault, q, q.after_seq, q.limit)
    return {"events": events, "next_after_seq": after}


def _sse(event: Mapping[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event['seq']}\nevent: audit\ndata: {data}\n\n"


async def _still_approver(relay: Relay, vault: str, principal: Principal) -> bool:
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
    return principal.id in directory.approvers


_LAST_EVENT_ID = re.compile(r"[0-9]{1,19}")


@router.get("/stream")
async def stream_events(
    vault: str,
    request: Request,
    principal: Approver,
    q: Annotated[Filters, Query()],
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events: matching events after ``after_seq``, then each new one as it comes.

    Each event is ``event: audit`` with ``id: <seq>``; a reconnecting client's
    ``Last-Event-ID`` header, when sent, is the resume point instead of
    ``after_seq``.  A comment every 15 s keeps idle connections open.  The
    stream ends with a ``revoked`` event if you leave the approver set.
    """
    relay = relay_of(request)
    after = q.after_seq
    if last_event_id is not None:
        if not _LAST_EVENT_ID.fullmatch(last_event_id) or int(last_event_id) > INT_MAX:
            raise ApiError(400, "invalid_last_event_id",
                           "Last-Event-ID must be the seq of an audit event",
                           "Resume with the id of the last event received.")  # fmt: skip
        after = int(last_event_id)

    async def events() -> AsyncIterator[str]:
        cursor = after
        # Subscribed before the first read: an event committed after that read
        # still wakes this stream, so nothing is lost in between.
        async with relay.hub.subscribe(f"vault:{vault}:audit") as queue:
            yield ": sealbox audit\n\n"
            while True:
                while True:  # catch up, a page at a time, without holding a connection
                    async with relay.read() as conn:
                        page, cursor = await _page(conn, vault, q, cursor, PAGE)
                    for event in page:
                        yield _sse(event)
                    if len(page) < PAGE:
                        break
                message: object = None
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                while message is not CLOSED and not queue.empty():  # one read answers them all
                    message = queue.get_nowait()
                if message is CLOSED:
                    return  # the relay is stopping: a client resumes from its Last-Event-ID
                # Directory changes are audited too, so a removed approver is seen
                # here at once (and at the next keepalive otherwise).
                if not await _still_approver(relay, vault, principal):
                    yield 'event: revoked\ndata: {"reason":"not an approver"}\n\n'
                    return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _csv_row(event: Mapping[str, Any]) -> list[Any]:
    out = []
    for name in FIELDS:
        value = event[name]
        if name == "detail":
            value = canonical_json(value).decode()
        out.append("" if value is None else value)
    return out


@router.get("/export")
async def export_events(
    vault: str, request: Request, principal: Approver, q: Annotated[ExportQuery, Query()]
) -> StreamingResponse:
    """Every matching event as JSON Lines or CSV (header row; ``detail`` as JSON text).

    The export ends at the head of the log when it started.  In CSV an empty
    cell is an absent value, and ``detail`` is canonical JSON, so each event's
    hash can be recomputed from the file.
    """
    relay = relay_of(request)
    async with relay.read() as conn:
        end = await audit.head(conn, vault)

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if q.format == "csv":
            writer.writerow(FIELDS)
        cursor = q.after_seq
        while True:
            async with relay.read() as conn:
                rows = await conn.execute(
                    _where(select(audit_events), vault, q, cursor, end)
                    .order_by(audit_events.c.seq)
                    .limit(PAGE)
                )
                page = [_event(row) for row in rows.mappings()]
            for event in page:
                if q.format == "csv":
                    writer.writerow(_csv_row(event))
                else:
                    buffer.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
                    buffer.write("\n")
            if buffer.tell():
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
            if len(page) < PAGE:
                return
            cursor = page[-1]["seq"]

    media, ext = (
        ("text/csv; charset=utf-8", "csv")
        if q.format == "csv"
        else ("application/x-ndjson", "jsonl")
    )
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={
            "cache-control": "no-store",
            "content-disposition": f'attachment; filename="sealbox-audit-{vault}.{ext}"',
        },
    )


class VerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")


@router.get("/verify")
async def verify(
    vault: str, request: Request, principal: Approver, q: Annotated[VerifyQuery, Query()]
) -> dict[str, Any]:
    """Recompute the whole hash chain; the number of events and the head it ends at.

    409 ``audit_chain_broken`` names the first event whose seq, link or hash
    does not match: an event was edited or removed.
    """
    relay = relay_of(request)
    async with relay.read() as conn:
        if relay.is_postgres:
            # One snapshot for the walk and the head, even while events are appended.
            await conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            count = await audit.verify_chain(conn, vault)
        except ValueError as exc:
            found = re.search(r"event (\d+)", str(exc))
            where = f" at event {found.group(1)}" if found else ""
            raise ApiError(
                409, "audit_chain_broken", f"the audit chain breaks{where}",
                "An event was edited or removed after it was written. Compare with an "
                "earlier export or checkpoint to see what changed.",
            ) from None  # fmt: skip
        last = (
            await conn.execute(
                select(audit_events.c.seq, audit_events.c.hash)
                .where(audit_events.c.vault_id == vault)
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            )
        ).first()
    head = {"seq": last.seq, "hash": last.hash} if last else {"seq": 0, "hash": audit.GENESIS}
    return {"events": count, "head": head}
