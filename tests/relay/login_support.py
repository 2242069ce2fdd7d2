"""Helpers for the login, client and policy tests: signed approver calls, a CLI login, snapshots."""

from __future__ import annotations

from typing import Any

import httpx
from relay_support import Approver, Vault
from sqlalchemy import select

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo
from sealbox.server.relay import Relay
from sealbox.server.store.tables import (
    audit_events,
    clients,
    device_codes,
    grants,
    policies,
    tokens,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DAY = 86400


async def signed(
    client: httpx.AsyncClient, relay: Relay, method: str, url: str, *, by: Approver | Human,
    json: Any = None, params: dict[str, str] | None = None,
) -> httpx.Response:  # fmt: skip
    """Send a request signed (RFC 9421) by an approver's or a client's key."""
    kwargs: dict[str, Any] = {"params": params} if params else {}
    if json is not None:
        kwargs["json"] = json
    request = client.build_request(method, url, **kwargs)
    key_id = by.id
    sign_request(request, key=by.sig, key_id=key_id, now=relay.now())
    return await client.send(request)


class Human:
    """What `sealbox login` generates: a client id and key."""

    def __init__(self, name: str = "alice@laptop", kind: str = "human") -> None:
        self.id = ids.new_id(ids.CLIENT)
        self.sig = SigningKey.generate()
        self.name = name
        self.kind = kind

    @property
    def info(self) -> ClientInfo:
        return ClientInfo(id=self.id, kind=self.kind, name=self.name, sig_pk=self.sig.verify_key())

    def form(self, vault: str) -> dict[str, str]:
        return {"vault": vault, "client_id": self.id, "client_name": self.name,
                "sig_pk": self.sig.verify_key().to_text()}  # fmt: skip


def certificate(
    vault: Vault, relay: Relay, info: ClientInfo, *, approver: Approver | None = None,
    not_after: int | None = None, scopes: tuple[str, ...] = ("read",),
) -> str:  # fmt: skip
    approver = approver or vault.approvers[0]
    return issue_certificate(
        vault.directory(), issuer=approver.id, key=approver.sig, client=info, scopes=scopes,
        constraints=ClientConstraints(not_after=not_after or relay.now() + 90 * DAY),
        now=relay.now(),
    )  # fmt: skip


async def start_login(client: httpx.AsyncClient, vault: Vault, human: Human) -> dict[str, Any]:
    response = await client.post("/oauth/device_authorization", data=human.form(vault.id))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def poll(client: httpx.AsyncClient, device_code: str, human: Human) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": human.id},
    )


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def approve(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, user_code: str, human: Human
) -> httpx.Response:
    cert = certificate(vault, relay, human.info)
    return await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/device-requests/{user_code}/approve",
        by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip


async def login(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, human: Human | None = None
) -> tuple[Human, dict[str, Any]]:
    """A whole device-flow login; returns the client and the token response."""
    human = human or Human()
    started = await start_login(client, vault, human)
    approved = await approve(client, relay, vault, started["user_code"], human)
    assert approved.status_code == 200, approved.text
    response = await poll(client, started["device_code"], human)
    assert response.status_code == 200, response.text
    return human, dict(response.json())


async def whoami(client: httpx.AsyncClient, vault: str, access_token: str) -> httpx.Response:
    return await client.get(
        f"/v1/vaults/{vault}/whoami", headers={"authorization": f"Bearer {access_token}"}
    )


def oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 §5.2 error code of an OAuth endpoint's answer (checking its shape)."""
    assert response.status_code in (400, 401, 404, 409, 429), response.status_code
    body = response.json()
    assert {"error", "error_description"} <= set(body), body
    assert response.headers["cache-control"] == "no-store"
    return str(body["error"])


async def add_approver(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, name: str
) -> Approver:
    """Add a second approver to the vault's directory through the API."""
    new = Approver(name)
    link = dirs.append_link(
        vault.directory(), "add", new.record, signer=vault.approvers[0].id,
        key=vault.approvers[0].sig, now=relay.now(),
    )  # fmt: skip
    response = await client.post(f"/v1/vaults/{vault.id}/directory", json={"link": link})
    assert response.status_code == 201, response.text
    vault.links.append(link)
    vault.approvers.append(new)
    return new


async def snapshot(relay: Relay) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables these features write, to show a refused request changed nothing.

    The refusals' own audit events (``auth.refused``, ``request.refused``) are left out: a
    refusal is recorded, and that record is all it may write.
    """
    out = {}
    async with relay.read() as conn:
        for table in (clients, device_codes, tokens, grants, policies, audit_events):
            query = select(table)
            if table is audit_events:
                query = query.where(audit_events.c.action.not_in(REFUSAL_ACTIONS))
            rows = (await conn.execute(query)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


#: The audit events of refused requests.
REFUSAL_ACTIONS = ("auth.refused", "request.refused", "requests.throttled")


async def audit_rows(relay: Relay, vault: str) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        rows = (
            await conn.execute(
                select(audit_events)
                .where(audit_events.c.vault_id == vault)
                .order_by(audit_events.c.seq)
            )
        ).mappings()
        return [dict(r) for r in rows]
