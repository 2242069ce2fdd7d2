"""The audit log through the API, on SQLite and PostgreSQL.

List with every filter and page through it; follow it live over SSE and
resume; export it as JSON Lines and CSV and read it back; verify the hash
chain, and see verification catch an event edited behind the relay's back.
Only approvers may look, and no token or secret ever shows up in what they see.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest
from login_support import Human as LoginHuman
from login_support import approve, poll, refresh, start_login
from relay_support import Approver, SseStream, Vault, error_of
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from test_relay_items import PASSWORD, Harness

from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.server.app import create_app
from sealbox.server.http import audit as audit_http
from sealbox.server.relay import Relay
from sealbox.server.services import audit as audit_service
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import audit
from sealbox.server.store.tables import audit_events

pytestmark = pytest.mark.anyio

FIELDS = ["seq", "at", "actor", "action", "severity", "client_id", "item_id", "source_ip",
          "detail", "prev_hash", "hash"]  # fmt: skip
T0 = 1_700_000_000
C1, C2 = ids.new_id(ids.CLIENT), ids.new_id(ids.CLIENT)
I1, I2 = ids.new_id(ids.ITEM), ids.new_id(ids.ITEM)
PG_TRIGGER = "audit_events_append_only"


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _head(relay: Relay, vault: str) -> int:
    async with relay.read() as conn:
        return await audit.head(conn, vault)


async def _append(relay: Relay, vault: str, **event: Any) -> int:
    async with relay.tx() as tx:
        return await audit.append(tx.conn, vault=vault, **event)


async def _seed(h: Harness) -> tuple[int, list[int]]:
    """Five events that differ in every filterable way; (the head before them, their seqs)."""
    base = await _head(h.relay, h.vault.id)
    a = h.vault.approvers[0].id
    events: list[dict[str, Any]] = [
        {"at": T0, "actor": C1, "action": "access.requested", "client_id": C1, "item_id": I1,
         "source_ip": "10.0.0.7", "detail": {"request": "r1", "items": [{"path": "app/prod/db"}]}},
        {"at": T0 + 10, "actor": a, "action": "access.release", "severity": "notice",
         "client_id": C1, "detail": {"request": "r1", "approvals": 1}},
        # "_" is a LIKE wildcard: a prefix filter "access_*" must not match this one.
        {"at": T0 + 20, "actor": a, "action": "accessXlog", "severity": "info"},
        {"at": T0 + 30, "actor": "anonymous", "action": "token.reuse_detected",
         "severity": "warning", "client_id": C2, "detail": {"family": "f1"}},
        {"at": T0 + 40, "actor": "relay", "action": "vault.setup_refused", "severity": "alert",
         "item_id": I2, "detail": {"note": 'quote " comma , newline \n ünïcode'}},
    ]  # fmt: skip
    seqs = [await _append(h.relay, h.vault.id, **event) for event in events]
    return base, seqs


async def _list(h: Harness, query: str = "", signer: Any = None) -> httpx.Response:
    return await h.call("GET", f"/audit{query}", signer=signer or h.vault.approvers[0])


async def _seqs(h: Harness, base: int, query: str) -> list[int]:
    response = await _list(h, f"?after_seq={base}&{query}")
    assert response.status_code == 200, response.text
    return [e["seq"] for e in response.json()["events"]]


async def test_each_filter(h: Harness) -> None:
    base, (s1, s2, s3, s4, s5) = await _seed(h)
    assert await _seqs(h, base, "") == [s1, s2, s3, s4, s5]
    # action: exact, or a prefix ending in *; no other globbing.
    assert await _seqs(h, base, "action=access.release") == [s2]
    assert await _seqs(h, base, "action=access.*") == [s1, s2]
    assert await _seqs(h, base, "action=access*") == [s1, s2, s3]
    assert await _seqs(h, base, "action=access_*") == []
    assert await _seqs(h, base, "action=access") == []
    assert await _seqs(h, base, "action=*") == [s1, s2, s3, s4, s5]
    # actor, client, item.
    assert await _seqs(h, base, f"actor={h.vault.approvers[0].id}") == [s2, s3]
    assert await _seqs(h, base, "actor=anonymous") == [s4]
    assert await _seqs(h, base, f"client_id={C1}") == [s1, s2]
    assert await _seqs(h, base, f"client_id={C2}") == [s4]
    assert await _seqs(h, base, f"item_id={I2}") == [s5]
    # severity is a minimum.
    assert await _seqs(h, base, "severity=info") == [s1, s2, s3, s4, s5]
    assert await _seqs(h, base, "severity=notice") == [s2, s4, s5]
    assert await _seqs(h, base, "severity=warning") == [s4, s5]
    assert await _seqs(h, base, "severity=alert") == [s5]
    # since is inclusive, until exclusive.
    assert await _seqs(h, base, f"since={T0 + 10}") == [s2, s3, s4, s5]
    assert await _seqs(h, base, f"until={T0 + 10}") == [s1]
    assert await _seqs(h, base, f"since={T0 + 10}&until={T0 + 30}") == [s2, s3]
    assert await _seqs(h, base, f"since={T0 + 10}&until={T0 + 10}") == []
    # Filters combine.
    assert await _seqs(h, base, f"client_id={C1}&severity=notice") == [s2]
    assert await _seqs(h, base, f"action=access.*&until={T0 + 5}") == [s1]

    # Every field of an event, exactly as it was appended.
    events = (await _list(h, f"?after_seq={base}")).json()["events"]
    assert [list(e) for e in events] == [FIELDS] * 5
    first = events[0]
    assert first == {
        "seq": s1, "at": T0, "actor": C1, "action": "access.requested", "severity": "info",
        "client_id": C1, "item_id": I1, "source_ip": "10.0.0.7",
        "detail": {"request": "r1", "items": [{"path": "app/prod/db"}]},
        "prev_hash": first["prev_hash"], "hash": first["hash"],
    }  # fmt: skip
    assert first["hash"] == audit.event_hash(first["prev_hash"], first)
    assert events[1]["prev_hash"] == first["hash"]
    assert events[2]["client_id"] is None
    assert events[2]["detail"] == {}


async def test_paging_with_after_seq(h: Harness) -> None:
    await _seed(h)
    head = await _head(h.relay, h.vault.id)
    everything = (await _list(h)).json()
    assert [e["seq"] for e in everything["events"]] == list(range(1, head + 1))
    assert everything["next_after_seq"] == head

    seen: list[int] = []
    after = 0
    while True:
        body = (await _list(h, f"?after_seq={after}&limit=2")).json()
        seen += [e["seq"] for e in body["events"]]
        assert len(body["events"]) <= 2
        after = body["next_after_seq"]
        if len(body["events"]) < 2:
            break
    assert seen == list(range(1, head + 1))
    assert after == head
    # At the end: nothing, and the same place to continue from; then what is new.
    assert (await _list(h, f"?after_seq={head}")).json() == {"events": [], "next_after_seq": head}
    new = await _append(h.relay, h.vault.id, at=T0, actor="relay", action="test.later")
    body = (await _list(h, f"?after_seq={head}")).json()
    assert [e["seq"] for e in body["events"]] == [new]
    assert body["next_after_seq"] == new

    # With a filter, the next page starts past every event looked at, matching or not.
    body = (await _list(h, "?action=vault.set_up")).json()
    assert len(body["events"]) == 1
    assert body["next_after_seq"] == new
    # A full page continues right after its last event.
    body = (await _list(h, "?severity=notice&limit=1")).json()
    assert body["next_after_seq"] == body["events"][0]["seq"] < new
    # Beyond the head: nothing yet, and no going back.
    assert (await _list(h, "?after_seq=1000")).json() == {"events": [], "next_after_seq": 1000}


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("?limit=0", 422, "invalid_request"),
        ("?limit=1001", 422, "invalid_request"),
        ("?limit=ten", 422, "invalid_request"),
        ("?after_seq=-1", 422, "invalid_request"),
        (f"?after_seq={2**63}", 422, "invalid_request"),
        ("?severity=fatal", 422, "invalid_request"),
        ("?severity=", 422, "invalid_request"),
        ("?action=", 422, "invalid_request"),
        ("?action=acc*ess", 422, "invalid_request"),
        ("?action=access.**", 422, "invalid_request"),
        ("?action=access%25", 422, "invalid_request"),
        ("?actor=a%20b", 422, "invalid_request"),
        ("?client_id=" + "c" * 41, 422, "invalid_request"),
        ("?item_id=itm_%00", 422, "invalid_request"),
        ("?since=yesterday", 422, "invalid_request"),
        ("?since=20&until=10", 422, "invalid_request"),
        ("?actions=access.*", 422, "invalid_request"),
        ("?format=csv", 422, "invalid_request"),
        ("?action=a&action=b", 400, "repeated_parameter"),
    ],
)
async def test_bad_parameters_are_refused(h: Harness, query: str, status: int, error: str) -> None:
    response = await _list(h, query)
    assert (response.status_code, error_of(response)["error"]) == (status, error)


async def test_bad_parameters_of_the_other_endpoints(h: Harness) -> None:
    a = h.vault.approvers[0]
    for path in ("/audit/export?format=xml", "/audit/export?limit=5", "/audit/stream?limit=5",
                 "/audit/stream?severity=loud", "/audit/verify?after_seq=1"):  # fmt: skip
        response = await h.call("GET", path, signer=a)
        assert (response.status_code, error_of(response)["error"]) == (422, "invalid_request")
    for bad in ("abc", "-1", "1.5", "9" * 20):
        request = h.build("GET", "/audit/stream", signer=a)
        request.headers["last-event-id"] = bad
        response = await h.http.send(request)
        assert (response.status_code, error_of(response)["error"]) == (400, "invalid_last_event_id")


async def test_only_approvers_may_read_the_log(h: Harness) -> None:
    client = await h.add_client()
    for path in ("/audit", "/audit/stream", "/audit/export", "/audit/export?format=csv",
                 "/audit/verify"):  # fmt: skip
        response = await h.call("GET", path, signer=client)
        assert (response.status_code, error_of(response)["error"]) == (403, "approver_required")
        anonymous = await h.http.get(h.base + path)
        assert anonymous.status_code == 401, path
        error_of(anonymous)
        # Bad parameters do not tell the anonymous anything either.
        assert (await h.http.get(h.base + path + "?limit=0")).status_code == 401
    stranger = Approver("stranger")
    response = await h.call("GET", "/audit", signer=stranger)
    assert response.status_code == 401


class _Stream(SseStream):
    """The audit stream of ``h``'s relay, with its events parsed."""

    def __init__(
        self, h: Harness, path: str, signer: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        request = h.build("GET", path, signer=signer)
        request.headers.update(headers or {})
        super().__init__(create_app(h.relay, listen=False), request)

    def events(self) -> list[tuple[int, dict[str, Any]]]:
        """(id, data) of every complete ``audit`` event read so far."""
        out = []
        for block in self.buffer.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if lines.get("event") == "audit":
                out.append((int(lines["id"]), json.loads(lines["data"])))
        return out


async def test_stream_sends_past_events_then_new_ones(h: Harness) -> None:
    a = h.vault.approvers[0]
    base, seqs = await _seed(h)
    async with _Stream(h, f"/audit/stream?after_seq={base}", a) as stream:
        await stream.until(f"id: {seqs[-1]}\n")
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.buffer.startswith(": sealbox audit\n\n")
        assert [seq for seq, _ in stream.events()] == seqs
        assert all(seq == data["seq"] and list(data) == FIELDS for seq, data in stream.events())
        # A new event, written through the API while the stream is open.
        await h.store_direct(a, "app/prod/db", PASSWORD)
        await stream.until('"action":"item.stored"')  # each event arrives whole
        new_seq, new = stream.events()[-1]
        assert new_seq == seqs[-1] + 1 == new["seq"]
        assert new["actor"] == a.id
        # And another, written directly (as a sweeper job would).
        later = await _append(h.relay, h.vault.id, at=T0, actor="relay", action="test.later")
        await stream.until(f"id: {later}\n")
    assert [seq for seq, _ in stream.events()] == [*seqs, new_seq, later]


async def test_stream_pages_through_a_long_backlog(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_service, "PAGE", 2)
    await _seed(h)
    head = await _head(h.relay, h.vault.id)
    async with _Stream(h, "/audit/stream", h.vault.approvers[0]) as stream:
        await stream.until(f"id: {head}\n")
    assert [seq for seq, _ in stream.events()] == list(range(1, head + 1))


async def test_stream_resumes_from_last_event_id(h: Harness) -> None:
    a = h.vault.approvers[0]
    _, seqs = await _seed(h)
    resume = {"last-event-id": str(seqs[1])}
    # The header, when a reconnecting client sends it, wins over the URL's after_seq.
    async with _Stream(h, "/audit/stream?after_seq=0", a, resume) as stream:
        await stream.until(f"id: {seqs[-1]}\n")
        assert [seq for seq, _ in stream.events()] == seqs[2:]
        later = await _append(h.relay, h.vault.id, at=T0, actor="relay", action="test.later")
        await stream.until(f"id: {later}\n")
    assert [seq for seq, _ in stream.events()] == [*seqs[2:], later]


async def test_stream_filters(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_http, "KEEPALIVE_SECONDS", 0.05)
    a = h.vault.approvers[0]
    _, seqs = await _seed(h)
    async with _Stream(h, "/audit/stream?severity=warning", a) as stream:
        await stream.until(f"id: {seqs[-1]}\n")
        # Idle, it keeps the connection open with comments.
        await stream.until(": keepalive\n\n")
        await _append(h.relay, h.vault.id, at=T0, actor="relay", action="test.quiet")
        loud = await _append(h.relay, h.vault.id, at=T0, actor="relay", action="test.loud",
                             severity="alert")  # fmt: skip
        await stream.until(f"id: {loud}\n")
    assert [seq for seq, _ in stream.events()] == [seqs[3], seqs[4], loud]


async def test_stream_ends_when_the_approver_is_removed(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver("phone")
    async with _Stream(h, "/audit/stream", b) as stream:
        await stream.until('"action":"directory.add"')
        link = dirs.append_link(h.directory(), "remove", b.record, signer=a.id, key=a.sig,
                                now=h.relay.now())  # fmt: skip
        response = await h.http.post(h.base + "/directory", json={"link": link})
        assert response.status_code == 201, response.text
        await stream.until("event: revoked\n")
        assert stream.task is not None
        await asyncio.wait_for(stream.task, timeout=5)  # the response has ended
    assert (await _list(h, signer=b)).status_code == 401


async def test_stream_ends_when_the_relay_stops(h: Harness) -> None:
    a = h.vault.approvers[0]
    base, seqs = await _seed(h)
    async with _Stream(h, f"/audit/stream?after_seq={base}", a) as stream:
        await stream.until(f"id: {seqs[-1]}\n")
        assert stream.task is not None
        assert not stream.task.done()
        # What the server does first when asked to stop: without it, the stream
        # would hold the relay open until the client went away.
        h.relay.hub.close()
        await asyncio.wait_for(stream.task, timeout=2)  # the response has ended
    assert "revoked" not in stream.buffer
    assert [seq for seq, _ in stream.events()] == seqs


async def _export(h: Harness, query: str) -> httpx.Response:
    response = await h.call("GET", f"/audit/export{query}", signer=h.vault.approvers[0])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return response


def _from_csv(text_: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text_, newline=""))
    header = next(reader)
    assert header == FIELDS
    out = []
    for values in reader:
        row: dict[str, Any] = dict(zip(header, values, strict=True))
        for name in ("seq", "at"):
            row[name] = int(row[name])
        for name in ("client_id", "item_id", "source_ip"):
            row[name] = row[name] or None
        row["detail"] = json.loads(row["detail"])
        out.append(row)
    return out


async def test_export_jsonl_and_csv(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_service, "PAGE", 2)  # several pages
    await _seed(h)
    listed = (await _list(h, "?limit=1000")).json()["events"]
    assert len(listed) > 5

    jsonl = await _export(h, "")
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert jsonl.text.endswith("\n")
    assert [json.loads(line) for line in jsonl.text.splitlines()] == listed

    as_csv = await _export(h, "?format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = _from_csv(as_csv.text)
    assert rows == listed
    # detail is canonical JSON: every hash can be recomputed from the file alone.
    prev = audit.GENESIS
    for row in rows:
        assert row["prev_hash"] == prev
        assert audit.event_hash(prev, row) == row["hash"]
        prev = row["hash"]

    # Filters apply to exports too; no match is a header row only.
    subset = await _export(h, "?format=jsonl&action=access.*&after_seq=1")
    assert [json.loads(line)["action"] for line in subset.text.splitlines()] == [
        "access.requested", "access.release",
    ]  # fmt: skip
    assert (await _export(h, "?format=csv&action=none")).text == ",".join(FIELDS) + "\r\n"
    assert (await _export(h, "?action=none")).text == ""


async def test_verify(h: Harness) -> None:
    await _seed(h)
    response = await h.call("GET", "/audit/verify", signer=h.vault.approvers[0])
    assert response.status_code == 200, response.text
    last = (await _list(h, "?limit=1000")).json()["events"][-1]
    assert response.json() == {"events": last["seq"], "head": {"seq": last["seq"],
                                                               "hash": last["hash"]}}  # fmt: skip


async def _tamper(relay: Relay, seq: int, **values: Any) -> None:
    """Edit an event as someone with database access would: past the append-only trigger."""
    async with relay.engine.begin() as conn:
        if relay.is_postgres:
            # Within this transaction only: the schema is shared by the session's tests.
            await conn.execute(text(f"ALTER TABLE audit_events DISABLE TRIGGER {PG_TRIGGER}"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        await conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(**values))
        if relay.is_postgres:
            await conn.execute(text(f"ALTER TABLE audit_events ENABLE TRIGGER {PG_TRIGGER}"))


@pytest.mark.parametrize("rehash", [False, True])
async def test_verify_detects_an_edited_event(h: Harness, rehash: bool) -> None:
    a = h.vault.approvers[0]
    _, seqs = await _seed(h)
    target = seqs[1]
    async with h.relay.read() as conn:
        row = (
            await conn.execute(select(audit_events).where(audit_events.c.seq == target))
        ).mappings().one()  # fmt: skip
    forged: dict[str, Any] = {"actor": "someone-else", "detail": {"request": "r1", "approvals": 9}}
    if rehash:
        # Even with the edited event's own hash made to match, the next one's link breaks.
        forged["hash"] = audit.event_hash(row["prev_hash"], {**row, **forged})
    await _tamper(h.relay, target, **forged)

    response = await h.call("GET", "/audit/verify", signer=a)
    broken = target + 1 if rehash else target
    assert (response.status_code, error_of(response)["error"]) == (409, "audit_chain_broken")
    assert f"at event {broken}" in error_of(response)["message"]
    # The append-only trigger is back in force on PostgreSQL's shared schema.
    if h.relay.is_postgres:
        with pytest.raises(DBAPIError, match="append-only"):
            async with h.relay.engine.begin() as conn:
                await conn.execute(update(audit_events).values(actor="again"))


async def test_no_secret_in_any_audit_output(client: httpx.AsyncClient, relay: Relay) -> None:
    status = await ensure_vault(relay)
    assert status.setup_token is not None
    first = Approver()
    link0 = dirs.genesis_link(status.vault, first.record, first.sig, now=relay.now())
    url = f"/v1/vaults/{status.vault}/setup"
    wrong = await client.post(url, json={"setup_token": "sbx_st_wrong-guess", "link": link0})
    assert wrong.status_code == 403
    setup = await client.post(url, json={"setup_token": status.setup_token, "link": link0})
    assert setup.status_code == 201, setup.text
    vault = Vault(status.vault, first, link0)
    h = Harness(client, relay, vault)

    # A device login, a refresh, a replayed refresh token; a stored secret.
    human = LoginHuman()
    started = await start_login(client, vault, human)
    assert (await approve(client, relay, vault, started["user_code"], human)).status_code == 200
    tokens = (await poll(client, started["device_code"], human)).json()
    refreshed = (await refresh(client, tokens["refresh_token"])).json()
    assert (await refresh(client, tokens["refresh_token"])).status_code == 400  # reuse
    await h.store_direct(first, "app/prod/db", PASSWORD)
    secrets: Sequence[str] = (
        status.setup_token, "sbx_st_wrong-guess", started["device_code"],
        tokens["access_token"], tokens["refresh_token"], refreshed["access_token"],
        refreshed["refresh_token"], PASSWORD["password"].decode(), "correct horse",
    )  # fmt: skip

    outputs = [
        (await _list(h, "?limit=1000")).text,
        (await _export(h, "")).text,
        (await _export(h, "?format=csv")).text,
    ]
    head = await _head(relay, vault.id)
    async with _Stream(h, "/audit/stream", first) as stream:
        outputs.append(await stream.until(f"id: {head}\n"))
    actions = {e["action"] for e in (await _list(h, "?limit=1000")).json()["events"]}
    assert {"vault.setup_refused", "device.approved", "token.issued", "token.refreshed",
            "token.reuse_detected", "item.stored"} <= actions  # fmt: skip
    for output in outputs:
        for secret in secrets:
            assert secret not in output


async def test_a_client_reads_its_own_latest_events_and_nobody_elses(h: Harness) -> None:
    me, other = await h.add_client(), await h.add_client()
    a = h.vault.approvers[0].id
    mine_before = [
        {"at": T0, "actor": me.id, "action": "access.requested", "client_id": me.id,
         "item_id": I1, "source_ip": "10.0.0.7", "detail": {"request": "r1"}},
        {"at": T0 + 1, "actor": a, "action": "access.release", "severity": "notice",
         "client_id": me.id, "source_ip": "192.0.2.9", "detail": {"request": "r1"}},
    ]  # fmt: skip
    for event in mine_before:
        await _append(h.relay, h.vault.id, **event)
    await _append(h.relay, h.vault.id, at=T0 + 2, actor=other.id, action="access.requested",
                  client_id=other.id, source_ip="10.0.0.8", detail={"request": "r2"})  # fmt: skip
    await _append(h.relay, h.vault.id, at=T0 + 3, actor=a, action="accessXlog")
    head = await _head(h.relay, h.vault.id)

    response = await h.call("GET", "/audit/mine", signer=me)
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert {e["client_id"] for e in events} == {me.id}
    assert [e["action"] for e in events][-2:] == ["access.requested", "access.release"]
    own, released = events[-2:]
    assert own["source_ip"] == "10.0.0.7"  # the client's own address
    assert released["actor"] == a
    assert released["source_ip"] is None
    assert set(own) == {"seq", "at", "actor", "action", "severity", "client_id", "item_id",
                        "source_ip", "detail"}  # fmt: skip

    # The latest N, oldest of them first.
    one = await h.call("GET", "/audit/mine?limit=1", signer=me)
    assert [e["action"] for e in one.json()["events"]] == ["access.release"]
    theirs = await h.call("GET", "/audit/mine", signer=other)
    assert {e["client_id"] for e in theirs.json()["events"]} == {other.id}
    assert await _head(h.relay, h.vault.id) == head  # looking leaves no trace

    # Only clients; bad or unknown parameters are refused, not ignored.
    approver = await h.call("GET", "/audit/mine", signer=h.vault.approvers[0])
    assert (approver.status_code, error_of(approver)["error"]) == (403, "client_required")
    for query in ("?limit=0", "?limit=201", "?client_id=" + other.id, "?limit=x"):
        bad = await h.call("GET", "/audit/mine" + query, signer=me)
        assert (bad.status_code, error_of(bad)["error"]) == (422, "invalid_request"), query
    assert (await h.http.get(h.base + "/audit/mine")).status_code == 401
