"""Audit checkpoints through the API, on SQLite and PostgreSQL.

An approver files a checkpoint it signed of the relay's own log: stored and
audited.  Refused, with nothing stored and the refusal audited: a head that is
not the relay's event at that seq, a seq beyond the log's end, another
approver's or another vault's statement, a broken signature, garbage, a date
in the future.  A client may neither file nor list them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from relay_support import Approver, Vault, error_of
from sqlalchemy import func, select
from test_relay_items import Harness

from sealbox.protocol import ids
from sealbox.protocol.audit import AuditEvent, head_digest, verify_checkpoint, verify_log
from sealbox.protocol.statements import CheckpointStatement, sign_statement
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store.tables import audit_checkpoints

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


def _sign(h: Harness, who: Approver, *, seq: int, head: str, vault: str | None = None,
          at: int | None = None, approver: str | None = None) -> str:  # fmt: skip
    statement = CheckpointStatement(
        vault=vault or h.vault.id, approver=approver or who.id, seq=seq, head=head,
        at=h.relay.now() if at is None else at,
    )  # fmt: skip
    return sign_statement(statement, who.sig, who.id)


async def _last(h: Harness) -> tuple[int, str]:
    async with h.relay.read() as conn:
        return await audit.last(conn, h.vault.id)


async def _stored(h: Harness) -> int:
    async with h.relay.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(audit_checkpoints)))
                   .scalar_one())  # fmt: skip


async def _post(h: Harness, token: Any, who: Approver | None = None) -> httpx.Response:
    return await h.call("POST", "/audit/checkpoints", signer=who or h.vault.approvers[0],
                        body={"statement": token})  # fmt: skip


async def _events(h: Harness) -> list[dict[str, Any]]:
    response = await h.call("GET", "/audit?limit=1000", signer=h.vault.approvers[0])
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def test_checkpoint_of_the_head_is_stored_listed_and_audited(h: Harness) -> None:
    first = h.vault.approvers[0]
    seq, hash_ = await _last(h)
    token = _sign(h, first, seq=seq, head=head_digest(hash_))
    response = await _post(h, token)
    assert response.status_code == 201, response.text
    assert response.json()["created"] is True
    again = await _post(h, token)
    assert again.status_code == 200
    assert again.json()["created"] is False
    listed = await h.call("GET", "/audit/checkpoints", signer=first)
    assert listed.status_code == 200
    [entry] = listed.json()["checkpoints"]
    assert entry == {"seq": seq, "approver": first.id, "head": head_digest(hash_),
                     "at": entry["at"], "statement": token}  # fmt: skip
    events = await _events(h)
    assert events[-1]["action"] == "audit.checkpoint"
    assert events[-1]["detail"] == {"seq": seq, "head": head_digest(hash_)}
    assert len([e for e in events if e["action"] == "audit.checkpoint"]) == 1
    # What the relay serves verifies as a client checks it.
    parsed = [AuditEvent.from_json(e) for e in events]
    statement = verify_checkpoint(token, h.directory())
    checked = verify_log(parsed, checkpoints=[statement])
    assert checked.checkpoints == (statement,)


async def test_refusals_store_nothing_and_are_audited(h: Harness) -> None:
    first = h.vault.approvers[0]
    second = await h.add_approver("second")
    seq, hash_ = await _last(h)
    other_vault = ids.new_id(ids.VAULT)
    cases: list[tuple[str, int, str]] = [
        (_sign(h, first, seq=seq, head=head_digest("ab" * 32)), 409, "checkpoint_mismatch"),
        (_sign(h, first, seq=seq + 50, head=head_digest(hash_)), 409, "checkpoint_beyond_head"),
        (
            _sign(h, first, seq=seq, head=head_digest(hash_), vault=other_vault),
            400,
            "invalid_checkpoint",
        ),
        (
            _sign(h, first, seq=seq, head=head_digest(hash_), at=h.relay.now() + 3600),
            400,
            "invalid_checkpoint",
        ),
        (
            _sign(h, second, seq=seq, head=head_digest(hash_))[:-4] + "AAAA",
            400,
            "invalid_checkpoint",
        ),
        ("not a jws", 400, "invalid_checkpoint"),
        (_sign(h, first, seq=0, head=head_digest(hash_)), 400, "invalid_checkpoint"),
    ]
    for n, (token, status, code) in enumerate(cases):
        response = await _post(h, token, second if n == 4 else first)
        assert response.status_code == status, response.text
        assert error_of(response)["error"] == code
    # Signed by one approver, uploaded by another: refused as not its own.
    response = await _post(h, _sign(h, second, seq=seq, head=head_digest(hash_)), first)
    assert response.status_code == 403
    assert await _stored(h) == 0
    refused = [e for e in await _events(h) if e["action"] == "audit.checkpoint_refused"]
    assert [e["detail"]["error"] for e in refused] == [c[2] for c in cases]
    assert all(e["severity"] == "warning" for e in refused)
    assert refused[0]["detail"]["seq"] == seq


async def test_clients_may_not_file_or_list(h: Harness) -> None:
    seq, hash_ = await _last(h)
    requester = await h.add_client()
    token = _sign(h, h.vault.approvers[0], seq=seq, head=head_digest(hash_))
    response = await h.call("POST", "/audit/checkpoints", signer=requester,
                            body={"statement": token})  # fmt: skip
    assert response.status_code == 403
    response = await h.call("GET", "/audit/checkpoints", signer=requester)
    assert response.status_code == 403
    assert await _stored(h) == 0


async def test_pages_hold_whole_seqs(h: Harness) -> None:
    first = h.vault.approvers[0]
    second = await h.add_approver("second")
    seq, hash_ = await _last(h)
    for who in (first, second):
        token = _sign(h, who, seq=seq, head=head_digest(hash_))
        assert (await _post(h, token, who)).status_code == 201
    later, later_hash = await _last(h)
    assert (
        await _post(h, _sign(h, first, seq=later, head=head_digest(later_hash)))
    ).status_code == 201
    got: list[tuple[int, str]] = []
    after = 0
    while True:
        page = await h.call("GET", f"/audit/checkpoints?after_seq={after}&limit=2", signer=first)
        body = page.json()
        got += [(c["seq"], c["approver"]) for c in body["checkpoints"]]
        if body["next_after_seq"] is None:
            break
        after = body["next_after_seq"]
    assert sorted(got) == sorted([(seq, first.id), (seq, second.id), (later, first.id)])
    assert len(got) == 3
