"""Audit checkpoints: approvers file signed statements of the audit chain's head; anyone
approving the vault lists them (see :mod:`sealbox.server.services.checkpoints`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import checkpoints as service
from sealbox.server.store.checkpoints import CheckpointRow

router = APIRouter(prefix="/v1/vaults/{vault}/audit/checkpoints", tags=["audit"])

#: Longest checkpoint accepted (a few hundred bytes signed; room to spare).
STATEMENT_MAX = 4096


class CheckpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement: str = Field(
        max_length=STATEMENT_MAX, description="The sealbox.checkpoint.v1 statement you signed."
    )


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_seq: int = Field(0, ge=0, le=2**63 - 1, description="Only checkpoints after this seq.")
    limit: int = Field(1000, ge=1, le=1000, description="Most checkpoints to return.")


def checkpoint_json(row: CheckpointRow) -> dict[str, Any]:
    return {"seq": row.seq, "approver": row.approver_id, "head": row.head, "at": row.at,
            "statement": row.statement}  # fmt: skip


@router.post("", status_code=201)
async def file_checkpoint(
    vault: str, body: CheckpointBody, request: Request, response: Response, principal: Approver
) -> dict[str, Any]:
    """File a checkpoint you signed: event ``seq`` of this vault's log has hash ``head``.

    201 stored; 200 you had checkpointed this seq already (nothing changed).
    400 ``invalid_checkpoint``: not a checkpoint of this vault signed by you.
    409 ``checkpoint_beyond_head``: the log has no event at that seq; 409
    ``checkpoint_mismatch``: the relay's event at that seq has another hash.
    """
    relay = relay_of(request)
    stored = await service.file(relay, vault=vault, principal=principal, token=body.statement,
                                now=relay.now(), source_ip=source_ip(request))  # fmt: skip
    if not stored.created:
        response.status_code = 200
    return {"checkpoint": checkpoint_json(stored.row), "created": stored.created}


@router.get("")
async def list_checkpoints(
    vault: str, request: Request, principal: Approver, q: Annotated[ListQuery, Query()]
) -> dict[str, Any]:
    """Checkpoints after ``after_seq``, by seq; pass ``next_after_seq`` back for more.

    A full page holds only whole seqs (every approver's checkpoint of each seq on it), so
    it may hold fewer than ``limit``; ``next_after_seq`` is null on the last page.

    Verify each yourself: the relay checked them when it stored them, but a
    verifier trusts only the approvers' signatures and its own events.
    """
    found = await service.listed(relay_of(request), vault=vault, after=q.after_seq, limit=q.limit)
    next_after = None
    if len(found) == q.limit:
        # A full page ends on whole seqs: the next page starts after the last seq kept, so
        # no approver's checkpoint of a seq split across two pages is skipped.
        whole = [r for r in found if r.seq < found[-1].seq] or found
        found, next_after = whole, whole[-1].seq
    return {"checkpoints": [checkpoint_json(r) for r in found], "next_after_seq": next_after}
