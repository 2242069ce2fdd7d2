"""Consent requests through the API with the real protocol, on SQLite and PostgreSQL.

A client asks; approvers list it and consent (or deny); the client's long poll
gets the consent, which binds to exactly what was asked.  Every refusal is a
clear 4xx and leaves the consent requests as they were.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from relay_support import SseStream, Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness, Requester

from sealbox.crypto import jws
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol.access import deny
from sealbox.protocol.consent import (
    ConsentAsk,
    build_consent_request,
    consent_details_hash,
    consent_scope,
    issue_consent,
    verify_consent,
)
from sealbox.protocol.statements import ConsentRequestStatement, sign_statement
from sealbox.server.app import create_app
from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping
from sealbox.server.store.tables import audit_events, consent_requests, replay

pytestmark = pytest.mark.anyio

PLAN = {"service": "api", "image": "api:1.4.2", "replicas": 3}


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


def _ask(h: Harness, client: Requester, **kw: Any) -> ConsentAsk:
    args: dict[str, Any] = {
        "client": client.id, "key": client.key, "vault": h.vault.id, "action": "deploy",
        "details": PLAN, "purpose": "release 1.4.2", "now": int(h.relay.now()), "ttl": 120,
    }  # fmt: skip
    args.update(kw)
    return build_consent_request(**args)


async def _create(h: Harness, client: Requester, ask: ConsentAsk) -> httpx.Response:
    return await h.call("POST", "/consent-requests", signer=client, body={"statement": ask.token})


async def _asked(h: Harness, client: Requester, **kw: Any) -> tuple[ConsentAsk, str]:
    ask = _ask(h, client, **kw)
    created = await _create(h, client, ask)
    assert created.status_code == 201, created.text
    return ask, created.json()["id"]


def _consent(h: Harness, ask: ConsentAsk, *, by: int = 0, **kw: Any) -> str:
    a = h.vault.approvers[by]
    s = ask.statement
    args: dict[str, Any] = {
        "approver": a.id, "key": a.sig, "action": s.action, "details": s.details,
        "client": s.client, "scope": consent_scope(ask.hash), "now": int(h.relay.now()),
        "ttl": s.ttl,
    }  # fmt: skip
    args.update(kw)
    return issue_consent(h.directory(), **args)


async def _answer(h: Harness, request_id: str, token: str, *, by: int = 0) -> httpx.Response:
    return await h.call("POST", f"/consent-requests/{request_id}/consent",
                        signer=h.vault.approvers[by], body={"consent": token})  # fmt: skip


async def _deny(
    h: Harness, request_id: str, *, by: int = 0, reason: str = "not now"
) -> httpx.Response:
    a = h.vault.approvers[by]
    token = deny("sha256:" + request_id, directory=h.directory(), approver=a.id, key=a.sig,
                 reason=reason, now=int(h.relay.now()))  # fmt: skip
    return await h.call("POST", f"/consent-requests/{request_id}/deny", signer=a,
                        body={"deny": token})  # fmt: skip


async def _status(h: Harness, client: Requester, request_id: str, wait: int = 0) -> httpx.Response:
    return await h.call("GET", f"/consent-requests/{request_id}?wait={wait}", signer=client)


async def _listed(h: Harness, by: int = 0) -> list[dict[str, Any]]:
    got = await h.call("GET", "/consent-approvals", signer=h.vault.approvers[by])
    assert got.status_code == 200, got.text
    return list(got.json()["consent_requests"])


async def _rows(relay: Relay) -> list[tuple[Any, ...]]:
    async with relay.read() as conn:
        return sorted(tuple(r) for r in (await conn.execute(select(consent_requests))).all())


async def _actions(relay: Relay, vault: str) -> list[str]:
    async with relay.read() as conn:
        rows = await conn.execute(
            select(audit_events.c.action, audit_events.c.detail)
            .where(audit_events.c.vault_id == vault, audit_events.c.action.like("consent.%"))
            .order_by(audit_events.c.seq)
        )
        return [r.action for r in rows]


async def test_consent_end_to_end(h: Harness) -> None:
    client = await h.add_client()
    await h.add_approver()
    ask, request_id = await _asked(h, client)
    assert request_id == ask.hash.removeprefix("sha256:")

    # Every approver sees it, with what verifying it needs.
    for by in (0, 1):
        (entry,) = await _listed(h, by)
        assert entry["id"] == request_id
        assert entry["statement"] == ask.token
        assert entry["certificate"] == client.certificate
        assert entry["client"] == client.id
        assert entry["reported_by_server"] == {
            "source_ip": "127.0.0.1",
            "recent": {"window_seconds": 3600, "requests": 1, "denials": 0, "locked": False,
                       "counted_up_to": 1000},
        }  # fmt: skip

    token = _consent(h, ask, by=1)
    done = await _answer(h, request_id, token, by=1)
    assert done.status_code == 200, done.text
    assert done.json() == {"id": request_id, "state": "consented"}
    assert await _listed(h) == []
    late = await _answer(h, request_id, _consent(h, ask, by=0))
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")

    got = await _status(h, client, request_id)
    assert got.status_code == 200, got.text
    assert got.json() == {"id": request_id, "state": "delivered",
                          "expires_at": ask.statement.exp, "consent": token}  # fmt: skip
    consent = verify_consent(got.json()["consent"], directory=h.directory(), action="deploy",
                             details=PLAN, client=client.id, now=int(h.relay.now()))  # fmt: skip
    assert consent.approver == h.vault.approvers[1].id
    # Read again: still delivered, still the consent; delivered is recorded once.
    again = await _status(h, client, request_id)
    assert again.json()["state"] == "delivered"
    assert await _actions(h.relay, h.vault.id) == [
        "consent.requested", "consent.consented", "consent.delivered",
    ]  # fmt: skip


async def test_the_relays_recent_count_is_served_apart_as_for_access_requests(
    h: Harness,
) -> None:
    """Each listed consent request carries the relay's count of its requester's prompts (access
    and consent requests alike), under what only the relay reports, as access requests do."""
    client, other = await h.add_client(), await h.add_client()
    _, first = await _asked(h, client)
    denied = await _deny(h, first)
    assert denied.status_code == 200, denied.text
    await _asked(h, other)
    stored, _ = await h.store_direct(h.vault.approvers[0], "app/prod/db", PASSWORD)
    asked = await h.ask(client, h.access(client, [(stored, "app/prod/db", ["user"])]))
    assert asked.status_code == 201, asked.text
    _, waiting = await _asked(h, client, purpose="once more")
    expected = {"window_seconds": 3600, "requests": 3, "denials": 1, "locked": False,
                "counted_up_to": 1000}  # fmt: skip
    listed = {entry["id"]: entry for entry in await _listed(h)}
    entry = listed[waiting]
    assert entry["reported_by_server"] == {"source_ip": "127.0.0.1", "recent": expected}
    # Only under what the relay reports, never beside what is signed.
    assert "recent" not in entry
    # Another requester's entry has its own count; the access listing agrees on this one's.
    (theirs,) = [e for e in listed.values() if e["client"] == other.id]
    assert theirs["reported_by_server"]["recent"] == {**expected, "requests": 1, "denials": 0}
    access = await h.approval(h.vault.approvers[0], asked.json()["id"])
    assert access["reported_by_server"]["recent"] == expected


async def test_audit_holds_the_action_but_not_the_details(h: Harness) -> None:
    client = await h.add_client()
    await _asked(h, client, details={"account": "DE89 3704 0044 0532 0130 00", "amount": 12})
    async with h.relay.read() as conn:
        row = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "consent.requested")
            )
        ).one()
    assert row.detail["action"] == "deploy"
    assert row.detail["details"] == consent_details_hash(
        {"account": "DE89 3704 0044 0532 0130 00", "amount": 12}
    )
    assert "DE89" not in repr(tuple(row))


async def test_long_poll_wakes_on_consent(h: Harness) -> None:
    client = await h.add_client()
    ask, request_id = await _asked(h, client)
    waiting = asyncio.create_task(_status(h, client, request_id, wait=30))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    assert (await _answer(h, request_id, _consent(h, ask))).status_code == 200
    got = await asyncio.wait_for(waiting, 10)
    assert got.json()["state"] == "delivered"


async def test_deny_reaches_the_client_signed(h: Harness) -> None:
    client = await h.add_client()
    _, request_id = await _asked(h, client)
    denied = await _deny(h, request_id, reason="no deploys on Friday")
    assert denied.status_code == 200, denied.text
    assert denied.json() == {"id": request_id, "state": "denied"}
    got = (await _status(h, client, request_id)).json()
    assert got["state"] == "denied"
    assert jws.read_header(got["deny"]).kid == h.vault.approvers[0].id
    assert "consent" not in got
    assert "no deploys on Friday" not in repr(await _actions(h.relay, h.vault.id))
    assert await _actions(h.relay, h.vault.id) == ["consent.requested", "consent.denied"]


async def test_cancel_then_no_answer_counts(h: Harness) -> None:
    client = await h.add_client()
    ask, request_id = await _asked(h, client)
    other = await h.add_client()
    stranger = await h.call("POST", f"/consent-requests/{request_id}/cancel", signer=other)
    assert (stranger.status_code, error_of(stranger)["error"]) == (404, "no_such_request")
    cancelled = await h.call("POST", f"/consent-requests/{request_id}/cancel", signer=client)
    assert cancelled.json() == {"id": request_id, "state": "cancelled"}
    late = await _answer(h, request_id, _consent(h, ask))
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    again = await h.call("POST", f"/consent-requests/{request_id}/cancel", signer=client)
    assert again.status_code == 409
    assert (await _status(h, client, request_id)).json()["state"] == "cancelled"


async def test_expiry(h: Harness) -> None:
    client = await h.add_client()
    ask, request_id = await _asked(h, client, wait=60)
    token = _consent(h, ask)
    h.relay.clock.now += 61  # type: ignore[attr-defined]
    assert (await _status(h, client, request_id)).json()["state"] == "expired"
    assert await _listed(h) == []
    late = await _answer(h, request_id, token)
    assert late.status_code in (400, 409), late.text
    swept = await housekeeping.sweep(h.relay, int(h.relay.now()))
    assert swept.expired == 1
    assert await _actions(h.relay, h.vault.id) == ["consent.requested", "consent.expired"]
    async with h.relay.read() as conn:
        state = (await conn.execute(select(consent_requests.c.state))).scalar_one()
    assert state == "expired"


async def test_only_its_client_sees_a_request(h: Harness) -> None:
    client = await h.add_client()
    _, request_id = await _asked(h, client)
    other = await h.add_client()
    got = await _status(h, other, request_id)
    assert (got.status_code, error_of(got)["error"]) == (404, "no_such_request")
    # A client is not an approver.
    listed = await h.call("GET", "/consent-approvals", signer=client)
    assert listed.status_code in (401, 403)


def _changed(ask: ConsentAsk, **changes: Any) -> dict[str, Any]:
    return {**ask.statement.to_json(), **changes}


async def test_bad_requests_are_refused_and_change_nothing(h: Harness) -> None:
    client = await h.add_client()
    other = await h.add_client()
    good = _ask(h, client)
    before = await _rows(h.relay)
    now = int(h.relay.now())
    cases: list[tuple[Requester, str, int]] = [
        # Not a JWS, or signed by another key than the caller's certified one.
        (client, "not-a-jws", 400),
        (client, sign_statement(good.statement, SigningKey.generate(), client.id), 400),
        (other, good.token, 403),
        # Signed right, but for another vault, another client, too long a wait, too old.
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, vault=ids.new_id(ids.VAULT), jti=ids.new_id(ids.JTI))),
         400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, client=other.id, jti=ids.new_id(ids.JTI))), 400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, exp=now + 7200, jti=ids.new_id(ids.JTI))), 400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, at=now - 4000, exp=now - 3700, jti=ids.new_id(ids.JTI))),
         400),
        # Details that are too big or not canonical JSON; a ttl beyond an hour.
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, details={"blob": "x" * 9000})), 400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, details=["not", "an", "object"])), 400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, ttl=3601)), 400),
        (client, jws.sign(client.key, ConsentRequestStatement.TYP, client.id,
                          _changed(good, action="deploy\x1b[2J")), 400),
    ]  # fmt: skip
    for signer, token, status in cases:
        got = await h.call("POST", "/consent-requests", signer=signer, body={"statement": token})
        assert got.status_code == status, (token[:40], got.text)
        error_of(got)
    assert await _rows(h.relay) == before
    assert await _actions(h.relay, h.vault.id) == []


async def test_a_replayed_request_is_refused(h: Harness) -> None:
    client = await h.add_client()
    ask, _ = await _asked(h, client)
    again = await _create(h, client, ask)
    assert again.status_code == 409, again.text
    assert len(await _rows(h.relay)) == 1


async def test_pending_cap(h: Harness) -> None:
    client = await h.add_client()
    h.relay.settings = dataclasses.replace(h.relay.settings, pending_cap=2)
    for _ in range(2):
        await _asked(h, client)
    before = await _rows(h.relay)
    over = await _create(h, client, _ask(h, client))
    assert (over.status_code, error_of(over)["error"]) == (429, "too_many_pending")
    assert await _rows(h.relay) == before
    # Another client has its own cap.
    other = await h.add_client()
    assert (await _create(h, other, _ask(h, other))).status_code == 201


async def test_a_disabled_or_unknown_client_cannot_ask(h: Harness) -> None:
    client = await h.add_client()
    stranger = Requester(ids.new_id(ids.CLIENT), SigningKey.generate(), client.certificate)
    got = await _create(h, stranger, _ask(h, stranger))
    assert got.status_code == 401, got.text
    assert await _rows(h.relay) == []


async def test_consents_that_do_not_bind_are_refused(h: Harness) -> None:
    client = await h.add_client()
    await h.add_approver()
    ask, request_id = await _asked(h, client)
    outsider = SigningKey.generate()
    other_ask = _ask(h, client)
    now = int(h.relay.now())
    a = h.vault.approvers[0]
    good = _consent(h, ask)
    cases = [
        # Other details, other action, other client, another request's scope, longer.
        (_consent(h, ask, details={**PLAN, "replicas": 30}), 0, 400),
        (_consent(h, ask, action="rollback"), 0, 400),
        (_consent(h, ask, client=ids.new_id(ids.CLIENT)), 0, 400),
        (_consent(h, ask, scope=consent_scope(other_ask.hash)), 0, 400),
        (_consent(h, ask, ttl=121), 0, 400),
        # Signed by a key that is not the approver's; uploaded by another approver.
        (sign_statement(verify_consent(good, directory=h.directory(), action="deploy",
                                       details=PLAN, client=client.id, now=now),
                        outsider, a.id), 0, 400),
        (good, 1, 403),
        # A deny where a consent belongs, and junk.
        (deny(ask.hash, directory=h.directory(), approver=a.id, key=a.sig, reason="x", now=now),
         0, 400),
        ("junk", 0, 400),
    ]  # fmt: skip
    before = await _rows(h.relay)
    for token, by, status in cases:
        got = await _answer(h, request_id, token, by=by)
        assert got.status_code == status, got.text
    assert await _rows(h.relay) == before
    assert (await _status(h, client, request_id)).json()["state"] == "pending"
    # The good one still counts after all that.
    assert (await _answer(h, request_id, good)).status_code == 200


async def test_deny_of_another_request_is_refused(h: Harness) -> None:
    client = await h.add_client()
    _, request_id = await _asked(h, client)
    _, other_id = await _asked(h, client)
    a = h.vault.approvers[0]
    token = deny("sha256:" + other_id, directory=h.directory(), approver=a.id, key=a.sig,
                 reason="no", now=int(h.relay.now()))  # fmt: skip
    before = await _rows(h.relay)
    got = await h.call("POST", f"/consent-requests/{request_id}/deny", signer=a,
                       body={"deny": token})  # fmt: skip
    assert got.status_code == 400, got.text
    assert await _rows(h.relay) == before
    unknown = await _answer(h, "a" * 43, _consent(h, _ask(h, client)))
    assert unknown.status_code == 404


async def test_stream_announces_consent_requests(h: Harness) -> None:
    client = await h.add_client()
    a = h.vault.approvers[0]
    stream = SseStream(create_app(h.relay, listen=False),
                       h.build("GET", "/approvals/stream", signer=a))  # fmt: skip
    async with stream:
        await _asked(h, client)
        text = await stream.until("event: consent-requests")
    assert "consent-requests" in text


async def test_replay_table_holds_the_jti(h: Harness) -> None:
    client = await h.add_client()
    ask, _ = await _asked(h, client)
    async with h.relay.read() as conn:
        jtis = (await conn.execute(select(replay))).all()
    assert any(ask.statement.jti in repr(tuple(r)) for r in jtis)
    assert consent_details_hash(PLAN) != consent_details_hash({**PLAN, "replicas": 4})
