"""Client management and grants: approver-only, on both backends."""

from __future__ import annotations

import httpx
import pytest
from login_support import (
    Human,
    add_approver,
    audit_rows,
    certificate,
    login,
    oauth_error,
    refresh,
    signed,
    snapshot,
    whoami,
)
from relay_support import Vault, error_of
from sqlalchemy import select

from sealbox.server.relay import Relay
from sealbox.server.store.tables import tokens

pytestmark = pytest.mark.anyio


async def _register(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, kind: str = "machine"
) -> Human:
    machine = Human("ci-runner", kind=kind)
    response = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/clients", by=vault.approvers[0],
        json={"certificate": certificate(vault, relay, machine.info)},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return machine


async def test_register_list_and_show_a_machine(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = await _register(client, relay, vault)
    agent = await _register(client, relay, vault, kind="agent")
    base = f"/v1/vaults/{vault.id}/clients"
    listed = await signed(client, relay, "GET", base, by=vault.approvers[0])
    assert listed.status_code == 200, listed.text
    rows = {c["id"]: c for c in listed.json()["clients"]}
    assert set(rows) == {machine.id, agent.id}
    assert rows[machine.id]["kind"] == "machine"
    assert rows[agent.id]["kind"] == "agent"
    assert rows[machine.id]["key_fingerprint"] == machine.sig.verify_key().fingerprint()
    assert rows[machine.id]["issuer"] == vault.approvers[0].id
    assert rows[machine.id]["disabled"] is False

    shown = await signed(client, relay, "GET", f"{base}/{machine.id}", by=vault.approvers[0])
    assert shown.status_code == 200, shown.text
    assert shown.json()["grants"] == []
    assert shown.json()["certificate"].count(".") == 2

    me = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/whoami", by=machine)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "client"
    assert me.json()["client_kind"] == "machine"
    actions = [e["action"] for e in await audit_rows(relay, vault.id)]
    assert actions.count("client.registered") == 2


async def test_registration_refuses_bad_certificates(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    other = await add_approver(client, relay, vault, "phone")
    existing = await _register(client, relay, vault)
    person, granted = await login(client, relay, vault)
    url = f"/v1/vaults/{vault.id}/clients"
    first = vault.approvers[0]
    machine = Human("m", kind="machine")
    before = await snapshot(relay)
    cases = [
        (certificate(vault, relay, Human("h").info), 400, "human_client"),
        (certificate(vault, relay, machine.info, approver=other), 403, "not_the_issuer"),
        (certificate(vault, relay, existing.info), 409, "client_exists"),
        (certificate(vault, relay, machine.info, not_after=relay.now() - 1), 403,
         "certificate_invalid"),
        ("x.y.z", 403, "certificate_invalid"),
    ]  # fmt: skip
    for cert, status, error in cases:
        response = await signed(client, relay, "POST", url, by=first, json={"certificate": cert})
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    good = {"certificate": certificate(vault, relay, machine.info)}
    refusals = [
        (await client.post(url, json=good), 401, "signature_required"),
        (await signed(client, relay, "POST", url, by=existing, json=good), 403,
         "approver_required"),
        (await client.post(url, json=good,
                           headers={"authorization": f"Bearer {granted['access_token']}"}),
         403, "approver_required"),
        (await signed(client, relay, "POST", url, by=first, json={"certificate": 5}), 422,
         "invalid_request"),
        (await signed(client, relay, "GET", url, by=person), 403, "approver_required"),
    ]  # fmt: skip
    for response, status, error in refusals:
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    assert await snapshot(relay) == before


async def test_disabling_stops_tokens_and_signatures_at_once(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    person, granted = await login(client, relay, vault)
    machine = await _register(client, relay, vault)
    base = f"/v1/vaults/{vault.id}/clients"
    me = f"/v1/vaults/{vault.id}/whoami"
    assert (await whoami(client, vault.id, granted["access_token"])).status_code == 200
    assert (await signed(client, relay, "GET", me, by=machine)).status_code == 200

    off = await signed(client, relay, "POST", f"{base}/{person.id}/disable", by=vault.approvers[0])
    assert off.status_code == 200, off.text
    assert off.json() == {"id": person.id, "disabled": True, "tokens_revoked": 2}
    refused = await whoami(client, vault.id, granted["access_token"])
    assert (refused.status_code, error_of(refused)["error"]) == (401, "invalid_token")
    assert oauth_error(await refresh(client, granted["refresh_token"])) == "invalid_grant"
    # The person's key cannot sign its way in either.
    signed_person = await signed(client, relay, "GET", me, by=person)
    assert (signed_person.status_code, error_of(signed_person)["error"]) == (401, "unknown_key")

    off = await signed(client, relay, "POST", f"{base}/{machine.id}/disable", by=vault.approvers[0])
    assert off.status_code == 200
    refused = await signed(client, relay, "GET", me, by=machine)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "unknown_key")
    # Disabling again changes nothing and records nothing.
    before = await snapshot(relay)
    again = await signed(client, relay, "POST", f"{base}/{machine.id}/disable",
                         by=vault.approvers[0])  # fmt: skip
    assert again.status_code == 200
    assert again.json()["tokens_revoked"] == 0
    assert await snapshot(relay) == before

    for target in (machine, person):
        on = await signed(client, relay, "POST", f"{base}/{target.id}/enable",
                          by=vault.approvers[0])  # fmt: skip
        assert on.status_code == 200
        assert on.json()["disabled"] is False
    assert (await signed(client, relay, "GET", me, by=machine)).status_code == 200
    # Enabling does not revive the revoked session: the person logs in again.
    assert (await whoami(client, vault.id, granted["access_token"])).status_code == 401
    async with relay.read() as conn:
        assert all(r.revoked for r in (await conn.execute(select(tokens))).all())
    events = [e for e in await audit_rows(relay, vault.id) if e["action"] == "client.disabled"]
    assert [e["client_id"] for e in events] == [person.id, machine.id]
    assert events[0]["detail"] == {"tokens_revoked": 2}


async def test_unknown_clients(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> None:
    base = f"/v1/vaults/{vault.id}/clients"
    stranger = Human().id
    before = await snapshot(relay)
    for method, path, body in [
        ("GET", f"{base}/{stranger}", None),
        ("GET", f"{base}/not-an-id", None),
        ("POST", f"{base}/{stranger}/disable", None),
        ("POST", f"{base}/{stranger}/enable", None),
        ("GET", f"{base}/{stranger}/grants", None),
        ("POST", f"{base}/{stranger}/grants", {"pattern": "app/prod/db"}),
    ]:
        response = await signed(client, relay, method, path, by=vault.approvers[0], json=body)
        assert (response.status_code, error_of(response)["error"]) == (404, "no_such_client")
    assert await snapshot(relay) == before


async def test_grants(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> None:
    machine = await _register(client, relay, vault)
    url = f"/v1/vaults/{vault.id}/clients/{machine.id}/grants"
    first = vault.approvers[0]
    added = await signed(client, relay, "POST", url, by=first, json={"pattern": "app/prod/*"})
    assert added.status_code == 201, added.text
    same = await signed(client, relay, "POST", url, by=first, json={"pattern": "app/prod/*"})
    assert same.status_code == 200
    exact = await signed(client, relay, "POST", url, by=first, json={"pattern": "app/dev/db"})
    assert exact.status_code == 201
    listed = await signed(client, relay, "GET", url, by=first)
    assert listed.json() == {"client_id": machine.id, "grants": ["app/dev/db", "app/prod/*"]}

    before = await snapshot(relay)
    for pattern in ["app/prod", "a/b/c/d", "app/prod/db!", "app//db", "../prod/db",
                    "app/[ab]/db", "app/prod/" + "x" * 65, ""]:  # fmt: skip
        refused = await signed(client, relay, "POST", url, by=first, json={"pattern": pattern})
        assert (refused.status_code, error_of(refused)["error"]) == (400, "invalid_pattern"), (
            pattern
        )
    missing = await signed(client, relay, "DELETE", url, by=first,
                           params={"pattern": "app/prod/db"})  # fmt: skip
    assert (missing.status_code, error_of(missing)["error"]) == (404, "no_such_grant")
    by_client = await signed(client, relay, "POST", url, by=machine, json={"pattern": "*/*/*"})
    assert (by_client.status_code, error_of(by_client)["error"]) == (403, "approver_required")
    assert await snapshot(relay) == before

    removed = await signed(client, relay, "DELETE", url, by=first, params={"pattern": "app/prod/*"})
    assert removed.status_code == 204, removed.text
    listed = await signed(client, relay, "GET", url, by=first)
    assert listed.json()["grants"] == ["app/dev/db"]
    actions = [e["action"] for e in await audit_rows(relay, vault.id)]
    assert actions.count("grant.added") == 2
    assert actions.count("grant.removed") == 1


async def test_an_expired_certificate_stops_signatures_and_tokens(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    machine = Human("short-lived", kind="machine")
    response = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/clients", by=vault.approvers[0],
        json={"certificate": certificate(vault, relay, machine.info, not_after=relay.now() + 60)},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    me = f"/v1/vaults/{vault.id}/whoami"
    assert (await signed(client, relay, "GET", me, by=machine)).status_code == 200
    relay.clock.now += 120  # type: ignore[attr-defined]
    refused = await signed(client, relay, "GET", me, by=machine)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "certificate_invalid")
