"""Against approval fatigue, through the API on SQLite and PostgreSQL.

Per-requester prompt rate and pending cap (the relay's and an approver's
override), a refusal that changes nothing but one throttled audit event, the
lockout after denials in a row and its clearing by an approver only, the
prompt-storm event once per requester and minute, and the relay's recent
counts served to approvers apart from what is signed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from login_support import audit_rows
from relay_support import Vault, error_of
from sqlalchemy import update
from test_relay_items import PASSWORD, Harness, Requester

from sealbox.protocol import ids
from sealbox.protocol.access import deny
from sealbox.protocol.statements import DENY_UNVERIFIABLE
from sealbox.server.app import create_app
from sealbox.server.relay import Relay
from sealbox.server.store.tables import requester_guards, requests

pytestmark = pytest.mark.anyio

PATH = "app/prod/db"


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


@pytest.fixture
async def item(h: Harness) -> str:
    stored, _ = await h.store_direct(h.vault.approvers[0], PATH, PASSWORD)
    return stored


def settle(h: Harness, **changes: Any) -> None:
    h.relay.settings = dataclasses.replace(h.relay.settings, **changes)


async def ask(h: Harness, client: Requester, item: str) -> httpx.Response:
    return await h.ask(client, h.access(client, [(item, PATH, ["user"])]))


async def asked(h: Harness, client: Requester, item: str) -> str:
    response = await ask(h, client, item)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def events(h: Harness, action: str) -> list[dict[str, Any]]:
    return [e for e in await audit_rows(h.relay, h.vault.id) if e["action"] == action]


def later(h: Harness, seconds: int) -> None:
    h.relay.clock.now += seconds  # type: ignore[attr-defined]


async def ago(h: Harness, seconds: int) -> None:
    """Make the requests and denials so far ``seconds`` older (signed calls carry the real
    time, so the relay's clock cannot jump that far ahead instead); waiting ones still wait."""
    async with h.relay.tx() as tx:
        await tx.conn.execute(
            update(requests).values(created_at=requests.c.created_at - seconds,
                                    updated_at=requests.c.updated_at - seconds)
        )  # fmt: skip
        await tx.conn.execute(
            update(requester_guards).values(
                last_denial_at=requester_guards.c.last_denial_at - seconds
            )
        )


async def limits(h: Harness, client: Requester, body: Any, signer: Any = None) -> httpx.Response:
    return await h.call("POST", f"/requesters/{client.id}/limits",
                        signer=signer or h.vault.approvers[0], body=body)  # fmt: skip


# --- the prompt rate and the pending cap -----------------------------------------------------


async def test_prompt_rate_per_requester_refuses_with_retry_after_and_changes_nothing(
    h: Harness, item: str
) -> None:
    settle(h, prompts_per_minute=3)
    client, other = await h.add_client(), await h.add_client()
    for _ in range(3):
        await asked(h, client, item)
        later(h, 5)
    before = await h.counts()
    refused = await ask(h, client, item)
    assert refused.status_code == 429
    assert error_of(refused)["error"] == "too_many_prompts"
    # The oldest of the three was made 15 s ago: it leaves the minute in 45 s.
    assert refused.headers["retry-after"] == "45"
    assert await h.counts() == before
    # Audited, throttled: a second refusal within the minute adds no event ...
    assert (await ask(h, client, item)).status_code == 429
    throttled = await events(h, "requests.throttled")
    assert [(e["client_id"], e["severity"], e["detail"]) for e in throttled] == [
        (client.id, "warning", {"error": "too_many_prompts", "kind": "access"})
    ]
    # ... another requester has its own count ...
    await asked(h, other, item)
    # ... and once the oldest prompt is a minute old, the client may ask again.
    later(h, 45)
    await asked(h, client, item)
    assert (await ask(h, client, item)).status_code == 429
    # The first event past the throttle's minute says how many were left out.
    later(h, 16)
    for _ in range(2):
        await asked(h, client, item)
    assert (await ask(h, client, item)).status_code == 429
    throttled = await events(h, "requests.throttled")
    assert [e["detail"] for e in throttled] == [
        {"error": "too_many_prompts", "kind": "access"},
        {"error": "too_many_prompts", "kind": "access", "suppressed": 2},
    ]


async def test_the_pending_cap_refusal_is_audited(h: Harness, item: str) -> None:
    settle(h, pending_cap=1)
    client = await h.add_client()
    await asked(h, client, item)
    before = await h.counts()
    refused = await ask(h, client, item)
    assert (refused.status_code, error_of(refused)["error"]) == (429, "too_many_pending")
    assert await h.counts() == before
    assert [e["detail"]["error"] for e in await events(h, "requests.throttled")] == [
        "too_many_pending"
    ]


async def test_store_requests_are_prompts_too(h: Harness) -> None:
    settle(h, prompts_per_minute=1)
    client = await h.add_client()
    first = await h.post_store(client, h.store_upload(client, "app/prod/one", PASSWORD))
    assert first.status_code == 201, first.text
    before = await h.counts()
    second = await h.post_store(client, h.store_upload(client, "app/prod/two", PASSWORD))
    assert (second.status_code, error_of(second)["error"]) == (429, "too_many_prompts")
    assert await h.counts() == before
    assert (await events(h, "requests.throttled"))[0]["detail"]["kind"] == "store"


async def test_an_approver_overrides_one_requesters_limits(h: Harness, item: str) -> None:
    a = h.vault.approvers[0]
    slow, fast = await h.add_client(), await h.add_client()
    settle(h, prompts_per_minute=2)
    set_slow = await limits(h, slow, {"per_minute": 1, "pending_cap": None})
    assert set_slow.status_code == 200, set_slow.text
    assert set_slow.json()["limits"] == {"per_minute": 1, "pending_cap": 20,
                                         "per_minute_override": True,
                                         "pending_cap_override": False}  # fmt: skip
    set_fast = await limits(h, fast, {"per_minute": 5, "pending_cap": 4})
    assert set_fast.status_code == 200, set_fast.text
    await asked(h, slow, item)
    assert error_of(await ask(h, slow, item))["error"] == "too_many_prompts"
    for _ in range(4):
        await asked(h, fast, item)
    # Its own pending cap (4) holds before its own rate (5).
    assert error_of(await ask(h, fast, item))["error"] == "too_many_pending"
    changes = await events(h, "client.limits")
    assert [(e["actor"], e["client_id"], e["detail"]) for e in changes] == [
        (a.id, slow.id, {"per_minute": 1, "pending_cap": None}),
        (a.id, fast.id, {"per_minute": 5, "pending_cap": 4}),
    ]
    listed = (await h.call("GET", "/requesters", signer=a)).json()
    assert listed["defaults"]["per_minute"] == 2
    assert {r["client"]: r["limits"]["per_minute"] for r in listed["requesters"]} == {
        slow.id: 1, fast.id: 5,
    }  # fmt: skip
    # Cleared: the relay's limits again.
    cleared = await limits(h, slow, {"per_minute": None, "pending_cap": None})
    assert cleared.json()["limits"]["per_minute"] == 2
    await asked(h, slow, item)


async def test_bad_overrides_and_non_approvers_change_nothing(h: Harness, item: str) -> None:
    client = await h.add_client()
    before = await h.counts()
    for body in ({"per_minute": 0, "pending_cap": None}, {"per_minute": 10_001, "pending_cap": 1},
                 {"per_minute": 1}, {"per_minute": "many", "pending_cap": 1},
                 {"per_minute": True, "pending_cap": 1}, {"per_minute": "7", "pending_cap": 1},
                 {"per_minute": 5.0, "pending_cap": 1},
                 {"per_minute": 5, "pending_cap": 1, "locked": False}):  # fmt: skip
        refused = await limits(h, client, body)
        assert refused.status_code == 422, body
    not_approver = await limits(h, client, {"per_minute": 1000, "pending_cap": 100}, client)
    assert not_approver.status_code == 403
    nobody = ids.new_id(ids.CLIENT)
    unknown = await h.call("POST", f"/requesters/{nobody}/limits", signer=h.vault.approvers[0],
                           body={"per_minute": 5, "pending_cap": 5})  # fmt: skip
    assert (unknown.status_code, error_of(unknown)["error"]) == (404, "no_such_client")
    # Not a client id at all (a NUL byte, another form): refused before any query.
    for bad in ("%00", "cli_nobody", "apv_" + "a" * 26):
        for action, body in (("limits", {"per_minute": 5, "pending_cap": 5}), ("unlock", None)):
            refused = await h.call("POST", f"/requesters/{bad}/{action}",
                                   signer=h.vault.approvers[0], body=body)  # fmt: skip
            assert refused.status_code == 422, (bad, action, refused.text)
    assert (await h.call("GET", "/requesters", signer=client)).status_code == 403
    assert await h.counts() == before
    assert await events(h, "client.limits") == []


# --- lockout after denials in a row ------------------------------------------------------------


async def test_lockout_after_denials_in_a_row_until_an_approver_unlocks(
    h: Harness, item: str
) -> None:
    settle(h, lockout_denials=3)
    a = h.vault.approvers[0]
    client, other = await h.add_client(), await h.add_client()
    for _ in range(3):
        denied = await h.deny_as(a, await asked(h, client, item))
        assert denied.status_code == 200, denied.text
    locked = await events(h, "client.locked")
    assert [(e["actor"], e["client_id"], e["severity"], e["detail"]) for e in locked] == [
        (a.id, client.id, "alert", {"denials": 3, "threshold": 3, "window_seconds": 3600})
    ]
    before = await h.counts()
    refused = await ask(h, client, item)
    assert (refused.status_code, error_of(refused)["error"]) == (403, "locked_out")
    assert "unlock" in error_of(refused)["hint"]
    assert await h.counts() == before
    await asked(h, other, item)  # only this requester is locked

    listed = (await h.call("GET", "/requesters", signer=a)).json()["requesters"]
    assert [(r["client"], r["locked_at"] is not None, r["denials_in_a_row"]) for r in listed] == [
        (client.id, True, 3)
    ]
    # The requester itself cannot unlock.
    mine = await h.call("POST", f"/requesters/{client.id}/unlock", signer=client)
    assert mine.status_code == 403
    assert error_of(await ask(h, client, item))["error"] == "locked_out"

    unlocked = await h.call("POST", f"/requesters/{client.id}/unlock", signer=a)
    assert unlocked.status_code == 200, unlocked.text
    assert (unlocked.json()["changed"], unlocked.json()["locked_at"]) == (True, None)
    assert [(e["actor"], e["client_id"]) for e in await events(h, "client.unlocked")] == [
        (a.id, client.id)
    ]
    # Counting starts again: one more denial does not lock it.
    await h.deny_as(a, await asked(h, client, item))
    await asked(h, client, item)
    again = await h.call("POST", f"/requesters/{client.id}/unlock", signer=a)
    assert again.json()["changed"] is False
    assert len(await events(h, "client.unlocked")) == 1
    assert len(await events(h, "client.locked")) == 1


async def test_concurrent_denials_all_count_and_lock_once(h: Harness, item: str) -> None:
    settle(h, lockout_denials=3)
    a = h.vault.approvers[0]
    client = await h.add_client()
    waiting = [await asked(h, client, item) for _ in range(4)]
    # Four denials and two new requests at once: every denial counts, the lock is written
    # once, and nothing deadlocks (denials take the client's lock before the audit chain's).
    tokens = [deny("sha256:" + r, directory=h.directory(), approver=a.id, key=a.sig,
                   reason="no", now=h.relay.now()) for r in waiting]  # fmt: skip
    answers = await asyncio.gather(
        *(h.call("POST", f"/access-requests/{r}/deny", signer=a, body={"deny": t})
          for r, t in zip(waiting, tokens, strict=True)),
        ask(h, client, item), ask(h, client, item),
    )  # fmt: skip
    assert [r.status_code for r in answers[:4]] == [200] * 4
    assert {r.status_code for r in answers[4:]} <= {201, 403}
    locked = await events(h, "client.locked")
    assert len(locked) == 1
    listed = (await h.call("GET", "/requesters", signer=a)).json()["requesters"]
    assert [(r["client"], r["denials_in_a_row"]) for r in listed] == [(client.id, 4)]
    assert error_of(await ask(h, client, item))["error"] == "locked_out"


async def test_a_release_resets_the_denials_in_a_row(h: Harness, item: str) -> None:
    settle(h, lockout_denials=3)
    a = h.vault.approvers[0]
    client = await h.add_client()
    for _ in range(2):
        await h.deny_as(a, await asked(h, client, item))
        later(h, 1)
    released = await asked(h, client, item)
    assert (await h.release_as(a, released)).status_code == 200
    later(h, 1)
    for _ in range(2):
        await h.deny_as(a, await asked(h, client, item))
        later(h, 1)
    await asked(h, client, item)  # 2 in a row since the release: not locked
    assert await events(h, "client.locked") == []


async def test_a_client_cannot_clear_its_own_denials_by_fetching_a_kept_release(
    h: Harness, item: str
) -> None:
    # Only an approver's yes breaks the row: a release the client kept back and fetches
    # between denials (its row moves to delivered) must not, nor may a consent it reads.
    settle(h, lockout_denials=3)
    a = h.vault.approvers[0]
    client = await h.add_client()
    kept = await asked(h, client, item)
    assert (await h.release_as(a, kept)).status_code == 200
    later(h, 1)
    for _ in range(2):
        await h.deny_as(a, await asked(h, client, item))
        later(h, 1)
    assert (await h.envelope(client, kept)).status_code == 200
    later(h, 1)
    await h.deny_as(a, await asked(h, client, item))
    assert len(await events(h, "client.locked")) == 1
    refused = await ask(h, client, item)
    assert refused.status_code == 403
    assert refused.json()["error"] == "locked_out"


async def test_denials_further_apart_than_the_window_are_not_in_a_row(
    h: Harness, item: str
) -> None:
    settle(h, lockout_denials=2, lockout_window_seconds=600)
    a = h.vault.approvers[0]
    client = await h.add_client()
    await h.deny_as(a, await asked(h, client, item))
    await ago(h, 601)
    await h.deny_as(a, await asked(h, client, item))
    await asked(h, client, item)
    later(h, 10)
    await h.deny_as(a, await asked(h, client, item))
    assert error_of(await ask(h, client, item))["error"] == "locked_out"


async def test_a_refusal_of_an_unverifiable_request_does_not_count(h: Harness, item: str) -> None:
    settle(h, lockout_denials=1)
    a = h.vault.approvers[0]
    client = await h.add_client()
    request_id = await asked(h, client, item)
    token = deny("sha256:" + request_id, directory=h.directory(), approver=a.id, key=a.sig,
                 reason="the request does not verify: signature_invalid", now=h.relay.now(),
                 grounds=DENY_UNVERIFIABLE)  # fmt: skip
    refused = await h.call("POST", f"/access-requests/{request_id}/deny", signer=a,
                           body={"deny": token})  # fmt: skip
    assert refused.status_code == 200, refused.text
    await asked(h, client, item)
    assert await events(h, "client.locked") == []


async def test_lockout_off(h: Harness, item: str) -> None:
    settle(h, lockout_denials=0)
    a = h.vault.approvers[0]
    client = await h.add_client()
    for _ in range(6):
        await h.deny_as(a, await asked(h, client, item))
    await asked(h, client, item)


# --- the prompt storm ----------------------------------------------------------------------------


async def test_a_storm_is_reported_once_per_requester_and_minute(h: Harness, item: str) -> None:
    settle(h, storm_prompts=3, prompts_per_minute=100)
    client, calm = await h.add_client(), await h.add_client()
    for _ in range(7):
        await asked(h, client, item)
    for _ in range(3):
        await asked(h, calm, item)  # not more than 3: no storm
    storms = await events(h, "requests.storm")
    assert [(e["client_id"], e["severity"], e["detail"]) for e in storms] == [
        (client.id, "alert", {"prompts": 4, "window_seconds": 60, "threshold": 3,
                              "kind": "access"}),
    ]  # fmt: skip
    later(h, 30)
    await asked(h, client, item)
    assert len(await events(h, "requests.storm")) == 1  # still the same minute
    later(h, 31)
    await asked(h, client, item)  # 2 in the last minute: no storm now ...
    assert len(await events(h, "requests.storm")) == 1
    for _ in range(2):
        await asked(h, client, item)
    storms = await events(h, "requests.storm")  # ... 4 now: the next minute's one report
    assert len(storms) == 2
    assert storms[1]["detail"]["prompts"] == 4
    assert not any("statement" in str(e["detail"]) for e in storms)


# --- what approvers are shown ------------------------------------------------------------------


async def test_recent_counts_are_served_apart_from_what_is_signed(h: Harness, item: str) -> None:
    settle(h, lockout_denials=2)
    a = h.vault.approvers[0]
    client, other = await h.add_client(), await h.add_client()
    await h.deny_as(a, await asked(h, client, item))
    await asked(h, other, item)
    later(h, 10)
    waiting = await asked(h, client, item)
    expected = {"window_seconds": 3600, "requests": 2, "denials": 1, "locked": False,
                "counted_up_to": 1000}  # fmt: skip
    entry = await h.approval(a, waiting)
    assert entry["reported_by_server"]["recent"] == expected
    one = await h.call("GET", f"/approvals/{waiting}", signer=a)
    assert one.json()["reported_by_server"]["recent"] == expected
    # Only under what the relay reports, never beside what is signed.
    assert "recent" not in entry
    # A second denial locks the requester: its waiting request says so.
    await h.deny_as(a, await asked(h, client, item))
    entry = await h.approval(a, waiting)
    assert entry["reported_by_server"]["recent"] == {**expected, "requests": 3, "denials": 2,
                                                     "locked": True}  # fmt: skip
    # An hour on, the old ones are not counted (the waiting one is kept answerable).
    await ago(h, 3600)
    entry = await h.approval(a, waiting)
    assert entry["reported_by_server"]["recent"] == {**expected, "requests": 0, "denials": 0,
                                                     "locked": True}  # fmt: skip


# --- replicas ------------------------------------------------------------------------------------


@pytest.fixture
async def replica(relay: Relay) -> AsyncIterator[tuple[httpx.AsyncClient, Relay]]:
    """A second relay process on the same database: nothing held in memory is shared."""
    twin = Relay(settings=relay.settings, engine=relay.engine, master_key=relay.master_key,
                 clock=relay.clock)  # fmt: skip
    app = create_app(twin)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                          base_url="http://relay.test") as http,
    ):  # fmt: skip
        yield http, twin


async def test_limits_hold_across_replicas(
    h: Harness, item: str, replica: tuple[httpx.AsyncClient, Relay]
) -> None:
    http, twin = replica
    settle(h, prompts_per_minute=2)
    twin.settings = h.relay.settings
    other = Harness(http, h.relay, h.vault)
    client = await h.add_client()
    await asked(h, client, item)
    await asked(other, client, item)
    assert error_of(await ask(h, client, item))["error"] == "too_many_prompts"
    assert error_of(await ask(other, client, item))["error"] == "too_many_prompts"
