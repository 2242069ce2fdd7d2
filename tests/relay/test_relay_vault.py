"""Vault setup, the directory, health, errors and the audit chain — on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from relay_support import Approver, Vault, error_of
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from sealbox.protocol import directory as dirs
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import audit
from sealbox.server.store.tables import audit_events, directory_links

pytestmark = pytest.mark.anyio


async def test_healthz_and_discovery(client: httpx.AsyncClient, relay: Relay) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["device_authorization_endpoint"].endswith("/oauth/device_authorization")
    assert "urn:ietf:params:oauth:grant-type:device_code" in meta["grant_types_supported"]
    assert (await client.get("/v1/vault")).status_code == 503
    status = await ensure_vault(relay)
    assert (await client.get("/v1/vault")).json() == {"vault": status.vault, "ready": False}
    schema = (await client.get("/openapi.json")).json()
    assert "/v1/vaults/{vault}/setup" in schema["paths"]


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["error"] == "not_found"


async def _audit_actions(relay: Relay, vault: str) -> list[str]:
    async with relay.read() as conn:
        rows = await conn.execute(
            select(audit_events.c.action)
            .where(audit_events.c.vault_id == vault)
            .order_by(audit_events.c.seq)
        )
        return list(rows.scalars())


async def test_setup_needs_the_one_time_token(client: httpx.AsyncClient, relay: Relay) -> None:
    status = await ensure_vault(relay)
    first = Approver()
    link0 = dirs.genesis_link(status.vault, first.record, first.sig, now=relay.now())
    url = f"/v1/vaults/{status.vault}/setup"

    wrong = await client.post(url, json={"setup_token": "sbx_st_guess", "link": link0})
    assert wrong.status_code == 403
    assert error_of(wrong)["error"] == "invalid_setup_token"
    assert (await client.get(f"/v1/vaults/{status.vault}/directory")).status_code == 409

    ok = await client.post(url, json={"setup_token": status.setup_token, "link": link0})
    assert ok.status_code == 201
    assert ok.json()["fingerprint"] == dirs.vault_fingerprint(link0)
    assert ok.json()["safety_code"] == dirs.vault_safety_code(link0)

    # Once set up, a second setup is refused without a trace an anonymous caller
    # could multiply: no audit event for it.
    again = await client.post(url, json={"setup_token": status.setup_token, "link": link0})
    assert again.status_code == 409
    assert error_of(again)["error"] == "already_set_up"
    assert (await client.get("/v1/vault")).json()["ready"] is True
    actions = await _audit_actions(relay, status.vault)
    assert actions == ["vault.created", "vault.setup_refused", "vault.set_up"]
    # Nothing in the audit log is a token.
    async with relay.read() as conn:
        dumped = str((await conn.execute(select(audit_events))).all())
    assert str(status.setup_token) not in dumped


async def test_setup_refuses_bad_links(client: httpx.AsyncClient, relay: Relay) -> None:
    status = await ensure_vault(relay)
    url = f"/v1/vaults/{status.vault}/setup"
    first = Approver()
    other_vault = dirs.genesis_link("vlt_" + "a" * 26, first.record, first.sig, now=relay.now())
    for link, code in [("not.a.jws", "directory_broken"), (other_vault, "wrong_vault")]:
        response = await client.post(url, json={"setup_token": status.setup_token, "link": link})
        assert response.status_code == 400
        assert error_of(response)["error"] == code
    missing = await client.post(url, json={"link": other_vault})
    assert missing.status_code == 422
    assert error_of(missing)["error"] == "invalid_request"
    # The token was not used up by the refused attempts.
    link0 = dirs.genesis_link(status.vault, first.record, first.sig, now=relay.now())
    ok = await client.post(url, json={"setup_token": status.setup_token, "link": link0})
    assert ok.status_code == 201


async def test_restart_replaces_the_setup_token(client: httpx.AsyncClient, relay: Relay) -> None:
    first_start = await ensure_vault(relay)
    second_start = await ensure_vault(relay)
    assert first_start.vault == second_start.vault
    assert first_start.setup_token != second_start.setup_token
    approver = Approver()
    link0 = dirs.genesis_link(first_start.vault, approver.record, approver.sig, now=relay.now())
    url = f"/v1/vaults/{first_start.vault}/setup"
    old = await client.post(url, json={"setup_token": first_start.setup_token, "link": link0})
    assert old.status_code == 403
    new = await client.post(url, json={"setup_token": second_start.setup_token, "link": link0})
    assert new.status_code == 201
    assert (await ensure_vault(relay)).setup_token is None


async def test_directory_append_and_refusals(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    url = f"/v1/vaults/{vault.id}/directory"
    second = Approver("phone")
    link1 = dirs.append_link(
        vault.directory(), "add", second.record, signer=vault.approvers[0].id,
        key=vault.approvers[0].sig, now=relay.now(),
    )  # fmt: skip
    outsider = Approver("relay")
    forged = dirs.append_link(
        dirs.verify_directory([*vault.links, link1], pinned=vault.fingerprint), "add",
        outsider.record, signer=second.id, key=second.sig, now=relay.now(),
    )  # fmt: skip
    # A link that follows link 1 cannot be appended before link 1.
    early = await client.post(url, json={"link": forged})
    assert early.status_code == 400
    assert error_of(early)["error"] == "directory_broken"

    added = await client.post(url, json={"link": link1})
    assert added.status_code == 201
    assert added.json()["seq"] == 1
    replayed = await client.post(url, json={"link": link1})
    assert replayed.status_code == 400

    links = (await client.get(url)).json()["links"]
    assert links == [vault.links[0], link1]
    assert set(dirs.verify_directory(links, pinned=vault.fingerprint).approvers) == {
        vault.approvers[0].id, second.id,
    }  # fmt: skip


async def test_unknown_vault(client: httpx.AsyncClient, vault: Vault) -> None:
    response = await client.get("/v1/vaults/vlt_" + "b" * 26 + "/directory")
    assert response.status_code == 404
    assert error_of(response)["error"] == "no_such_vault"


async def test_oversized_body_is_refused_before_reading(
    client: httpx.AsyncClient, vault: Vault
) -> None:
    big = b"{" + b" " * (2 << 20) + b"}"
    response = await client.post(
        f"/v1/vaults/{vault.id}/directory", content=big,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413
    assert error_of(response)["error"] == "body_too_large"
    assert len((await client.get(f"/v1/vaults/{vault.id}/directory")).json()["links"]) == 1


async def test_audit_chain_verifies_and_the_database_refuses_edits(
    relay: Relay, vault: Vault
) -> None:
    async with relay.read() as conn:
        assert await audit.verify_chain(conn, vault.id) == 2
    with pytest.raises(DBAPIError):
        async with relay.tx() as tx:
            await tx.conn.execute(update(audit_events).values(action="rewritten"))
    with pytest.raises(DBAPIError):
        async with relay.tx() as tx:
            await tx.conn.execute(text("DELETE FROM audit_events"))
    async with relay.read() as conn:
        assert await audit.verify_chain(conn, vault.id) == 2


async def test_audit_chain_detects_a_changed_event(relay: Relay, vault: Vault) -> None:
    async with relay.read() as conn:
        rows = [dict(r) for r in (await conn.execute(select(audit_events))).mappings()]
    rows[-1]["action"] = "something.else"
    assert audit.event_hash(rows[-1]["prev_hash"], rows[-1]) != rows[-1]["hash"]


async def test_directory_links_are_stored_verbatim(relay: Relay, vault: Vault) -> None:
    async with relay.read() as conn:
        stored = (await conn.execute(select(directory_links.c.token))).scalars().all()
    assert stored == vault.links


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_bodies_on_methods_without_one_are_refused_unread(
    client: httpx.AsyncClient, vault: Vault, method: str
) -> None:
    response = await client.request(
        method, f"/v1/vaults/{vault.id}/whoami", content=b"x" * 1000,
        headers={"signature-input": "sealbox=();keyid=\"" + vault.approvers[0].id + "\"",
                 "signature": "sealbox=:AA==:"},
    )  # fmt: skip
    assert response.status_code == 413
    assert error_of(response)["error"] == "body_too_large"
