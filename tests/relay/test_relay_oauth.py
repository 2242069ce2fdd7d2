"""CLI logins: RFC 8628 device authorization, token rotation and revocation, on both backends."""

from __future__ import annotations

import dataclasses
import json
import re

import httpx
import pytest
from login_support import (
    DEVICE_GRANT,
    Human,
    add_approver,
    approve,
    audit_rows,
    certificate,
    login,
    oauth_error,
    poll,
    refresh,
    signed,
    snapshot,
    start_login,
    whoami,
)
from relay_support import Approver, Clock, Vault, error_of
from sqlalchemy import select

from sealbox.crypto import secrets as sx
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.server.ratelimit import RateLimiter
from sealbox.server.relay import Relay
from sealbox.server.store.tables import clients, device_codes, tokens, vaults

pytestmark = pytest.mark.anyio


def _advance(relay: Relay, seconds: int) -> None:
    clock = relay.clock
    assert isinstance(clock, Clock)
    clock.now += seconds


async def test_device_flow_from_request_to_bearer(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human = Human()
    started = await start_login(client, vault, human)
    assert re.fullmatch(
        r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", started["user_code"]
    )
    assert started["device_code"].startswith("sbx_dc_")
    assert started["expires_in"] == 600
    assert started["interval"] == 5
    assert started["verification_uri"].endswith("/device")
    assert started["verification_uri_complete"].endswith(f"?user_code={started['user_code']}")
    async with relay.read() as conn:
        row = (await conn.execute(select(device_codes))).one()
    assert row.device_code_hash == sx.token_hash(started["device_code"])
    assert started["device_code"] not in repr(tuple(row))

    pending = await poll(client, started["device_code"], human)
    assert oauth_error(pending) == "authorization_pending"
    too_fast = await poll(client, started["device_code"], human)
    assert oauth_error(too_fast) == "slow_down"
    async with relay.read() as conn:
        assert (await conn.execute(select(device_codes.c.interval))).scalar_one() == 10

    listed = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/device-requests",
                          by=vault.approvers[0])  # fmt: skip
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["device_requests"]
    key = human.sig.verify_key()
    assert entry["user_code"] == started["user_code"]
    assert entry["client_id"] == human.id
    assert entry["client_name"] == human.name
    assert entry["key_fingerprint"] == key.fingerprint()
    assert entry["key_safety_code"] == key.safety_code()
    assert entry["expires_at"] - entry["created_at"] == 600

    _advance(relay, 11)
    assert oauth_error(await poll(client, started["device_code"], human)) == "authorization_pending"
    cert = certificate(vault, relay, human.info)
    approved = await signed(
        client, relay, "POST",
        f"/v1/vaults/{vault.id}/device-requests/{started['user_code']}/approve",
        by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"

    _advance(relay, 11)
    granted = await poll(client, started["device_code"], human)
    assert granted.status_code == 200, granted.text
    assert granted.headers["cache-control"] == "no-store"
    body = granted.json()
    assert body["access_token"].startswith("sbx_at_")
    assert body["refresh_token"].startswith("sbx_rt_")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["certificate"] == cert
    assert body["vault"] == vault.id

    me = await whoami(client, vault.id, body["access_token"])
    assert me.status_code == 200, me.text
    assert me.json() == {"vault": vault.id, "id": human.id, "role": "client",
                         "client_kind": "human", "via": "bearer"}  # fmt: skip

    # The device code is single-use.
    again = await poll(client, started["device_code"], human)
    assert oauth_error(again) == "invalid_grant"

    async with relay.read() as conn:
        stored = (await conn.execute(select(tokens))).all()
        registered = (await conn.execute(select(clients))).one()
    assert {r.hash for r in stored} == {
        sx.token_hash(body["access_token"]),
        sx.token_hash(body["refresh_token"]),
    }
    assert (registered.id, registered.kind, registered.certificate) == (human.id, "human", cert)
    secrets = [started["device_code"], body["access_token"], body["refresh_token"]]
    dumped = json.dumps([repr(tuple(r)) for r in stored])
    assert not any(s in dumped for s in secrets)
    events = await audit_rows(relay, vault.id)
    actions = [e["action"] for e in events]
    for action in ["device.requested", "device.approved", "token.issued", "device.code_reused"]:
        assert action in actions
    text = json.dumps([dict(e.items()) for e in events], default=str)
    assert not any(s in text for s in secrets)


async def test_denied_login(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> None:
    human = Human()
    started = await start_login(client, vault, human)
    url = f"/v1/vaults/{vault.id}/device-requests/{started['user_code']}"
    denied = await signed(client, relay, "POST", f"{url}/deny", by=vault.approvers[0])
    assert denied.status_code == 200, denied.text
    assert oauth_error(await poll(client, started["device_code"], human)) == "access_denied"
    late = await approve(client, relay, vault, started["user_code"], human)
    assert (late.status_code, error_of(late)["error"]) == (409, "device_request_closed")
    listed = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/device-requests",
                          by=vault.approvers[0])  # fmt: skip
    assert listed.json() == {"device_requests": []}
    async with relay.read() as conn:
        assert (await conn.execute(select(clients))).first() is None
        assert (await conn.execute(select(tokens))).first() is None
    assert "device.denied" in [e["action"] for e in await audit_rows(relay, vault.id)]


async def test_expired_login(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> None:
    human = Human()
    # The login starts 601 s ago rather than the clock moving on: signature
    # checks also hold "created" to the real time.
    _advance(relay, -601)
    started = await start_login(client, vault, human)
    _advance(relay, 601)
    assert oauth_error(await poll(client, started["device_code"], human)) == "expired_token"
    late = await approve(client, relay, vault, started["user_code"], human)
    assert (late.status_code, error_of(late)["error"]) == (409, "device_request_expired")
    listed = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/device-requests",
                          by=vault.approvers[0])  # fmt: skip
    assert listed.json() == {"device_requests": []}


async def test_user_code_is_accepted_as_people_type_it(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human = Human()
    started = await start_login(client, vault, human)
    typed = started["user_code"].replace("-", "").lower()
    response = await approve(client, relay, vault, typed, human)
    assert response.status_code == 200, response.text
    assert response.json()["user_code"] == started["user_code"]


async def test_device_authorization_refuses_bad_input(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    registered, _ = await login(client, relay, vault)
    human = Human()
    good = human.form(vault.id)
    before = await snapshot(relay)
    cases: list[tuple[dict[str, str] | str, int, str]] = [
        ({**good, "vault": "nope"}, 400, "invalid_request"),
        ({**good, "vault": ids.new_id(ids.VAULT)}, 404, "no_such_vault"),
        ({k: v for k, v in good.items() if k != "vault"}, 400, "invalid_request"),
        ({**good, "client_id": ids.new_id(ids.APPROVER)}, 400, "invalid_request"),
        ({**good, "client_id": registered.id}, 400, "invalid_request"),
        ({k: v for k, v in good.items() if k != "sig_pk"}, 400, "invalid_request"),
        ({**good, "sig_pk": "sbx-ed25519-pk-v1:AAAA"}, 400, "invalid_request"),
        ({**good, "sig_pk": "sbx-hpke-pk-v1:" + "A" * 43}, 400, "invalid_request"),
        ({**good, "client_name": "evil\u202ename"}, 400, "invalid_request"),
        ({**good, "client_name": ""}, 400, "invalid_request"),
        ({**good, "scope": "read\x01"}, 400, "invalid_scope"),
        ("vault=a&vault=b", 400, "invalid_request"),
        ("%ff%fe=1", 400, "invalid_request"),
    ]
    for form, status, error in cases:
        if isinstance(form, str):
            response = await client.post(
                "/oauth/device_authorization", content=form,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
        else:
            response = await client.post("/oauth/device_authorization", data=form)
        assert response.status_code == status, (form, response.text)
        assert oauth_error(response) == error, form
    as_json = await client.post("/oauth/device_authorization", json=good)
    assert oauth_error(as_json) == "invalid_request"
    assert await snapshot(relay) == before


async def test_one_address_cannot_fill_the_login_queue(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    for _ in range(10):
        await start_login(client, vault, Human())
    before = await snapshot(relay)
    response = await client.post("/oauth/device_authorization", data=Human().form(vault.id))
    assert response.status_code == 429
    assert oauth_error(response) == "slow_down"
    assert await snapshot(relay) == before


async def test_pending_logins_are_capped(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    # Many addresses: the per-address budget is not what this test is about.
    relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    for _ in range(50):
        await start_login(client, vault, Human())
    before = await snapshot(relay)
    response = await client.post("/oauth/device_authorization", data=Human().form(vault.id))
    assert response.status_code == 429
    assert oauth_error(response) == "slow_down"
    assert await snapshot(relay) == before


async def test_token_endpoint_refuses_bad_input(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human = Human()
    started = await start_login(client, vault, human)
    before = await snapshot(relay)
    cases = [
        ({}, "invalid_request"),
        ({"grant_type": "password", "username": "x"}, "unsupported_grant_type"),
        ({"grant_type": DEVICE_GRANT, "client_id": human.id}, "invalid_request"),
        ({"grant_type": DEVICE_GRANT, "device_code": started["device_code"]}, "invalid_request"),
        ({"grant_type": DEVICE_GRANT, "device_code": "sbx_dc_unknown", "client_id": human.id},
         "invalid_grant"),
        ({"grant_type": DEVICE_GRANT, "device_code": started["device_code"],
          "client_id": Human().id}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "sbx_rt_unknown"}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": started["device_code"]},
         "invalid_grant"),
    ]  # fmt: skip
    for form, error in cases:
        response = await client.post("/oauth/token", data=form)
        assert response.status_code == 400, (form, response.text)
        assert oauth_error(response) == error, form
    assert await snapshot(relay) == before


async def test_approval_refuses_wrong_certificates(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    other = await add_approver(client, relay, vault, "phone")
    someone, tokens_ = await login(client, relay, vault)
    human = Human()
    started = await start_login(client, vault, human)
    base = f"/v1/vaults/{vault.id}/device-requests"
    url = f"{base}/{started['user_code']}/approve"
    first = vault.approvers[0]
    machine = Human()
    machine.kind = "machine"
    machine.id, machine.sig = human.id, human.sig
    outsider = Approver("outsider")
    forged_vault = Vault(
        vault.id,
        outsider,
        dirs.genesis_link(vault.id, outsider.record, outsider.sig, now=relay.now()),
    )
    before = await snapshot(relay)
    cases = [
        (certificate(vault, relay, Human().info), 400, "certificate_mismatch"),
        (certificate(vault, relay, machine.info), 400, "certificate_mismatch"),
        (certificate(vault, relay, human.info, approver=other), 403, "not_the_issuer"),
        (certificate(vault, relay, human.info, not_after=relay.now() - 1), 403,
         "certificate_invalid"),
        (certificate(forged_vault, relay, human.info), 403, "certificate_invalid"),
        ("not.a.jws", 403, "certificate_invalid"),
    ]  # fmt: skip
    for cert, status, error in cases:
        response = await signed(client, relay, "POST", url, by=first, json={"certificate": cert})
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    good = certificate(vault, relay, human.info)
    refusals = [
        (await signed(client, relay, "POST", f"{base}/BCDF/approve", by=first,
                      json={"certificate": good}), 400, "invalid_user_code"),
        (await signed(client, relay, "POST", f"{base}/BCDF-BCDF/approve", by=first,
                      json={"certificate": good}), 404, "no_such_device_request"),
        (await signed(client, relay, "POST", url, by=first, json={}), 422, "invalid_request"),
        (await client.post(url, json={"certificate": good}), 401, "signature_required"),
        (await client.post(url, json={"certificate": good},
                           headers={"authorization": f"Bearer {tokens_['access_token']}"}),
         403, "approver_required"),
        (await signed(client, relay, "POST", url, by=someone, json={"certificate": good}),
         403, "approver_required"),
        (await client.get(base), 401, "signature_required"),
    ]  # fmt: skip
    for response, status, error in refusals:
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    assert await snapshot(relay) == before


async def test_refresh_rotates_every_time(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human, first = await login(client, relay, vault)
    second = await refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 3600
    assert pair["vault"] == vault.id
    assert {pair["access_token"], pair["refresh_token"]}.isdisjoint(first.values())
    assert (await whoami(client, vault.id, pair["access_token"])).json()["id"] == human.id
    third = await refresh(client, pair["refresh_token"])
    assert third.status_code == 200, third.text
    async with relay.read() as conn:
        rows = (await conn.execute(select(tokens))).all()
    assert len(rows) == 6
    assert len({r.family for r in rows}) == 1
    used = {r.hash for r in rows if r.used}
    assert used == {sx.token_hash(first["refresh_token"]), sx.token_hash(pair["refresh_token"])}


async def test_reused_refresh_token_revokes_the_family(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, first = await login(client, relay, vault)
    _, bystander = await login(client, relay, vault)
    second = (await refresh(client, first["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()
    assert (await whoami(client, vault.id, third["access_token"])).status_code == 200

    stolen = await refresh(client, first["refresh_token"])
    assert oauth_error(stolen) == "invalid_grant"
    newest = await whoami(client, vault.id, third["access_token"])
    assert (newest.status_code, error_of(newest)["error"]) == (401, "invalid_token")
    assert oauth_error(await refresh(client, third["refresh_token"])) == "invalid_grant"
    # Another login's family is untouched.
    assert (await whoami(client, vault.id, bystander["access_token"])).status_code == 200
    [event] = [e for e in await audit_rows(relay, vault.id)
               if e["action"] == "token.reuse_detected"]  # fmt: skip
    assert event["severity"] == "warning"
    secrets = [first["refresh_token"], second["refresh_token"], third["access_token"]]
    assert not any(s in json.dumps(event, default=str) for s in secrets)


async def test_revocation_is_immediate(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, by_access = await login(client, relay, vault)
    revoked = await client.post("/oauth/revoke", data={"token": by_access["access_token"]})
    assert revoked.status_code == 200
    assert (await whoami(client, vault.id, by_access["access_token"])).status_code == 401
    assert oauth_error(await refresh(client, by_access["refresh_token"])) == "invalid_grant"

    _, by_refresh = await login(client, relay, vault)
    revoked = await client.post("/oauth/revoke", data={"token": by_refresh["refresh_token"]})
    assert revoked.status_code == 200
    assert (await whoami(client, vault.id, by_refresh["access_token"])).status_code == 401

    before = await snapshot(relay)
    for token in ["sbx_at_unknown", by_access["access_token"]]:
        assert (await client.post("/oauth/revoke", data={"token": token})).status_code == 200
    assert oauth_error(await client.post("/oauth/revoke", data={})) == "invalid_request"
    assert await snapshot(relay) == before
    actions = [e["action"] for e in await audit_rows(relay, vault.id)]
    assert actions.count("token.revoked") == 2


async def test_access_token_expires_and_refresh_renews_it(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, first = await login(client, relay, vault)
    _advance(relay, 3600)
    expired = await whoami(client, vault.id, first["access_token"])
    assert (expired.status_code, error_of(expired)["error"]) == (401, "token_expired")
    renewed = await refresh(client, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert (await whoami(client, vault.id, renewed.json()["access_token"])).status_code == 200


async def test_tokens_do_not_outlive_the_certificate(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human = Human()
    started = await start_login(client, vault, human)
    cert = certificate(vault, relay, human.info, not_after=relay.now() + 600)
    response = await signed(
        client, relay, "POST",
        f"/v1/vaults/{vault.id}/device-requests/{started['user_code']}/approve",
        by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    granted = (await poll(client, started["device_code"], human)).json()
    assert granted["expires_in"] == 600
    _advance(relay, 600)
    assert (await whoami(client, vault.id, granted["access_token"])).status_code == 401
    assert oauth_error(await refresh(client, granted["refresh_token"])) == "invalid_grant"


async def _second_vault(client: httpx.AsyncClient, relay: Relay) -> Vault:
    vault_id, setup = ids.new_id(ids.VAULT), "sbx_st_second"
    async with relay.tx() as tx:
        await tx.conn.execute(
            vaults.insert().values(
                id=vault_id, created_at=relay.now(), setup_token_hash=sx.token_hash(setup)
            )
        )
    first = Approver()
    link0 = dirs.genesis_link(vault_id, first.record, first.sig, now=relay.now())
    response = await client.post(
        f"/v1/vaults/{vault_id}/setup", json={"setup_token": setup, "link": link0}
    )
    assert response.status_code == 201, response.text
    return Vault(vault_id, first, link0)


async def test_token_of_one_vault_is_refused_by_another(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    other = await _second_vault(client, relay)
    _, granted = await login(client, relay, vault)
    assert (await whoami(client, vault.id, granted["access_token"])).status_code == 200
    response = await whoami(client, other.id, granted["access_token"])
    assert (response.status_code, error_of(response)["error"]) == (401, "invalid_token")
    # Nor can a login of vault A be approved from vault B.
    human = Human()
    started = await start_login(client, vault, human)
    cross = await signed(
        client, relay, "POST",
        f"/v1/vaults/{other.id}/device-requests/{started['user_code']}/approve",
        by=other.approvers[0], json={"certificate": certificate(other, relay, human.info)},
    )  # fmt: skip
    assert (cross.status_code, error_of(cross)["error"]) == (404, "no_such_device_request")
    listed = await signed(client, relay, "GET", f"/v1/vaults/{other.id}/device-requests",
                          by=other.approvers[0])  # fmt: skip
    assert listed.json() == {"device_requests": []}


async def test_removing_the_issuer_ends_the_session_at_the_next_refresh(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    other = await add_approver(client, relay, vault, "phone")
    human = Human()
    started = await start_login(client, vault, human)
    response = await signed(
        client, relay, "POST",
        f"/v1/vaults/{vault.id}/device-requests/{started['user_code']}/approve",
        by=other, json={"certificate": certificate(vault, relay, human.info, approver=other)},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    granted = (await poll(client, started["device_code"], human)).json()
    first = vault.approvers[0]
    link = dirs.append_link(vault.directory(), "remove", other.record, signer=first.id,
                            key=first.sig, now=relay.now())  # fmt: skip
    removed = await client.post(f"/v1/vaults/{vault.id}/directory", json={"link": link})
    assert removed.status_code == 201, removed.text
    # The certificate no longer verifies: no new tokens, and the live ones end too.
    assert oauth_error(await refresh(client, granted["refresh_token"])) == "invalid_grant"
    assert (await whoami(client, vault.id, granted["access_token"])).status_code == 401


async def test_metadata_passes_an_independent_rfc8414_validator(
    client: httpx.AsyncClient, relay: Relay
) -> None:
    # authlib's validator checks every RFC 8414 member, including that issuer and
    # endpoints use https: so the relay is given a public https address here.
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    relay.settings = dataclasses.replace(relay.settings, public_url="https://relay.example")
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.json()
    AuthorizationServerMetadata(meta).validate()
    # The device grant needs no authorization endpoint, so none is advertised, and the
    # only response type is "none": no code or token ever comes from the front channel.
    assert "authorization_endpoint" not in meta
    assert meta["response_types_supported"] == ["none"]
    assert meta["issuer"] == "https://relay.example"
