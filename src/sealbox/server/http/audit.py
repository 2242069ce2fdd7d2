"""The audit log, for approvers: list, follow live, export, and verify its hash chain; and
for a client, its own latest events (``/mine``).

Every endpoint takes the same filters; unknown or repeated query parameters
are refused rather than ignored, so a misspelt filter never widens a search
silently.  Reads are bounded by the head of the log read first, so a page
never skips an event still being written (see
:mod:`sealbox.server.services.audit`).

Nothing here writes: looking at the log leaves no trace in it, and what is
shown is exactly what was appended (ids, paths, codes, counts; never
secrets, see :mod:`sealbox.server.store.audit`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sealbox.crypto.encoding import canonical_json
from sealbox.server.auth import Client, require_approver
from sealbox.server.errors import Invalid
from sealbox.server.http.deps import Principal, relay_of
from sealbox.server.services import audit as service

router = APIRouter(prefix="/v1/vaults/{vault}/audit", tags=["audit"])

#: The fields of an event, in the order every endpoint shows them.
FIELDS = ("seq", "at", "actor", "action", "severity", "client_id", "item_id", "source_ip",
          "detail", "prev_hash", "hash")  # fmt: skip
#: How often an idle stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0
#: Largest sequence number or time accepted (the columns are 64-bit).
INT_MAX = 2**63 - 1

Severity = Literal["info", "notice", "warning", "alert", "critical"]


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
    severity: Severity | None = Field(
        None, description="Minimum: info < notice < warning < alert < critical."
    )
    since: int | None = Field(None, ge=0, le=INT_MAX, description="Events at or after (unix s).")
    until: int | None = Field(None, ge=0, le=INT_MAX, description="Events before (unix s).")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since is later than until")
        return self

    def selection(self) -> service.Filter:
        return service.Filter(
            action=self.action, actor=self.actor, client_id=self.client_id,
            item_id=self.item_id, severity=self.severity, since=self.since, until=self.until,
        )  # fmt: skip


class ListQuery(Filters):
    limit: int = Field(100, ge=1, le=1000, description="Most events to return.")


class ExportQuery(Filters):
    format: Literal["jsonl", "csv"] = "jsonl"


class MineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200, description="Most events to return (the latest).")


class VerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def _approver(request: Request, vault: str) -> Principal:
    """An approver of the vault, asking once for each filter."""
    principal = await require_approver(request, vault)
    # Starlette keeps the last of repeated parameters; refuse rather than guess.
    keys = [key for key, _ in request.query_params.multi_items()]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise Invalid(
            "repeated_parameter", f"query parameter(s) given more than once: {repeated}",
            "Give each filter at most once.",
        )  # fmt: skip
    return principal


Approver = Annotated[Principal, Depends(_approver)]


def _event(event: service.Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in FIELDS}


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
    found = await service.page(
        relay_of(request), vault=vault, filters=q.selection(), after=q.after_seq, limit=q.limit
    )
    return {"events": [_event(e) for e in found.events], "next_after_seq": found.next_after}


#: What a client sees of its own events: no hash chain (only approvers can check it whole).
MINE_FIELDS = ("seq", "at", "actor", "action", "severity", "client_id", "item_id", "source_ip",
               "detail")  # fmt: skip


@router.get("/mine")
async def my_events(
    vault: str, request: Request, principal: Client, q: Annotated[MineQuery, Query()]
) -> dict[str, Any]:
    """The calling client's own latest events (oldest of them first): its requests, their
    releases, denials, expiries and cache hits.  Nobody else's; an approver's source
    address is left out of the events an approver caused."""
    found = await service.mine(relay_of(request), vault=vault, client_id=principal.id,
                               limit=q.limit)  # fmt: skip
    return {"events": [{name: getattr(e, name) for name in MINE_FIELDS} for e in found]}


def _sse(event: Mapping[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event['seq']}\nevent: audit\ndata: {data}\n\n"


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
            raise Invalid("invalid_last_event_id",
                          "Last-Event-ID must be the seq of an audit event",
                          "Resume with the id of the last event received.")  # fmt: skip
        after = int(last_event_id)

    async def frames() -> AsyncIterator[str]:
        following = service.follow(
            relay, vault=vault, filters=q.selection(), after=after, approver_id=principal.id,
            idle_seconds=KEEPALIVE_SECONDS,
        )  # fmt: skip
        async with following as items:
            # Sent once subscribed: whatever is appended from here on will come.
            yield ": sealbox audit\n\n"
            async for item in items:
                if isinstance(item, service.Revoked):
                    data = json.dumps({"reason": item.reason}, separators=(",", ":"))
                    yield f"event: revoked\ndata: {data}\n\n"
                elif isinstance(item, service.Idle):
                    yield ": keepalive\n\n"
                else:
                    yield _sse(_event(item))

    return StreamingResponse(
        frames(),
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
    pages = await service.export(
        relay_of(request), vault=vault, filters=q.selection(), after=q.after_seq
    )

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if q.format == "csv":
            writer.writerow(FIELDS)
        async for page in pages:
            for event in map(_event, page):
                if q.format == "csv":
                    writer.writerow(_csv_row(event))
                else:
                    buffer.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
                    buffer.write("\n")
            if buffer.tell():
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()

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


@router.get("/verify")
async def verify(
    vault: str, request: Request, principal: Approver, q: Annotated[VerifyQuery, Query()]
) -> dict[str, Any]:
    """Recompute the whole hash chain; the number of events and the head it ends at.

    409 ``audit_chain_broken`` names the first event whose seq, link or hash
    does not match: an event was edited or removed.
    """
    checked = await service.verify(relay_of(request), vault=vault)
    return {"events": checked.events, "head": {"seq": checked.head_seq, "hash": checked.head_hash}}
