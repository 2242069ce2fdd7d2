"""Alert targets and their outbox, through the API and the delivery loop, on SQLite and PostgreSQL.

The outbox row of an event is written in the event's transaction (a rolled
back event leaves none); targets select by action pattern and severity; a
target is claimed by one relay process at a time and its deliveries leave in
order; ten failures in a row disable it and tell the other targets, never it.
Sending is replaced by a recording sender here (the real one, HTTP and SMTP,
runs in tests/e2e/test_e2e_alerts.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from login_support import audit_rows, login, signed, snapshot
from relay_support import Vault, error_of
from sqlalchemy import select

from sealbox.protocol.alerts import verify
from sealbox.server.alert_delivery import deliver_once, webhook_body
from sealbox.server.atrest import MasterKey
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.alerts import Outcome, secret_of
from sealbox.server.store import alerts as alert_store
from sealbox.server.store import audit
from sealbox.server.store import engine as db
from sealbox.server.store.alerts import Delivery, Target
from sealbox.server.store.tables import alert_outbox, alert_targets

pytestmark = pytest.mark.anyio

URL = "https://hooks.example.test/sealbox"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The relay's own loop stays asleep: each test runs delivery rounds itself.
    return dataclasses.replace(settings, alert_poll_seconds=3600, alert_retry_base=0.001,
                               alert_retry_cap=0.002)  # fmt: skip


async def call(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, method: str, path: str = "", **kw: Any
) -> httpx.Response:
    return await signed(client, relay, method, f"/v1/vaults/{vault.id}/alerts{path}",
                        by=vault.approvers[0], **kw)  # fmt: skip


async def add_webhook(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, **selection: Any
) -> dict[str, Any]:
    response = await call(client, relay, vault, "POST", "/webhooks",
                          json={"url": URL, **selection})  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def add_email(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, **selection: Any
) -> dict[str, Any]:
    response = await call(client, relay, vault, "POST", "/emails",
                          json={"addresses": ["ops@example.test"], **selection})  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def append(relay: Relay, vault: Vault, action: str, severity: str, **detail: Any) -> int:
    async with relay.tx() as tx:
        return await audit.append(tx.conn, vault=vault.id, at=relay.now(), actor="relay",
                                  action=action, severity=severity, detail=detail)  # fmt: skip


async def outbox(relay: Relay) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        rows = await conn.execute(select(alert_outbox).order_by(alert_outbox.c.id))
        return [dict(r) for r in rows.mappings()]


class Recorder:
    """A sender that records what it was given and answers from a script (default: accept)."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[Target, Delivery]] = []

    async def __call__(self, relay: Relay, target: Target, delivery: Delivery) -> Outcome:
        self.sent.append((target, delivery))
        ok = self.answers.pop(0) if self.answers else True
        return Outcome(True) if ok else Outcome(False, "HTTP 503")


def later(relay: Relay, seconds: float) -> None:
    relay.clock.now += seconds  # type: ignore[attr-defined]


# --- managing targets ----------------------------------------------------------------------------


async def test_a_webhook_is_added_with_its_secret_shown_once_and_kept_sealed(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    added = await add_webhook(client, relay, vault, events=["canary.*"], min_severity="alert")
    secret = added["secret"]
    assert secret.startswith("whsec_")
    assert added["id"].startswith("alt_")
    assert (added["events"], added["min_severity"], added["enabled"]) == (["canary.*"], "alert",
                                                                          True)  # fmt: skip
    listed = (await call(client, relay, vault, "GET")).json()["targets"]
    assert [t["id"] for t in listed] == [added["id"]]
    assert "secret" not in listed[0]
    assert secret not in str(listed)
    async with relay.read() as conn:
        row = (await conn.execute(select(alert_targets))).mappings().one()
        target = await alert_store.get(conn, vault.id, added["id"])
    assert secret.encode() not in row["secret_sealed"]
    assert target is not None
    assert await secret_of(relay, target) == secret
    events = [e for e in await audit_rows(relay, vault.id) if e["action"].startswith("alert.")]
    assert [(e["action"], e["severity"]) for e in events] == [("alert.target_added", "notice")]
    assert events[0]["detail"] == {"target": added["id"], "kind": "webhook",
                                   "events": ["canary.*"], "min_severity": "alert",
                                   "host": "hooks.example.test"}  # fmt: skip
    assert secret not in str(await audit_rows(relay, vault.id))


async def test_defaults_email_targets_removal_and_enable_are_audited(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    plain = await add_webhook(client, relay, vault)
    assert (plain["events"], plain["min_severity"]) == ([], "alert")
    named = await add_email(client, relay, vault, events=["item.rotation_due"])
    assert (named["events"], named["min_severity"]) == (["item.rotation_due"], "info")
    assert named["addresses"] == ["ops@example.test"]
    again = await call(client, relay, vault, "POST", f"/{named['id']}/enable")
    assert again.json()["changed"] is False
    removed = await call(client, relay, vault, "DELETE", f"/{plain['id']}")
    assert removed.status_code == 200, removed.text
    listed = (await call(client, relay, vault, "GET")).json()["targets"]
    assert [t["id"] for t in listed] == [named["id"]]
    actions = [(e["action"], e["severity"]) for e in await audit_rows(relay, vault.id)
               if e["action"].startswith("alert.")]  # fmt: skip
    assert actions == [("alert.target_added", "notice"), ("alert.target_added", "notice"),
                       ("alert.target_removed", "warning")]  # fmt: skip


async def test_bad_input_and_callers_are_refused_and_change_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault)
    person, granted = await login(client, relay, vault)
    before = await snapshot(relay)
    base = f"/v1/vaults/{vault.id}/alerts"
    missing = "alt_" + "a" * 26
    cases = [
        (await call(client, relay, vault, "POST", "/webhooks", json={"url": "ftp://x.test/"}),
         400, "invalid_webhook_url"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": "https://user:pw@x.test/"}), 400, "invalid_webhook_url"),
        (await call(client, relay, vault, "POST", "/webhooks", json={"url": "not a url"}),
         400, "invalid_webhook_url"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": "http://169.254.169.254/latest/meta-data/"}),
         400, "webhook_address_refused"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": "http://0x7f000001:5432/"}), 400, "webhook_address_refused"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": "http://exa\u0301mple\u200b.com/"}), 400,
         "invalid_webhook_url"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": URL, "events": ["Canary"]}), 400, "invalid_alert_selection"),
        (await call(client, relay, vault, "POST", "/webhooks",
                    json={"url": URL, "min_severity": "loud"}), 400, "invalid_alert_selection"),
        (await call(client, relay, vault, "POST", "/webhooks", json={"url": URL, "x": 1}),
         422, "invalid_request"),
        (await call(client, relay, vault, "POST", "/emails",
                    json={"addresses": ["ops@example.test\r\nBcc: evil@x.test"]}),
         400, "invalid_email_address"),
        (await call(client, relay, vault, "POST", "/emails", json={"addresses": ["nobody"]}),
         400, "invalid_email_address"),
        (await call(client, relay, vault, "DELETE", f"/{missing}"), 404, "no_such_alert_target"),
        (await call(client, relay, vault, "POST", "/nope/enable"), 422, "invalid_request"),
        (await call(client, relay, vault, "POST", f"/{target['id']}/enable", json=None), 200,
         None),
        (await signed(client, relay, "GET", base, by=person), 403, "approver_required"),
        (await client.post(f"{base}/webhooks", json={"url": URL},
                           headers={"authorization": f"Bearer {granted['access_token']}"}),
         403, "approver_required"),
        (await client.get(base), 401, "signature_required"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert response.status_code == status, response.text
        if error is not None:
            assert error_of(response)["error"] == error
    after = await snapshot(relay)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }


async def test_a_vault_has_at_most_twenty_targets(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    for _ in range(20):
        await add_email(client, relay, vault)
    refused = await call(client, relay, vault, "POST", "/webhooks", json={"url": URL})
    assert (refused.status_code, error_of(refused)["error"]) == (429, "too_many_alert_targets")
    assert len((await call(client, relay, vault, "GET")).json()["targets"]) == 20


# --- the outbox --------------------------------------------------------------------------------


async def test_the_outbox_row_is_written_in_the_events_transaction(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault)
    head = await audit_rows(relay, vault.id)

    async def append_then_fail() -> None:
        async with relay.tx() as tx:
            await audit.append(tx.conn, vault=vault.id, at=relay.now(), actor="relay",
                               action="canary.read", severity="critical")  # fmt: skip
            # Queued inside the transaction...
            assert await alert_store.pending(tx.conn, vault.id, target["id"]) == 1
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        await append_then_fail()
    # ...and gone with it.
    assert await outbox(relay) == []
    assert await audit_rows(relay, vault.id) == head
    seq = await append(relay, vault, "canary.read", "critical", item="itm_x")
    [row] = await outbox(relay)
    assert (row["target_id"], row["seq"], row["attempts"]) == (target["id"], seq, 0)
    event = row["event"]
    stored = (await audit_rows(relay, vault.id))[-1]
    assert event == {
        "vault": vault.id, "seq": seq, "at": stored["at"], "action": "canary.read",
        "severity": "critical", "actor": "relay", "client_id": None, "item_id": None,
        "detail": {"item": "itm_x"}, "hash": stored["hash"],
    }  # fmt: skip


async def test_targets_select_by_action_pattern_and_severity(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    default = await add_webhook(client, relay, vault)
    canary = await add_webhook(client, relay, vault, events=["canary.*"])
    storms = await add_email(client, relay, vault, events=["requests.storm", "item.rotation_due"],
                             min_severity="critical")  # fmt: skip
    everything = await add_email(client, relay, vault, events=["*"], min_severity="info")
    start = len(await outbox(relay))  # the targets' own "added" events, for `everything`
    await append(relay, vault, "canary.read", "critical")
    await append(relay, vault, "requests.storm", "alert")
    await append(relay, vault, "item.rotation_due", "alert")
    await append(relay, vault, "item.stored", "info")
    await append(relay, vault, "canary.created", "notice")
    got = [(r["event"]["action"], r["target_id"]) for r in (await outbox(relay))[start:]]
    names = {default["id"]: "default", canary["id"]: "canary", storms["id"]: "storms",
             everything["id"]: "everything"}  # fmt: skip
    assert sorted((a, names[t]) for a, t in got) == sorted([
        ("canary.read", "default"), ("canary.read", "canary"), ("canary.read", "everything"),
        ("requests.storm", "default"), ("requests.storm", "everything"),
        ("item.rotation_due", "default"), ("item.rotation_due", "everything"),
        ("item.stored", "everything"),
        ("canary.created", "canary"), ("canary.created", "everything"),
    ])  # fmt: skip


async def test_a_disabled_target_gets_nothing_new_and_another_vaults_events_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault, events=["*"], min_severity="info")
    async with relay.tx() as tx:
        await alert_store.failed(tx.conn, vault=vault.id, target=target["id"], row=0, error="x",
                                 failures=10, retry_at_ms=0, disable_at=relay.now())  # fmt: skip
    start = await outbox(relay)  # its own "added" event, queued while it was enabled
    assert [r["event"]["action"] for r in start] == ["alert.target_added"]
    await append(relay, vault, "canary.read", "critical")
    async with relay.tx() as tx:
        await audit.append(tx.conn, vault="vlt_" + "b" * 26, at=relay.now(), actor="relay",
                           action="canary.read", severity="critical")  # fmt: skip
    assert await outbox(relay) == start


# --- delivering ----------------------------------------------------------------------------------


async def test_deliveries_are_sent_in_order_retried_and_removed_once_accepted(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault, events=["canary.*"])
    for n in range(3):
        await append(relay, vault, f"canary.n{n}", "alert")
    flaky = Recorder(False, False)
    assert await deliver_once(relay, owner="a", sender=flaky) == 0  # the first failed
    async with relay.read() as conn:
        state = await alert_store.get(conn, vault.id, target["id"])
    assert state is not None
    assert (state.failures, state.pending, state.last_error) == (1, 3, "HTTP 503")
    later(relay, 1)
    assert await deliver_once(relay, owner="a", sender=flaky) == 0  # and again
    later(relay, 1)
    assert await deliver_once(relay, owner="a", sender=flaky) == 3
    assert [d.event["action"] for _, d in flaky.sent] == [
        "canary.n0", "canary.n0", "canary.n0", "canary.n1", "canary.n2",
    ]  # fmt: skip
    assert await outbox(relay) == []
    async with relay.read() as conn:
        state = await alert_store.get(conn, vault.id, target["id"])
    assert state is not None
    assert (state.failures, state.pending, state.last_error, state.enabled) == (0, 0, None, True)


async def test_a_failed_target_waits_out_its_backoff(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    relay.settings = dataclasses.replace(relay.settings, alert_retry_base=30.0,
                                         alert_retry_cap=60.0)  # fmt: skip
    await add_webhook(client, relay, vault, events=["canary.*"])
    await append(relay, vault, "canary.read", "critical")
    sender = Recorder(False, False)
    # Full jitter in [0, 30 s) after the first failure: a draw of 0.5 waits 15 s.
    assert await deliver_once(relay, owner="a", sender=sender, jitter=lambda: 0.5) == 0
    later(relay, 14.9)
    await deliver_once(relay, owner="a", sender=sender, jitter=lambda: 0.5)
    assert len(sender.sent) == 1
    later(relay, 0.2)
    await deliver_once(relay, owner="a", sender=sender, jitter=lambda: 0.5)
    assert len(sender.sent) == 2
    # The second failure in a row: [0, 60 s), 30 s at 0.5.
    later(relay, 29.9)
    await deliver_once(relay, owner="a", sender=sender, jitter=lambda: 0.5)
    assert len(sender.sent) == 2
    later(relay, 0.2)
    assert await deliver_once(relay, owner="a", sender=sender, jitter=lambda: 0.5) == 1
    assert await outbox(relay) == []


async def test_ten_failures_in_a_row_disable_a_target_and_tell_the_others_only(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    broken = await add_webhook(client, relay, vault, events=["*"], min_severity="info")
    mail = await add_email(client, relay, vault)  # severity alert and up
    await append(relay, vault, "canary.read", "critical")
    failing = Recorder(*([False] * 10))

    async def sender(relay: Relay, target: Target, delivery: Delivery) -> Outcome:
        if target.id == broken["id"]:
            return await failing(relay, target, delivery)
        return Outcome(True)

    mailed: list[Delivery] = []

    async def recording(relay: Relay, target: Target, delivery: Delivery) -> Outcome:
        if target.id == mail["id"]:
            mailed.append(delivery)
        return await sender(relay, target, delivery)

    for _ in range(10):
        await deliver_once(relay, owner="a", sender=recording)
        later(relay, 1)
    assert len(failing.sent) == 10
    async with relay.read() as conn:
        state = await alert_store.get(conn, vault.id, broken["id"])
    assert state is not None
    assert (state.enabled, state.failures) == (False, 10)
    assert state.disabled_at is not None
    disabled = [e for e in await audit_rows(relay, vault.id)
                if e["action"] == "alert.target_disabled"]  # fmt: skip
    assert len(disabled) == 1
    assert (disabled[0]["severity"], disabled[0]["actor"]) == ("alert", "relay")
    assert disabled[0]["detail"]["target"] == broken["id"]
    assert disabled[0]["detail"]["failures"] == 10
    # The email target heard of it; the broken webhook's queue did not grow.
    await deliver_once(relay, owner="a", sender=recording)
    assert [d.event["action"] for d in mailed] == ["canary.read", "alert.target_disabled"]
    rows = await outbox(relay)
    assert {r["target_id"] for r in rows} == {broken["id"]}
    assert "alert.target_disabled" not in [r["event"]["action"] for r in rows]
    assert len(failing.sent) == 10  # disabled: no more tries
    # Enabled again: its waiting deliveries go and its count starts over, but the one that
    # failed ten times is dropped as a dead letter (see the next test).
    enabled = await call(client, relay, vault, "POST", f"/{broken['id']}/enable")
    assert (enabled.json()["changed"], enabled.json()["failures"]) == (True, 0)
    await deliver_once(relay, owner="a", sender=recording)
    assert len(failing.sent) > 10
    poisoned = failing.sent[0][1].delivery_id
    assert [d.delivery_id for _, d in failing.sent[:10]] == [poisoned] * 10
    assert poisoned not in [d.delivery_id for _, d in failing.sent[10:]]
    assert [r for r in await outbox(relay) if r["target_id"] == broken["id"]] == []


async def test_enabling_a_target_drops_its_dead_letters_and_sends_the_rest(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    """A delivery that failed ten times would be sent first again and disable the target
    again, holding everything behind it: enabling drops it, audited with counts only."""
    broken = await add_webhook(client, relay, vault, events=["canary.*"])
    await append(relay, vault, "canary.poisoned", "critical")
    failing = Recorder(*([False] * 10))
    for _ in range(10):
        await deliver_once(relay, owner="a", sender=failing)
        later(relay, 1)
    await append(relay, vault, "canary.after", "critical")  # queued while disabled? no: skipped
    async with relay.tx() as tx:
        # One more waiting behind the poisoned one (queued directly: a disabled target gets
        # nothing new), tried less often than the cap.
        await alert_store.enqueue_one(tx.conn, vault.id, broken["id"],
                                      {"action": "canary.waiting", "severity": "critical"},
                                      relay.now())  # fmt: skip
    assert [r["event"]["action"] for r in await outbox(relay)] == [
        "canary.poisoned", "canary.waiting",
    ]  # fmt: skip
    assert [r["attempts"] for r in await outbox(relay)] == [10, 0]
    enabled = await call(client, relay, vault, "POST", f"/{broken['id']}/enable")
    assert enabled.status_code == 200, enabled.text
    assert [r["event"]["action"] for r in await outbox(relay)] == ["canary.waiting"]
    [dropped] = [e for e in await audit_rows(relay, vault.id)
                 if e["action"] == "alert.delivery_dropped"]  # fmt: skip
    assert (dropped["severity"], dropped["actor"]) == ("warning", "relay")
    assert dropped["detail"] == {"target": broken["id"], "kind": "webhook", "dropped": 1,
                                 "attempts_at_least": 10}  # fmt: skip
    [enabled_event] = [e for e in await audit_rows(relay, vault.id)
                       if e["action"] == "alert.target_enabled"]  # fmt: skip
    assert enabled_event["detail"]["pending"] == 1
    sender = Recorder()
    assert await deliver_once(relay, owner="a", sender=sender) == 1
    assert [d.event["action"] for _, d in sender.sent] == ["canary.waiting"]
    # Enabling an enabled target drops nothing.
    again = await call(client, relay, vault, "POST", f"/{broken['id']}/enable")
    assert again.json()["changed"] is False
    assert len([e for e in await audit_rows(relay, vault.id)
                if e["action"] == "alert.delivery_dropped"]) == 1  # fmt: skip


async def test_a_tarpit_receiver_holds_up_only_its_own_target(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    """The relay's loop drains each target on its own: a receiver trickling bytes (each
    within the read timeout) delays neither another target's deliveries nor later rounds."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from alert_tarpit import Tarpit
    from sealbox.server.alert_delivery import deliverer

    received: list[bytes] = []
    got = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            got.set()

        def log_message(self, *_: Any) -> None:
            pass

    fast = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=fast.serve_forever, daemon=True).start()
    tarpit = Tarpit(every=0.3)
    relay.settings = dataclasses.replace(relay.settings, alert_allow_networks=("127.0.0.0/8",),
                                         alert_timeout=20.0)  # fmt: skip
    task: asyncio.Task[None] | None = None
    try:
        for url, events in (
            (tarpit.url, ["slow.*"]),
            (f"http://127.0.0.1:{fast.server_address[1]}/hook", ["fast.*"]),
        ):
            added = await call(client, relay, vault, "POST", "/webhooks",
                               json={"url": url, "events": events})  # fmt: skip
            assert added.status_code == 201, added.text
        await append(relay, vault, "slow.event", "critical")
        task = asyncio.create_task(deliverer(relay, every=0.05))
        for _ in range(200):
            if tarpit.connections:
                break
            await asyncio.sleep(0.05)
        assert tarpit.connections == 1  # its send is under way, and will be for 20 s
        await append(relay, vault, "fast.event", "critical")
        assert await asyncio.to_thread(got.wait, 5)
        assert [json.loads(body)["action"] for body in received] == ["fast.event"]
        for _ in range(100):  # accepted, then recorded: removed from the outbox
            if len(await outbox(relay)) == 1:
                break
            await asyncio.sleep(0.05)
        assert [r["event"]["action"] for r in await outbox(relay)] == ["slow.event"]
        assert tarpit.connections == 1
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        tarpit.close()
        fast.shutdown()
        fast.server_close()


async def test_a_test_event_goes_to_its_target_only(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault)
    other = await add_webhook(client, relay, vault)
    queued = await call(client, relay, vault, "POST", f"/{target['id']}/test")
    assert queued.status_code == 202, queued.text
    sender = Recorder()
    await deliver_once(relay, owner="a", sender=sender)
    assert [(t.id, d.delivery_id, d.event["action"]) for t, d in sender.sent] == [
        (target["id"], queued.json()["delivery"], "alert.test")
    ]
    assert other["id"] not in [t.id for t, _ in sender.sent]


async def test_the_webhook_body_is_the_event_with_target_and_delivery(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    added = await add_webhook(client, relay, vault)
    await append(relay, vault, "canary.read", "critical")
    async with relay.read() as conn:
        target = await alert_store.get(conn, vault.id, added["id"])
        delivery = await alert_store.next_delivery(conn, vault.id, added["id"])
    assert target is not None
    assert delivery is not None
    body = webhook_body(target, delivery)
    import json

    parsed = json.loads(body)
    assert set(parsed) == {"vault", "seq", "at", "action", "severity", "actor", "client_id",
                           "item_id", "detail", "hash", "target", "delivery"}  # fmt: skip
    assert (parsed["target"], parsed["delivery"]) == (added["id"], delivery.delivery_id)
    from sealbox.protocol.alerts import signature_header

    header = signature_header(added["secret"], body, relay.now())
    assert verify(added["secret"], body, header, now=relay.now()) == relay.now()


# --- several relay processes ---------------------------------------------------------------------


@pytest.fixture
async def second(relay: Relay) -> AsyncIterator[Relay]:
    """Another relay process on the same database (its own engine and caches)."""
    settings = relay.settings
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    other = Relay(settings=settings, engine=engine, master_key=MasterKey(b"k" * 32),
                  clock=relay.clock)  # fmt: skip
    try:
        yield other
    finally:
        await engine.dispose()


async def test_a_target_is_claimed_by_one_process_until_its_lease_runs_out(
    client: httpx.AsyncClient, relay: Relay, second: Relay, vault: Vault
) -> None:
    targets = [await add_webhook(client, relay, vault, events=["canary.*"]) for _ in range(4)]
    await append(relay, vault, "canary.read", "critical")
    now_ms = int(relay.clock() * 1000)
    async with relay.tx() as tx:
        mine = await alert_store.claim(tx.conn, owner="a", now_ms=now_ms, lease_ms=60_000,
                                       limit=2)  # fmt: skip
    async with second.tx() as tx:
        theirs = await alert_store.claim(tx.conn, owner="b", now_ms=now_ms, lease_ms=60_000,
                                         limit=10)  # fmt: skip
    assert len(mine) == 2
    assert len(theirs) == 2
    assert set(mine).isdisjoint(theirs)
    assert set(mine) | set(theirs) == {(vault.id, t["id"]) for t in targets}
    async with second.tx() as tx:
        assert await alert_store.claim(tx.conn, owner="b", now_ms=now_ms + 59_999,
                                       lease_ms=60_000, limit=10) == []  # fmt: skip
        # A process that died holding a lease is replaced once it runs out.
        late = await alert_store.claim(tx.conn, owner="b", now_ms=now_ms + 60_001,
                                       lease_ms=60_000, limit=10)  # fmt: skip
    assert set(late) == set(mine) | set(theirs)
    async with relay.tx() as tx:
        await alert_store.release(tx.conn, owner="b")
    async with relay.tx() as tx:
        again = await alert_store.claim(tx.conn, owner="a", now_ms=now_ms, lease_ms=1, limit=10)
    assert len(again) == 4


async def test_two_processes_delivering_at_once_send_each_delivery_once_in_order(
    client: httpx.AsyncClient, relay: Relay, second: Relay, vault: Vault
) -> None:
    import asyncio

    for _ in range(3):
        await add_webhook(client, relay, vault, events=["canary.*"])
    for n in range(5):
        await append(relay, vault, f"canary.n{n}", "alert")
    one, two = Recorder(), Recorder()
    for _ in range(3):
        await asyncio.gather(deliver_once(relay, owner="a", sender=one),
                             deliver_once(second, owner="b", sender=two))  # fmt: skip
    sent = one.sent + two.sent
    assert len(sent) == 15
    assert len({d.delivery_id for _, d in sent}) == 15
    for recorder in (one, two):
        by_target: dict[str, list[str]] = {}
        for target, delivery in recorder.sent:
            by_target.setdefault(target.id, []).append(delivery.event["action"])
        for actions in by_target.values():
            assert actions == sorted(actions)
    assert await outbox(relay) == []


# --- the events others write for alerts ----------------------------------------------------------


async def test_a_prompt_storm_goes_out_to_a_target_with_the_default_selection(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    from test_relay_fatigue import PATH, asked, settle
    from test_relay_items import PASSWORD, Harness

    h = Harness(client, relay, vault)
    item, _ = await h.store_direct(vault.approvers[0], PATH, PASSWORD)
    target = await add_webhook(client, relay, vault)  # alert and up, any action
    settle(h, storm_prompts=2, prompts_per_minute=100)
    requester = await h.add_client()
    for _ in range(4):
        await asked(h, requester, item)
    sender = Recorder()
    await deliver_once(relay, owner="a", sender=sender)
    assert [(t.id, d.event["action"], d.event["client_id"], d.event["detail"])
            for t, d in sender.sent] == [
        (target["id"], "requests.storm", requester.id,
         {"prompts": 3, "window_seconds": 60, "threshold": 2, "kind": "access"}),
    ]  # fmt: skip


async def test_a_process_whose_lease_ran_out_stops_and_the_new_holder_goes_on(
    client: httpx.AsyncClient, relay: Relay, second: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault, events=["canary.*"])
    for n in range(3):
        await append(relay, vault, f"canary.n{n}", "alert")
    taken: list[list[tuple[str, str]]] = []

    async def slow(relay_: Relay, target_: Target, delivery: Delivery) -> Outcome:
        # This send outlasts the lease, and another process claims the target meanwhile.
        later(relay, relay.settings.alert_lease_seconds + 1)
        async with second.tx() as tx:
            taken.append(await alert_store.claim(tx.conn, owner="b", now_ms=int(relay.clock()
                                                 * 1000), lease_ms=60_000, limit=10))  # fmt: skip
        return Outcome(True)

    assert await deliver_once(relay, owner="a", sender=slow) == 1
    assert taken == [[(vault.id, target["id"])]]
    # "a" sent one and stopped; its release did not touch "b"'s lease.
    assert [r["event"]["action"] for r in await outbox(relay)] == ["canary.n1", "canary.n2"]
    async with relay.read() as conn:
        row = (await conn.execute(select(alert_targets))).mappings().one()
    assert row["lease_owner"] == "b"


async def test_a_disabled_target_cannot_be_tested(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault)
    async with relay.tx() as tx:
        await alert_store.failed(tx.conn, vault=vault.id, target=target["id"], row=0, error="x",
                                 failures=10, retry_at_ms=0, disable_at=relay.now())  # fmt: skip
    before = await snapshot(relay)
    refused = await call(client, relay, vault, "POST", f"/{target['id']}/test")
    assert (refused.status_code, error_of(refused)["error"]) == (409, "alert_target_disabled")
    assert await snapshot(relay) == before


async def test_a_stopping_relay_gives_its_leases_back_and_keeps_the_delivery(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    import asyncio

    from sealbox.server.alert_delivery import deliverer

    await add_webhook(client, relay, vault, events=["canary.*"])
    await append(relay, vault, "canary.read", "critical")
    sending = asyncio.Event()

    async def hangs(relay_: Relay, target: Target, delivery: Delivery) -> Outcome:
        sending.set()
        await asyncio.Event().wait()  # a receiver that never answers, until the relay stops
        raise AssertionError("unreachable")

    task = asyncio.create_task(deliverer(relay, sender=hangs, every=0.01))
    await asyncio.wait_for(sending.wait(), 10)
    async with relay.read() as conn:
        held = (await conn.execute(select(alert_targets))).mappings().one()
    assert held["lease_owner"] is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with relay.read() as conn:
        row = (await conn.execute(select(alert_targets))).mappings().one()
    assert (row["lease_owner"], row["lease_until_ms"]) == (None, None)
    assert [r["event"]["action"] for r in await outbox(relay)] == ["canary.read"]


async def test_a_sender_that_breaks_counts_as_a_failed_try(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault, events=["canary.*"])
    await append(relay, vault, "canary.read", "critical")

    async def breaks(relay_: Relay, target_: Target, delivery: Delivery) -> Outcome:
        raise LookupError("no such thing")

    assert await deliver_once(relay, owner="a", sender=breaks) == 0
    async with relay.read() as conn:
        state = await alert_store.get(conn, vault.id, target["id"])
    assert state is not None
    assert (state.failures, state.pending, state.last_error) == (1, 1, "LookupError")


async def test_a_quiet_round_only_reads(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    target = await add_webhook(client, relay, vault, events=["canary.*"])
    now_ms = int(relay.clock() * 1000)
    async with relay.read() as conn:
        assert not await alert_store.any_due(conn, now_ms)  # nothing queued
    await append(relay, vault, "canary.read", "critical")
    async with relay.read() as conn:
        assert await alert_store.any_due(conn, now_ms)
    async with relay.tx() as tx:
        await alert_store.failed(tx.conn, vault=vault.id, target=target["id"], row=0, error="x",
                                 failures=1, retry_at_ms=now_ms + 5_000,
                                 disable_at=None)  # fmt: skip
    async with relay.read() as conn:
        assert not await alert_store.any_due(conn, now_ms)  # backing off
        assert await alert_store.any_due(conn, now_ms + 5_000)
    async with relay.tx() as tx:
        await alert_store.failed(tx.conn, vault=vault.id, target=target["id"], row=0, error="x",
                                 failures=10, retry_at_ms=0, disable_at=relay.now())  # fmt: skip
    async with relay.read() as conn:
        assert not await alert_store.any_due(conn, now_ms)  # disabled: its row waits
