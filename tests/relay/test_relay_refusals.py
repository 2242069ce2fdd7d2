"""Refused requests (bad signatures, bad tokens, rate limits) are audited, throttled."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from login_support import audit_rows, login, whoami
from relay_support import Clock, Vault

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.server.ratelimit import EventThrottle, RateLimiter
from sealbox.server.relay import Relay
from sealbox.server.store import audit

pytestmark = pytest.mark.anyio


def _refusals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["action"] == "auth.refused"]


def _advance(relay: Relay, seconds: int) -> None:
    assert isinstance(relay.clock, Clock)
    relay.clock.now += seconds


async def _forged(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> httpx.Response:
    """A request signed in the first approver's name with some other key."""
    request = client.build_request("GET", f"/v1/vaults/{vault.id}/whoami")
    sign_request(request, key=SigningKey.generate(), key_id=vault.approvers[0].id,
                 now=relay.now())  # fmt: skip
    return await client.send(request)


def test_throttle_admits_one_event_per_interval_and_counts_the_rest() -> None:
    throttle = EventThrottle(interval=60, max_keys=2)
    assert throttle.admit(("v", "ip", "e"), 0) == 0
    assert [throttle.admit(("v", "ip", "e"), t) for t in (1, 2, 59)] == [None, None, None]
    assert throttle.admit(("v", "ip", "other"), 3) == 0  # another key is not held back
    assert throttle.admit(("v", "ip", "e"), 60) == 3
    assert throttle.admit(("v", "ip", "e"), 61) is None
    throttle.admit(("v", "ip2", "e"), 62)
    throttle.admit(("v", "ip3", "e"), 62)
    assert len(throttle._held) == 2  # bounded: the least recently seen keys go


async def test_bad_signature_is_audited_once(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    response = await _forged(client, relay, vault)
    assert response.status_code == 401
    [event] = _refusals(await audit_rows(relay, vault.id))
    assert event["severity"] == "warning"
    assert event["actor"] == "anonymous"
    assert event["source_ip"] == "127.0.0.1"
    assert event["detail"] == {"error": "signature_invalid", "status": 401,
                               "key_id": vault.approvers[0].id}  # fmt: skip
    async with relay.read() as conn:
        await audit.verify_chain(conn, vault.id)


async def test_malformed_key_id_is_not_repeated_into_the_log(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    request = client.build_request("GET", f"/v1/vaults/{vault.id}/whoami")
    sign_request(request, key=SigningKey.generate(), key_id="apv_<script>", now=relay.now())
    assert (await client.send(request)).status_code == 401
    [event] = _refusals(await audit_rows(relay, vault.id))
    assert event["detail"] == {"error": "unknown_key", "status": 401}


async def test_unknown_and_malformed_tokens_are_audited_without_the_token(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    token = "sbx_at_" + secrets.token_urlsafe(32)
    response = await whoami(client, vault.id, token)
    assert response.status_code == 401
    [event] = _refusals(await audit_rows(relay, vault.id))
    assert event["detail"] == {"error": "invalid_token", "status": 401}
    assert token not in repr(event)


async def test_rate_limited_caller_is_audited_once(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    relay.limiter = RateLimiter(rate=0.001, burst=1)
    a = vault.approvers[0]
    codes = []
    for _ in range(4):
        request = client.build_request("GET", f"/v1/vaults/{vault.id}/whoami")
        sign_request(request, key=a.sig, key_id=a.id, now=relay.now())
        codes.append((await client.send(request)).status_code)
    assert codes == [200, 429, 429, 429]
    [event] = _refusals(await audit_rows(relay, vault.id))
    assert event["actor"] == a.id
    assert event["detail"] == {"error": "rate_limited", "status": 429}


async def test_a_burst_writes_one_event_and_the_next_counts_the_rest(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    sent: list[str] = []
    for _ in range(50):
        response = await _forged(client, relay, vault)
        assert response.status_code == 401
        sent.append(response.request.headers["signature"])
    assert len(_refusals(await audit_rows(relay, vault.id))) == 1
    _advance(relay, 61)
    assert (await _forged(client, relay, vault)).status_code == 401
    first, second = _refusals(await audit_rows(relay, vault.id))
    assert "suppressed" not in first["detail"]
    assert second["detail"]["suppressed"] == 49
    # Another error code from the same address is its own stream of events.
    assert (await whoami(client, vault.id, "sbx_at_nope")).status_code == 401
    assert len(_refusals(await audit_rows(relay, vault.id))) == 3
    rows = repr(await audit_rows(relay, vault.id))
    assert not any(signature in rows for signature in sent)


async def test_no_secret_reaches_the_log(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, tokens = await login(client, relay, vault)
    revoked = await client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    )
    assert revoked.status_code == 200, revoked.text
    assert (await whoami(client, vault.id, tokens["access_token"])).status_code == 401
    forged = await _forged(client, relay, vault)
    assert forged.status_code == 401
    rows = await audit_rows(relay, vault.id)
    assert [r["detail"]["error"] for r in _refusals(rows)] == ["invalid_token", "signature_invalid"]
    text = repr(rows)
    for secret in (tokens["access_token"], tokens["refresh_token"],
                   forged.request.headers["signature"]):  # fmt: skip
        assert secret not in text


async def test_refusals_for_a_vault_that_does_not_exist_write_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    for _ in range(5):
        stranger = ids.new_id(ids.VAULT)
        response = await whoami(client, stranger, "sbx_at_" + secrets.token_urlsafe(8))
        assert response.status_code == 401
        assert await audit_rows(relay, stranger) == []
    assert relay.refusal_audit._held == {}
    assert _refusals(await audit_rows(relay, vault.id)) == []


async def test_a_request_without_credentials_is_not_audited(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    response = await client.get(f"/v1/vaults/{vault.id}/whoami")
    assert response.status_code == 401
    assert _refusals(await audit_rows(relay, vault.id)) == []


async def test_many_senders_get_at_most_the_vaults_budget_of_events(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    # Each sender its own throttle key (other IPv4 hosts); the vault's budget caps them all.
    # The budget's own clock stands still here, so no token comes back mid-test.
    assert (relay.refusal_budget.rate, relay.refusal_budget.burst) == (1.0, 60)
    relay.refusal_budget = RateLimiter(rate=1.0, burst=60, clock=lambda: 0.0)
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    for n in range(120):
        sender = httpx.ASGITransport(app=transport.app, client=(f"10.1.{n // 250}.{n % 250}", 1))
        async with httpx.AsyncClient(transport=sender, base_url=str(client.base_url)) as other:
            assert (await _forged(other, relay, vault)).status_code == 401
    events = _refusals(await audit_rows(relay, vault.id))
    assert len(events) == 60
    # Spent: more senders write nothing at all.
    sender = httpx.ASGITransport(app=transport.app, client=("10.9.9.9", 1))
    async with httpx.AsyncClient(transport=sender, base_url=str(client.base_url)) as other:
        await _forged(other, relay, vault)
    assert len(_refusals(await audit_rows(relay, vault.id))) == 60

    # With budget left, IPv6 senders in one /64 are one sender; another /64 is another.
    relay.refusal_budget = RateLimiter(rate=1.0, burst=60, clock=lambda: 0.0)
    for host in ("2001:db8::1", "2001:db8::2", "2001:db8::ffff", "2001:db8:0:1::1"):
        sender = httpx.ASGITransport(app=transport.app, client=(host, 1))
        async with httpx.AsyncClient(transport=sender, base_url=str(client.base_url)) as other:
            await _forged(other, relay, vault)
    assert len(_refusals(await audit_rows(relay, vault.id))) == 62
