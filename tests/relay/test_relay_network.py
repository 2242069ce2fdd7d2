"""The vault's network allowlist, policies' networks and trusted proxies, on both backends.

Each request here comes from a chosen source address: the ASGI transport
reports it as the connection's peer, as a server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from login_support import Human, audit_rows, certificate, login, signed, snapshot
from relay_support import Vault, error_of
from sqlalchemy import select
from test_relay_items import Harness
from test_relay_replicas import BASE_URL, Replica, clock, pg_settings, replicas  # noqa: F401

from sealbox._relay.httpsig import sign_request
from sealbox.crypto import secrets as sx
from sealbox.server.app import create_app
from sealbox.server.relay import Relay
from sealbox.server.store import engine as db
from sealbox.server.store import network as network_store
from sealbox.server.store import tokens as token_store
from sealbox.server.store.tables import network_allowlists, requests

pytestmark = pytest.mark.anyio

INSIDE = "10.1.2.3"
OUTSIDE = "203.0.113.9"


@contextlib.asynccontextmanager
async def source(client: httpx.AsyncClient, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same relay app whose connections come from ``address``."""
    app = client._transport.app  # type: ignore[attr-defined]  # the fixture's ASGI transport
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as http:
        yield http


async def register(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, kind: str = "machine"
) -> Human:
    machine = Human(f"{kind}-1", kind=kind)
    response = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/clients", by=vault.approvers[0],
        json={"certificate": certificate(vault, relay, machine.info, scopes=("read", "write"))},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return machine


async def network(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, method: str, path: str = "",
    **kw: Any,
) -> httpx.Response:  # fmt: skip
    return await signed(client, relay, method, f"/v1/vaults/{vault.id}/network{path}",
                        by=vault.approvers[0], **kw)  # fmt: skip


async def allow_only(client: httpx.AsyncClient, relay: Relay, vault: Vault, *cidrs: str) -> None:
    if cidrs:
        added = await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": list(cidrs)})
        assert added.status_code == 200, added.text
    on = await network(client, relay, vault, "POST", "/enable")
    assert on.status_code == 200, on.text


def garbage_signed(http: httpx.AsyncClient, relay: Relay, vault: Vault, key_id: str) -> Any:
    """A request naming ``key_id`` whose signature is bytes that verify for no key."""
    request = http.build_request("GET", f"/v1/vaults/{vault.id}/whoami")
    sign_request(request, key=Human().sig, key_id=key_id, now=relay.now())
    request.headers["signature"] = "sealbox=:" + "A" * 86 + "==:"
    return request


def refusals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row["action"] == "auth.refused"]


# --- managing the allowlist ---------------------------------------------------------------------


async def test_approvers_manage_the_allowlist_and_each_change_is_audited(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    shown = await network(client, relay, vault, "GET")
    assert shown.json() == {"enabled": False, "cidrs": [], "version": 0, "changed": True}
    given = ["2001:DB8::/32", "10.1.0.0/16", "192.0.2.7"]
    added = await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": given})
    assert added.status_code == 200, added.text
    assert added.json()["cidrs"] == ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/32"]
    assert added.json()["enabled"] is False
    on = await network(client, relay, vault, "POST", "/enable")
    assert on.json()["enabled"] is True
    removed = await network(client, relay, vault, "DELETE", "/cidrs", params={"cidr": "192.0.2.7"})
    assert removed.status_code == 200, removed.text
    assert removed.json()["cidrs"] == ["10.1.0.0/16", "2001:db8::/32"]
    off = await network(client, relay, vault, "POST", "/disable")
    assert off.json() == {"enabled": False, "cidrs": ["10.1.0.0/16", "2001:db8::/32"],
                          "version": 4, "changed": True}  # fmt: skip

    # Asking for what already holds changes nothing and records nothing.
    before = await snapshot(relay)
    again = await network(client, relay, vault, "POST", "/disable")
    assert again.json()["changed"] is False
    same = await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": ["10.1.0.0/16"]})
    assert same.json()["changed"] is False
    assert await snapshot(relay) == before

    events = [e for e in await audit_rows(relay, vault.id) if e["action"].startswith("network.")]
    assert [e["action"] for e in events] == [
        "network.allowed", "network.enabled", "network.removed", "network.disabled",
    ]  # fmt: skip
    assert all(e["actor"] == vault.approvers[0].id for e in events)
    assert events[0]["detail"]["added"] == ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/32"]
    assert events[2]["detail"]["removed"] == ["192.0.2.7/32"]


async def test_bad_changes_are_refused_and_change_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await register(client, relay, vault)
    person, granted = await login(client, relay, vault)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    before = await snapshot(relay)
    async with relay.read() as conn:
        stored = (await conn.execute(select(network_allowlists))).all()
    base = f"/v1/vaults/{vault.id}/network"
    cases = [
        (await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": ["10.1.2.3/16"]}),
         400, "invalid_network"),
        (await network(client, relay, vault, "POST", "/cidrs",
                       json={"cidrs": ["10.2.0.0/16", "example.com"]}), 400, "invalid_network"),
        (await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": []}), 422,
         "invalid_request"),
        (await network(client, relay, vault, "DELETE", "/cidrs", params={"cidr": "10.9.0.0/16"}),
         404, "no_such_network"),
        (await network(client, relay, vault, "DELETE", "/cidrs", params={"cidr": "nope"}), 400,
         "invalid_network"),
        (await signed(client, relay, "POST", f"{base}/disable", by=machine), 403,
         "network_not_allowed"),  # the machine calls from outside the list, even to this
        (await client.post(f"{base}/disable",
                           headers={"authorization": f"Bearer {granted['access_token']}"}),
         403, "approver_required"),
        (await signed(client, relay, "GET", base, by=person), 403, "approver_required"),
        (await client.get(base), 401, "signature_required"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    async with relay.read() as conn:
        assert (await conn.execute(select(network_allowlists))).all() == stored
    after = await snapshot(relay)
    # Only the throttled refusal event of the machine was added.
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }


# --- machines and agents, by source address -----------------------------------------------------


async def test_a_machine_outside_the_allowlist_is_refused_before_its_signature_is_checked(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await register(client, relay, vault)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    me = f"/v1/vaults/{vault.id}/whoami"
    async with source(client, INSIDE) as inside, source(client, OUTSIDE) as outside:
        assert (await signed(inside, relay, "GET", me, by=machine)).status_code == 200
        refused = await signed(outside, relay, "GET", me, by=machine)
        assert refused.status_code == 403
        body = error_of(refused)
        assert body["error"] == "network_not_allowed"
        assert OUTSIDE in body["message"]
        assert "sealbox approver network allow" in body["hint"]

        # A signature that verifies for no key: from outside the network refusal comes first
        # (no verification was spent on it); from inside, the signature is what fails.
        before = await snapshot(relay)
        garbage = await outside.send(garbage_signed(outside, relay, vault, machine.id))
        assert (garbage.status_code, error_of(garbage)["error"]) == (403, "network_not_allowed")
        garbage = await inside.send(garbage_signed(inside, relay, vault, machine.id))
        assert (garbage.status_code, error_of(garbage)["error"]) == (401, "signature_invalid")

    events = refusals(await audit_rows(relay, vault.id))
    network_events = [e for e in events if e["detail"]["error"] == "network_not_allowed"]
    # Throttled: one event a minute per vault, address and error.
    [event] = network_events
    assert event["source_ip"] == OUTSIDE
    assert event["actor"] == "anonymous"  # the signature was never verified
    assert event["detail"] == {"error": "network_not_allowed", "status": 403,
                               "key_id": machine.id}  # fmt: skip
    after = await snapshot(relay)
    # The refused requests changed nothing but their (throttled) refusal events.
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }


async def test_no_signature_verification_is_spent_on_a_refused_address(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealbox.server.auth import certcheck, httpsig

    machine = await register(client, relay, vault)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    verified: list[str] = []
    real_verify = httpsig.hms.HTTPMessageVerifier.verify
    real_cert = certcheck.verify_certificate

    def counting_verify(self: Any, *args: Any, **kw: Any) -> Any:
        verified.append("request")
        return real_verify(self, *args, **kw)

    def counting_cert(*args: Any, **kw: Any) -> Any:
        verified.append("certificate")
        return real_cert(*args, **kw)

    monkeypatch.setattr(httpsig.hms.HTTPMessageVerifier, "verify", counting_verify)
    monkeypatch.setattr(certcheck, "verify_certificate", counting_cert)
    relay.certificate_verdicts.clear()
    async with source(client, OUTSIDE) as outside:
        for _ in range(5):
            response = await signed(outside, relay, "GET", f"/v1/vaults/{vault.id}/whoami",
                                    by=machine)  # fmt: skip
            assert response.status_code == 403
    assert verified == []
    async with source(client, INSIDE) as inside:
        response = await signed(inside, relay, "GET", f"/v1/vaults/{vault.id}/whoami", by=machine)
        assert response.status_code == 200
    assert verified == ["certificate", "request"]


async def test_enabled_and_empty_refuses_every_machine_and_agent_but_no_person_or_approver(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await register(client, relay, vault)
    agent = await register(client, relay, vault, kind="agent")
    person, granted = await login(client, relay, vault)
    # An agent holding an access token (as its OAuth client credentials would give it).
    agent_token = sx.new_token("sbx_at_")
    async with relay.tx() as tx:
        await token_store.insert_pair(
            tx.conn, vault=vault.id, client_id=agent.id, family=secrets.token_hex(8),
            access_token=agent_token, access_expires=relay.now() + 600,
            refresh_token=sx.new_token("sbx_rt_"), refresh_expires=relay.now() + 6000,
        )  # fmt: skip
    me = f"/v1/vaults/{vault.id}/whoami"

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    await allow_only(client, relay, vault)  # enabled, no networks
    for address in (INSIDE, OUTSIDE, "::1"):
        async with source(client, address) as http:
            refused = await http.get(me, headers=bearer(agent_token))
            assert (refused.status_code, error_of(refused)["error"]) == (
                403, "network_not_allowed",
            )  # fmt: skip
            for caller in (machine, agent):
                refused = await signed(http, relay, "GET", me, by=caller)
                assert (refused.status_code, error_of(refused)["error"]) == (
                    403, "network_not_allowed",
                ), address  # fmt: skip
            # People and approvers are not held to it.
            assert (await http.get(me, headers=bearer(granted["access_token"]))).status_code == 200
            assert (await signed(http, relay, "GET", me, by=person)).status_code == 200
            assert (await signed(http, relay, "GET", me, by=vault.approvers[0])).status_code == 200
    # A refused token names its client in the event: the token itself verified.  (The
    # signatures refused after it from the same address are within its throttle.)
    events = [e for e in refusals(await audit_rows(relay, vault.id))
              if e["actor"] == agent.id]  # fmt: skip
    assert events
    assert events[0]["client_id"] == agent.id
    assert events[0]["detail"] == {"error": "network_not_allowed", "status": 403}

    await allow_only(client, relay, vault, "10.1.0.0/16", "::1")
    async with source(client, INSIDE) as http:
        assert (await http.get(me, headers=bearer(agent_token))).status_code == 200
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 200
    async with source(client, "::1") as http:
        assert (await signed(http, relay, "GET", me, by=agent)).status_code == 200
    off = await network(client, relay, vault, "POST", "/disable")
    assert off.status_code == 200
    async with source(client, OUTSIDE) as http:
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 200


async def test_a_change_takes_effect_at_once_in_this_process(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await register(client, relay, vault)
    me = f"/v1/vaults/{vault.id}/whoami"
    async with source(client, INSIDE) as http:
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 200  # cached
        await allow_only(client, relay, vault, "192.0.2.0/24")
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 403
        added = await network(client, relay, vault, "POST", "/cidrs", json={"cidrs": [INSIDE]})
        assert added.status_code == 200
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 200
        removed = await network(client, relay, vault, "DELETE", "/cidrs", params={"cidr": INSIDE})
        assert removed.status_code == 200
        assert (await signed(http, relay, "GET", me, by=machine)).status_code == 403


class Counting:
    """A connection that counts its statements and runs ``before`` ahead of the first one."""

    def __init__(self, conn: Any, before: Any = None) -> None:
        self.conn, self.before, self.statements = conn, before, 0

    async def execute(self, *args: Any, **kw: Any) -> Any:
        self.statements += 1
        if self.before is not None:
            self.before, before = None, self.before
            before()
        return await self.conn.execute(*args, **kw)


async def test_the_cache_drops_a_load_that_raced_a_change_and_sees_other_replicas_changes(
    relay: Relay, vault: Vault
) -> None:
    ticks = [0.0]
    cache = network_store.Allowlists(clock=lambda: ticks[0])
    async with relay.read() as conn:
        # A change commits (and forgets) while a load is reading: the load's answer is not kept.
        racing = Counting(conn, before=lambda: cache.forget(vault.id))
        await cache.get(racing, vault.id)
        again = Counting(conn)
        await cache.get(again, vault.id)
        assert again.statements == 1  # read again, not served from the cache
        cached = Counting(conn)
        await cache.get(cached, vault.id)
        assert cached.statements == 0

    # Another replica's change: this cache keeps its copy for at most FRESH_SECONDS.
    async with relay.tx() as tx:
        locked = await network_store.lock(tx.conn, vault.id, relay.now())
        await network_store.save(tx.conn, vault.id, enabled=True, cidrs=[],
                                 version=locked.version, now=relay.now())  # fmt: skip
    async with relay.read() as conn:
        ticks[0] += network_store.FRESH_SECONDS / 2
        assert (await cache.get(conn, vault.id)).enabled is False
        ticks[0] += network_store.FRESH_SECONDS / 2
        checked = Counting(conn)
        assert (await cache.get(checked, vault.id)).enabled is True
        assert checked.statements == 2  # the version, then the changed row
        ticks[0] += network_store.FRESH_SECONDS
        unchanged = Counting(conn)
        assert (await cache.get(unchanged, vault.id)).enabled is True
        assert unchanged.statements == 1  # the version only


# --- policies' networks -------------------------------------------------------------------------


async def test_a_policy_with_networks_refuses_access_and_store_requests_from_outside(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    h = Harness(client, relay, vault)
    approver = vault.approvers[0]
    put = await h.call("PUT", "/policies", signer=approver, body={
        "pattern": "app/prod/*", "approvers": [approver.id], "threshold": 1,
        "cidrs": ["10.1.0.0/16", "2001:DB8::/32"],
    })  # fmt: skip
    assert put.status_code == 200, put.text
    assert put.json()["cidrs"] == ["10.1.0.0/16", "2001:db8::/32"]
    bad = await h.call("PUT", "/policies", signer=approver, body={
        "pattern": "app/dev/*", "approvers": [approver.id], "threshold": 1, "cidrs": ["10.1.2.3/8"],
    })  # fmt: skip
    assert (bad.status_code, error_of(bad)["error"]) == (400, "invalid_network")
    item, _ = await h.store_direct(approver, "app/prod/db", {"password": b"hunter2"})
    dev_item, _ = await h.store_direct(approver, "app/dev/db", {"password": b"dev"})
    client_ = await h.add_client(grants_for=("app/*/*",))

    async with source(client, OUTSIDE) as outside, source(client, INSIDE) as inside:
        effective = await Harness(inside, relay, vault).call(
            "GET", "/policy?path=app/prod/db", signer=client_
        )
        assert effective.json()["cidrs"] == ["10.1.0.0/16", "2001:db8::/32"]
        away, home = Harness(outside, relay, vault), Harness(inside, relay, vault)
        before = await snapshot(relay)
        refused = await away.ask(client_, h.access(client_, [(item, "app/prod/db", ["password"])]))
        assert (refused.status_code, error_of(refused)["error"]) == (
            403, "policy_network_not_allowed",
        )  # fmt: skip
        assert "app/prod/db" in error_of(refused)["message"]
        # One item of several outside its policy's networks refuses the whole request.
        both = h.access(client_, [(item, "app/prod/db", ["password"]),
                                  (dev_item, "app/dev/db", ["password"])])  # fmt: skip
        refused = await away.ask(client_, both)
        assert refused.status_code == 403
        upload = h.store_upload(client_, "app/prod/api", {"token": b"t"})
        refused_store = await away.post_store(client_, upload)
        assert (refused_store.status_code, error_of(refused_store)["error"]) == (
            403, "policy_network_not_allowed",
        )  # fmt: skip
        async with relay.read() as conn:
            assert (await conn.execute(select(requests))).all() == []
        after = await snapshot(relay)
        assert {k: v for k, v in after.items() if k != "audit_events"} == {
            k: v for k, v in before.items() if k != "audit_events"
        }
        # Items whose policy names no networks are asked for from anywhere.
        dev = await away.ask(client_, h.access(client_, [(dev_item, "app/dev/db", ["password"])]))
        assert dev.status_code == 201, dev.text
        asked = await home.ask(client_, h.access(client_, [(item, "app/prod/db", ["password"])]))
        assert asked.status_code == 201, asked.text
        stored = await home.post_store(client_, h.store_upload(client_, "app/prod/api",
                                                               {"token": b"t"}))  # fmt: skip
        assert stored.status_code == 201, stored.text

    # An authenticated client refused what it asked: request.refused, throttled per address
    # and error (the first of the three refusals is recorded).
    events = [e for e in await audit_rows(relay, vault.id)
              if e["action"] == "request.refused"
              and e["detail"]["error"] == "policy_network_not_allowed"]  # fmt: skip
    [event] = events
    assert event["actor"] == client_.id
    assert event["source_ip"] == OUTSIDE
    assert event["detail"] == {"error": "policy_network_not_allowed", "status": 403}


async def test_a_policy_with_networks_holds_people_too(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    approver = vault.approvers[0]
    put = await signed(client, relay, "PUT", f"/v1/vaults/{vault.id}/policies", by=approver,
                       json={"pattern": "app/prod/*", "approvers": [approver.id], "threshold": 1,
                             "cidrs": ["10.1.0.0/16"]})  # fmt: skip
    assert put.status_code == 200
    h = Harness(client, relay, vault)
    item, _ = await h.store_direct(approver, "app/prod/db", {"password": b"hunter2"})
    person = await h.add_client()
    async with relay.tx() as tx:  # a person's client, as logging in makes one
        from sealbox.server.store.tables import clients

        await tx.conn.execute(
            clients.update().where(clients.c.id == person.id).values(kind="human")
        )
    async with source(client, OUTSIDE) as outside:
        refused = await Harness(outside, relay, vault).ask(
            person, h.access(person, [(item, "app/prod/db", ["password"])])
        )
    assert (refused.status_code, error_of(refused)["error"]) == (403, "policy_network_not_allowed")


# --- trusted proxies ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def behind_proxies(
    relay: Relay, address: str, *proxies: str
) -> AsyncIterator[tuple[Relay, httpx.AsyncClient]]:
    """Another relay process on the same database (its own engine, as a replica has), that
    trusts ``proxies``, reached from ``address``."""
    settings = dataclasses.replace(relay.settings, trusted_proxies=proxies)
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    other = Relay(settings=settings, engine=engine, master_key=relay.master_key,
                  clock=relay.clock)  # fmt: skip
    # No lifespan (no sweeper, no LISTEN connection): these tests need neither.
    app = create_app(other, listen=False)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http:
            yield other, http
    finally:
        await engine.dispose()


async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await register(client, relay, vault)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    me = f"/v1/vaults/{vault.id}/whoami"
    proxy = "10.9.0.1"

    async def whoami(http: httpx.AsyncClient, other: Relay, forwarded: str | None) -> int:
        request = http.build_request("GET", me, headers={"x-forwarded-for": forwarded}
                                     if forwarded else {})  # fmt: skip
        sign_request(request, key=machine.sig, key_id=machine.id, now=other.now())
        return (await http.send(request)).status_code

    # Off by default: the header is anyone's to write, and is ignored.
    async with source(client, OUTSIDE) as http:
        assert await whoami(http, relay, INSIDE) == 403
    async with behind_proxies(relay, OUTSIDE, "10.9.0.0/16") as (other, http):
        # From a peer that is not a trusted proxy: ignored.
        assert await whoami(http, other, INSIDE) == 403
    async with behind_proxies(relay, proxy, "10.9.0.0/16") as (other, http):
        assert await whoami(http, other, INSIDE) == 200
        assert await whoami(http, other, f"{INSIDE}, 10.9.0.7") == 200  # through two proxies
        # A client that writes an allowed address left of its own is seen at its own.
        assert await whoami(http, other, f"{INSIDE}, {OUTSIDE}") == 403
        # The proxy itself (no header) is outside the allowlist.
        assert await whoami(http, other, None) == 403
    events = refusals(await audit_rows(relay, vault.id))
    assert {e["source_ip"] for e in events} == {OUTSIDE, proxy}


async def test_the_scheme_a_trusted_proxy_reports_is_the_one_signatures_cover(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    approver = vault.approvers[0]
    url = f"https://relay.test/v1/vaults/{vault.id}/whoami"

    async def call(http: httpx.AsyncClient, other: Relay) -> httpx.Response:
        # Signed for https (what the client used); the proxy speaks http to the relay.
        request = http.build_request("GET", url)
        sign_request(request, key=approver.sig, key_id=approver.id, now=other.now())
        request.url = request.url.copy_with(scheme="http")
        request.headers["x-forwarded-proto"] = "https"
        request.headers["x-forwarded-for"] = OUTSIDE
        return await http.send(request)

    async with behind_proxies(relay, "10.9.0.1", "10.9.0.0/16") as (other, http):
        assert (await call(http, other)).status_code == 200
    async with behind_proxies(relay, OUTSIDE, "10.9.0.0/16") as (other, http):
        refused = await call(http, other)
        assert (refused.status_code, error_of(refused)["error"]) == (401, "signature_invalid")


# --- replicas (PostgreSQL) ----------------------------------------------------------------------


async def test_a_change_through_one_replica_holds_on_another_within_the_freshness_bound(
    replicas: tuple[Replica, Replica],  # noqa: F811  # the fixture imported above
) -> None:
    a, b = replicas
    assert a.vault is not None
    vault = a.vault
    machine = await a.h.add_client()

    async def whoami(replica: Replica) -> int:
        transport = httpx.ASGITransport(app=replica.app, client=(INSIDE, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            harness = Harness(http, replica.relay, vault)
            return (await harness.call("GET", "/whoami", signer=machine)).status_code

    async def change(path: str, method: str = "POST", **kw: Any) -> None:
        response = await a.h.call(method, path, signer=vault.approvers[0], **kw)
        assert response.status_code == 200, response.text

    await change("/network/cidrs", body={"cidrs": ["10.1.0.0/16"]})
    await change("/network/enable")
    assert (await whoami(a), await whoami(b)) == (200, 200)  # both now hold it cached

    # Through A: A refuses at once; B within FRESH_SECONDS (when it compares versions).
    changed_at = time.monotonic()
    await change("/network/cidrs", body={"cidrs": ["192.0.2.0/24"]})
    a_response = await a.h.call("DELETE", "/network/cidrs?cidr=10.1.0.0%2F16",
                                signer=vault.approvers[0])  # fmt: skip
    assert a_response.status_code == 200, a_response.text
    assert await whoami(a) == 403
    while await whoami(b) != 403:
        assert time.monotonic() - changed_at < network_store.FRESH_SECONDS + 2, (
            "replica B still allows the removed network"
        )
        await asyncio.sleep(0.05)
    # And back: disabling through B is seen by A within the same bound.
    changed_at = time.monotonic()
    off = await b.h.call("POST", "/network/disable", signer=vault.approvers[0])
    assert off.status_code == 200, off.text
    assert await whoami(b) == 200
    while await whoami(a) != 200:
        assert time.monotonic() - changed_at < network_store.FRESH_SECONDS + 2
        await asyncio.sleep(0.05)


# --- machines registering -----------------------------------------------------------------------


async def test_a_machine_registers_only_from_an_allowed_network(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    from test_relay_machines import _make_token, _poll, _register

    token = (await _make_token(client, relay, vault))["token"]
    await allow_only(client, relay, vault, "10.1.0.0/16")
    machine = Human("api", kind="machine")
    async with source(client, OUTSIDE) as outside, source(client, INSIDE) as inside:
        before = await snapshot(relay)
        refused = await _register(outside, relay, vault, token, machine)
        assert (refused.status_code, error_of(refused)["error"]) == (403, "network_not_allowed")
        after = await snapshot(relay)
        # Nothing but the refusal's event: the token is not spent.
        assert {k: v for k, v in after.items() if k != "audit_events"} == {
            k: v for k, v in before.items() if k != "audit_events"
        }
        registered = await _register(inside, relay, vault, token, machine)
        assert registered.status_code == 201, registered.text
        assert (await _poll(inside, relay, vault, machine)).status_code == 200
        polled = await _poll(outside, relay, vault, machine)
        assert (polled.status_code, error_of(polled)["error"]) == (403, "network_not_allowed")
    [event] = [e for e in refusals(await audit_rows(relay, vault.id))
               if e["detail"]["error"] == "network_not_allowed"]  # fmt: skip
    assert event["source_ip"] == OUTSIDE
    assert event["detail"]["status"] == 403


async def test_per_address_limits_count_the_address_a_trusted_proxy_reports(
    relay: Relay, vault: Vault
) -> None:
    async def start(http: httpx.AsyncClient, forwarded: str) -> int:
        response = await http.post("/oauth/device_authorization", data=Human().form(vault.id),
                                   headers={"x-forwarded-for": forwarded})  # fmt: skip
        return response.status_code

    async with behind_proxies(relay, "10.9.0.1", "10.9.0.0/16") as (_, http):
        first = [await start(http, "198.51.100.1") for _ in range(11)]
        assert first[:10] == [200] * 10
        assert first[10] == 429  # that address's budget is spent ...
        assert await start(http, "198.51.100.2") == 200  # ... not the proxy's
    async with behind_proxies(relay, "10.9.0.1") as (_, http):
        # Not trusted: every request counts against the proxy's own address.
        statuses = [await start(http, f"198.51.100.{n}") for n in range(3, 14)]
        assert statuses[:10] == [200] * 10
        assert statuses[10] == 429


async def test_a_ci_runner_registers_only_from_an_allowed_network(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    from test_relay_enrollments import made, register

    h = Harness(client, relay, vault)
    enrollment = await made(h)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    cert, _, _ = enrollment.certificate()
    async with source(client, OUTSIDE) as outside, source(client, INSIDE) as inside:
        before = await snapshot(relay)
        refused = await register(h, enrollment, cert, http=outside)
        assert (refused.status_code, error_of(refused)["error"]) == (403, "network_not_allowed")
        after = await snapshot(relay)
        assert {k: v for k, v in after.items() if k != "audit_events"} == {
            k: v for k, v in before.items() if k != "audit_events"
        }
        registered = await register(h, enrollment, cert, http=inside)
        assert registered.status_code == 201, registered.text
        assert registered.json()["uses"] == 1  # the refused attempt used nothing
