"""Agents: a person asks, an approver certifies, the agent gets tokens by client_credentials.

Client assertions are signed here with PyJWT (an independent JOSE
implementation), so the relay is held to RFC 7523 as other tools speak it.
Every refusal of the token endpoint is a clear RFC 6749 error, is audited, and
issues nothing.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from login_support import (
    Human,
    audit_rows,
    certificate,
    oauth_error,
    poll,
    signed,
    start_login,
    whoami,
)
from relay_support import Vault, error_of
from sqlalchemy import select, update
from test_relay_network import INSIDE, OUTSIDE, allow_only, source

from sealbox.crypto import secrets as sx
from sealbox.server.http.oauth import token_endpoint
from sealbox.server.ratelimit import RateLimiter
from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping
from sealbox.server.services.agents import ASSERTION_TYPE
from sealbox.server.store.tables import agents, clients, tokens

pytestmark = pytest.mark.anyio


class Agent(Human):
    def __init__(self, name: str = "Deploy Bot") -> None:
        super().__init__(name, kind="agent")
        self.secret: str | None = None

    def body(self, scopes: list[str], *, secret: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "client_id": self.id, "name": self.name, "sig_pk": self.sig.verify_key().to_text(),
            "scopes": scopes,
        }  # fmt: skip
        if secret:
            self.secret = "sbx_cs_" + secrets.token_urlsafe(32)
            body["client_secret_hash"] = sx.token_hash(self.secret)
        return body


async def login(
    client: httpx.AsyncClient, relay: Relay, vault: Vault,
    scopes: tuple[str, ...] = ("read", "write"),
) -> tuple[Human, dict[str, Any]]:  # fmt: skip
    """A person logged in with a certificate of ``scopes``; the client and its tokens."""
    human = Human()
    started = await start_login(client, vault, human)
    cert = certificate(vault, relay, human.info, scopes=scopes)
    approved = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/device-requests/{started['user_code']}"
        "/approve", by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    tokens_ = await poll(client, started["device_code"], human)
    assert tokens_.status_code == 200, tokens_.text
    return human, dict(tokens_.json())


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def ask(
    client: httpx.AsyncClient, vault: Vault, person_token: str, agent: Agent,
    scopes: list[str] | None = None, *, secret: bool = False,
) -> httpx.Response:  # fmt: skip
    return await client.post(
        f"/v1/vaults/{vault.id}/agents", headers=bearer(person_token),
        json=agent.body(scopes or ["read", "items:shop/prod/*"], secret=secret),
    )  # fmt: skip


async def approve(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, agent: Agent,
    scopes: tuple[str, ...] = ("items:shop/prod/*", "read"), *, kind: str = "agent",
    info: Any = None,
) -> httpx.Response:  # fmt: skip
    if info is None:
        info = Human(agent.name, kind=kind)
        info.id, info.sig = agent.id, agent.sig
        info = info.info
    cert = certificate(vault, relay, info, scopes=scopes)
    return await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/agent-requests/{agent.id}/approve",
        by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip


async def approved_agent(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, *, secret: bool = False
) -> tuple[Agent, str]:
    """An approved agent, and the access token of the person who asked for it."""
    _, person = await login(client, relay, vault)
    agent = Agent()
    asked = await ask(client, vault, person["access_token"], agent, secret=secret)
    assert asked.status_code == 201, asked.text
    done = await approve(client, relay, vault, agent)
    assert done.status_code == 200, done.text
    return agent, person["access_token"]


def assertion(agent: Agent, relay: Relay, **changes: Any) -> str:
    now = relay.now()
    claims = {
        "iss": agent.id, "sub": agent.id, "aud": token_endpoint(relay), "iat": now,
        "exp": now + 120, "jti": secrets.token_urlsafe(16),
    }  # fmt: skip
    claims.update(changes)
    key = changes.pop("key", None) or agent.sig
    claims.pop("key", None)
    return pyjwt.encode(claims, key.to_pem(), algorithm="EdDSA")


async def token_by_assertion(
    client: httpx.AsyncClient, jwt_text: str, **extra: str
) -> httpx.Response:
    return await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": jwt_text, **extra,
    })  # fmt: skip


async def token_rows(relay: Relay) -> list[tuple[Any, ...]]:
    async with relay.read() as conn:
        return sorted(tuple(r) for r in (await conn.execute(select(tokens))).all())


async def refusals(relay: Relay, vault: str) -> list[dict[str, Any]]:
    return [r for r in await audit_rows(relay, vault) if r["action"] == "token.refused"]


# --- asking, approving, polling ------------------------------------------------------------------


async def test_a_person_asks_an_approver_approves_and_the_agent_gets_a_token(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    person, tokens_ = await login(client, relay, vault)
    agent = Agent()
    asked = await ask(client, vault, tokens_["access_token"], agent)
    assert asked.status_code == 201, asked.text
    assert asked.json()["requested_by"] == person.id

    listed = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/agent-requests",
                          by=vault.approvers[0])  # fmt: skip
    [entry] = listed.json()["agent_requests"]
    assert entry["client_id"] == agent.id
    assert entry["name"] == "Deploy Bot"
    assert entry["requested_by_name"] == person.name
    assert entry["scopes"] == ["items:shop/prod/*", "read"]
    assert entry["key_safety_code"] == agent.sig.verify_key().safety_code()

    status = f"/v1/vaults/{vault.id}/agents/{agent.id}/registration"
    waiting = await client.get(status, headers=bearer(tokens_["access_token"]))
    assert waiting.json() == {"client_id": agent.id, "state": "pending", "certificate": None}

    done = await approve(client, relay, vault, agent)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "active"
    got = (await client.get(status, headers=bearer(tokens_["access_token"]))).json()
    assert got["state"] == "approved"
    assert got["certificate"]

    issued = await token_by_assertion(client, assertion(agent, relay))
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 3600
    assert body["scope"] == "read"
    assert body["client_id"] == agent.id
    assert issued.headers["cache-control"] == "no-store"
    who = await whoami(client, vault.id, body["access_token"])
    assert who.json()["client_kind"] == "agent"
    assert who.json()["id"] == agent.id
    actions = [r["action"] for r in await audit_rows(relay, vault.id)]
    assert {"agent.requested", "agent.approved", "token.issued"} <= set(actions)


async def test_only_a_persons_session_may_ask(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    by_approver = await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/agents",
                               by=vault.approvers[0], json=Agent().body(["read"]))  # fmt: skip
    assert by_approver.status_code == 403
    agent, _ = await approved_agent(client, relay, vault)
    token = (await token_by_assertion(client, assertion(agent, relay))).json()["access_token"]
    by_agent = await ask(client, vault, token, Agent("child"))
    assert by_agent.status_code == 403
    assert error_of(by_agent)["error"] == "person_required"
    async with relay.read() as conn:
        assert len((await conn.execute(select(agents))).all()) == 1


@pytest.mark.parametrize(
    ("scopes", "code"),
    [(["items:shop/prod/*"], "invalid_scope"), (["read", "role:shop:viewer"], "invalid_scope"),
     (["read", "items:../x"], "invalid_scope")],
)  # fmt: skip
async def test_bad_scopes_are_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, scopes: list[str], code: str
) -> None:
    _, person = await login(client, relay, vault)
    refused = await ask(client, vault, person["access_token"], Agent(), scopes)
    assert refused.status_code == 400
    assert error_of(refused)["error"] == code


async def test_only_the_requester_sees_the_registration(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, alice = await login(client, relay, vault)
    _, bob = await login(client, relay, vault)
    agent = Agent()
    await ask(client, vault, alice["access_token"], agent)
    seen = await client.get(f"/v1/vaults/{vault.id}/agents/{agent.id}/registration",
                            headers=bearer(bob["access_token"]))  # fmt: skip
    assert seen.status_code == 404


async def test_deny_makes_no_client_and_the_person_is_told(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, person = await login(client, relay, vault)
    agent = Agent()
    await ask(client, vault, person["access_token"], agent, secret=True)
    denied = await signed(client, relay, "POST",
                          f"/v1/vaults/{vault.id}/agent-requests/{agent.id}/deny",
                          by=vault.approvers[0])  # fmt: skip
    assert denied.status_code == 200
    assert denied.json()["state"] == "denied"
    got = await client.get(f"/v1/vaults/{vault.id}/agents/{agent.id}/registration",
                           headers=bearer(person["access_token"]))  # fmt: skip
    assert got.json()["state"] == "denied"
    async with relay.read() as conn:
        assert (await conn.execute(select(clients).where(clients.c.id == agent.id))).first() is None
    refused = await token_by_assertion(client, assertion(agent, relay))
    assert refused.status_code == 400
    assert oauth_error(refused) == "unauthorized_client"


@pytest.mark.parametrize("wrong", ["kind", "key", "widened"])
async def test_a_certificate_that_does_not_match_is_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, wrong: str
) -> None:
    _, person = await login(client, relay, vault)
    agent = Agent()
    await ask(client, vault, person["access_token"], agent)
    if wrong == "kind":
        done = await approve(client, relay, vault, agent, kind="machine")
    elif wrong == "key":
        other = Agent()
        other.id = agent.id
        done = await approve(client, relay, vault, agent, info=other.info)
    else:
        done = await approve(client, relay, vault, agent, scopes=("read", "write"))
    assert done.status_code == 400
    assert error_of(done)["error"] == ("scope_widened" if wrong == "widened"
                                       else "certificate_mismatch")  # fmt: skip
    async with relay.read() as conn:
        assert (await conn.execute(select(clients).where(clients.c.id == agent.id))).first() is None
        state = (await conn.execute(select(agents.c.state))).scalar_one()
    assert state == "pending"


async def test_an_approver_may_narrow_the_scopes(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, person = await login(client, relay, vault)
    agent = Agent()
    await ask(client, vault, person["access_token"], agent, ["read", "write", "items:shop/*/*"])
    done = await approve(client, relay, vault, agent, scopes=("read", "items:shop/*/*"))
    assert done.status_code == 200, done.text
    assert done.json()["scopes"] == ["items:shop/*/*", "read"]
    issued = await token_by_assertion(client, assertion(agent, relay), scope="write")
    assert oauth_error(issued) == "invalid_scope"


# --- private_key_jwt refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["wrong_key", "wrong_aud", "expired", "too_long", "wrong_subject", "unknown", "no_jti",
     "not_yet"],
)  # fmt: skip
async def test_bad_assertions_are_refused_audited_and_issue_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, case: str
) -> None:
    agent, _ = await approved_agent(client, relay, vault)
    now = relay.now()
    changes: dict[str, Any] = {
        "wrong_key": {"key": Agent().sig},
        "wrong_aud": {"aud": "http://elsewhere.example/oauth/token"},
        "expired": {"exp": now - 120, "iat": now - 300},
        "too_long": {"exp": now + 3600},
        "wrong_subject": {"sub": Agent().id},
        "no_jti": {"jti": ""},
        "not_yet": {"nbf": now + 600},
        "unknown": {},
    }[case]
    subject = Agent() if case == "unknown" else agent
    before = await token_rows(relay)
    refused = await token_by_assertion(client, assertion(subject, relay, **changes))
    assert refused.status_code == 401, refused.text
    assert oauth_error(refused) == "invalid_client"
    assert refused.json()["hint"]
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["error"] == "invalid_client"
    assert event["client_id"] == (None if case == "unknown" else agent.id)


async def test_a_replayed_assertion_is_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault)
    once = assertion(agent, relay)
    assert (await token_by_assertion(client, once)).status_code == 200
    before = await token_rows(relay)
    again = await token_by_assertion(client, once)
    assert again.status_code == 401
    assert oauth_error(again) == "invalid_client"
    assert "already used" in again.json()["error_description"]
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["reason"] == "replayed"


async def test_malformed_requests_are_invalid_request(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault)
    not_jwt = await token_by_assertion(client, "not.a.jwt")
    assert not_jwt.status_code == 400
    assert oauth_error(not_jwt) == "invalid_request"
    wrong_type = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": "urn:x",
        "client_assertion": assertion(agent, relay),
    })  # fmt: skip
    assert oauth_error(wrong_type) == "invalid_request"
    nothing = await client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert nothing.status_code == 401
    assert oauth_error(nothing) == "invalid_client"


async def test_a_disabled_agent_is_refused_at_once_and_comes_back_when_enabled(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault)
    token = (await token_by_assertion(client, assertion(agent, relay))).json()["access_token"]
    off = await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/clients/{agent.id}/disable",
                       by=vault.approvers[0])  # fmt: skip
    assert off.status_code == 200
    assert off.json()["tokens_revoked"] == 1
    assert (await whoami(client, vault.id, token)).status_code == 401
    before = await token_rows(relay)
    refused = await token_by_assertion(client, assertion(agent, relay))
    assert refused.status_code == 400
    assert oauth_error(refused) == "unauthorized_client"
    assert "disabled" in refused.json()["error_description"]
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["reason"] == "not_active"
    on = await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/clients/{agent.id}/enable",
                      by=vault.approvers[0])  # fmt: skip
    assert on.status_code == 200
    assert (await whoami(client, vault.id, token)).status_code == 401  # old tokens stay dead
    assert (await token_by_assertion(client, assertion(agent, relay))).status_code == 200


# --- client secrets -----------------------------------------------------------------------------


async def test_client_secret_basic_and_post(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault, secret=True)
    assert agent.secret is not None
    async with relay.read() as conn:
        stored = (await conn.execute(select(agents.c.secret_hash))).scalar_one()
    assert stored == sx.token_hash(agent.secret)
    assert agent.secret not in stored
    basic = base64.b64encode(f"{agent.id}:{agent.secret}".encode()).decode()
    by_basic = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                 headers={"authorization": f"Basic {basic}"})  # fmt: skip
    assert by_basic.status_code == 200, by_basic.text
    by_post = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": agent.id, "client_secret": agent.secret,
    })  # fmt: skip
    assert by_post.status_code == 200, by_post.text
    audited = [r["detail"]["auth"] for r in await audit_rows(relay, vault.id)
               if r["action"] == "token.issued" and r["client_id"] == agent.id]  # fmt: skip
    assert audited == ["client_secret_basic", "client_secret_post"]


@pytest.mark.parametrize("made", [True, False])
async def test_a_wrong_secret_is_refused_and_audited(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, made: bool
) -> None:
    agent, _ = await approved_agent(client, relay, vault, secret=made)
    before = await token_rows(relay)
    refused = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": agent.id,
        "client_secret": "sbx_cs_" + secrets.token_urlsafe(32),
    })  # fmt: skip
    assert refused.status_code == 401
    assert oauth_error(refused) == "invalid_client"
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["reason"] == "wrong_secret"
    assert event["client_id"] == agent.id


async def test_two_ways_of_authentication_at_once_are_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault, secret=True)
    both = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": agent.id,
        "client_secret": str(agent.secret), "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(agent, relay),
    })  # fmt: skip
    assert both.status_code == 400
    assert oauth_error(both) == "invalid_request"


# --- listing and revoking ------------------------------------------------------------------------


async def test_list_and_revoke_for_good(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault, secret=True)
    token = (await token_by_assertion(client, assertion(agent, relay))).json()["access_token"]
    base = f"/v1/vaults/{vault.id}/agents"
    listed = await signed(client, relay, "GET", base, by=vault.approvers[0])
    [entry] = listed.json()["agents"]
    assert entry["state"] == "active"
    assert entry["client_secret"] is True
    revoked = await signed(client, relay, "POST", f"{base}/{agent.id}/revoke",
                           by=vault.approvers[0])  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["client_secret"] is False
    assert (await whoami(client, vault.id, token)).status_code == 401
    enable = await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/clients/{agent.id}/enable",
                          by=vault.approvers[0])  # fmt: skip
    assert enable.status_code == 409
    assert error_of(enable)["error"] == "agent_revoked"
    by_secret = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": agent.id,
        "client_secret": str(agent.secret),
    })  # fmt: skip
    assert by_secret.status_code == 401
    by_key = await token_by_assertion(client, assertion(agent, relay))
    assert by_key.status_code == 400
    assert oauth_error(by_key) == "unauthorized_client"
    events = [r for r in await audit_rows(relay, vault.id) if r["action"] == "agent.revoked"]
    assert events
    assert events[0]["detail"]["tokens_revoked"] == 1


async def test_only_approvers_list_and_revoke(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, person = await approved_agent(client, relay, vault)
    base = f"/v1/vaults/{vault.id}/agents"
    assert (await client.get(base, headers=bearer(person))).status_code == 403
    refused = await client.post(f"{base}/{agent.id}/revoke", headers=bearer(person))
    assert refused.status_code == 403


async def test_an_agent_over_its_rate_limit_gets_429_and_keeps_its_assertion(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault)
    relay.limiter = RateLimiter(rate=0.001, burst=2)
    codes = [(await token_by_assertion(client, assertion(agent, relay))).status_code
             for _ in range(2)]  # fmt: skip
    kept = assertion(agent, relay)
    before = await token_rows(relay)
    limited = await token_by_assertion(client, kept)
    assert codes == [200, 200]
    assert limited.status_code == 429
    assert oauth_error(limited) == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["reason"] == "rate_limited"
    # The limited assertion was not spent: it works once the budget allows.
    relay.limiter = RateLimiter(rate=1000, burst=1000)
    assert (await token_by_assertion(client, kept)).status_code == 200


@pytest.mark.parametrize(
    ("asked", "code"),
    [(["read", "write", "items:shop/dev/*"], "beyond_the_person"),
     (["read"], "outside_scope"),
     (["read", "items:shop/prod/*"], "outside_scope"),
     (["read", "items:shop/*/*"], "outside_scope"),
     (["read", "items:shop/dev/api"], None),
     (["read", "items:shop/dev/*"], None)],
)  # fmt: skip
async def test_an_agent_never_gets_more_than_its_person(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, asked: list[str], code: str | None
) -> None:
    _, person = await login(client, relay, vault, scopes=("read", "items:shop/dev/*"))
    answer = await ask(client, vault, person["access_token"], Agent(), asked)
    if code is None:
        assert answer.status_code == 201, answer.text
        return
    assert answer.status_code == 403
    assert error_of(answer)["error"] == code
    async with relay.read() as conn:
        assert (await conn.execute(select(agents))).first() is None
    refused = [r for r in await audit_rows(relay, vault.id) if r["action"] == "request.refused"]
    assert [r["detail"]["error"] for r in refused] == [code]


async def test_a_waiting_agent_is_denied_not_revoked_but_an_expired_one_may_be(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    _, person = await login(client, relay, vault)
    agent = Agent()
    await ask(client, vault, person["access_token"], agent, secret=True)
    url = f"/v1/vaults/{vault.id}/agents/{agent.id}/revoke"
    waiting = await signed(client, relay, "POST", url, by=vault.approvers[0])
    assert waiting.status_code == 409
    assert error_of(waiting)["error"] == "agent_pending"
    async with relay.tx() as tx:  # the request's 15 minutes pass
        await tx.conn.execute(update(agents).values(expires_at=relay.now() - 1))
    listed = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/agents",
                          by=vault.approvers[0])  # fmt: skip
    assert listed.json()["agents"][0]["state"] == "expired"
    gone = await signed(client, relay, "POST", url, by=vault.approvers[0])
    assert gone.status_code == 200, gone.text
    assert gone.json()["state"] == "revoked"
    assert gone.json()["client_secret"] is False


async def test_the_sweeper_forgets_unanswered_requests_but_never_a_revoked_agent(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    revoked, person = await approved_agent(client, relay, vault, secret=True)
    url = f"/v1/vaults/{vault.id}/agents/{revoked.id}/revoke"
    assert (await signed(client, relay, "POST", url, by=vault.approvers[0])).status_code == 200
    waiting, denied = Agent("waiting"), Agent("denied")
    await ask(client, vault, person, waiting, secret=True)
    await ask(client, vault, person, denied)
    deny = f"/v1/vaults/{vault.id}/agent-requests/{denied.id}/deny"
    assert (await signed(client, relay, "POST", deny, by=vault.approvers[0])).status_code == 200
    await housekeeping.sweep(relay, relay.now() + 900 + 3601)
    async with relay.read() as conn:
        kept = (await conn.execute(select(agents.c.client_id, agents.c.state))).all()
    assert [tuple(r) for r in kept] == [(revoked.id, "revoked")]
    enable = f"/v1/vaults/{vault.id}/clients/{revoked.id}/enable"
    refused = await signed(client, relay, "POST", enable, by=vault.approvers[0])
    assert refused.status_code == 409


async def test_an_agent_outside_the_vaults_allowlist_gets_no_token(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    agent, _ = await approved_agent(client, relay, vault, secret=True)
    await allow_only(client, relay, vault, "10.1.0.0/16")
    before = await token_rows(relay)
    async with source(client, OUTSIDE) as outside:
        # Refused before the signature is looked at: even a garbage one gets this answer.
        for jwt_text in (assertion(agent, relay), assertion(agent, relay, key=Agent().sig)):
            refused = await outside.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": jwt_text,
            })  # fmt: skip
            assert refused.status_code == 403
            assert refused.json()["error"] == "network_not_allowed"
            assert refused.json()["error_description"]
    assert await token_rows(relay) == before
    [event] = await refusals(relay, vault.id)
    assert event["detail"]["reason"] == "network_not_allowed"
    assert event["source_ip"] == OUTSIDE
    async with source(client, INSIDE) as inside:
        by_secret = await inside.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": agent.id,
            "client_secret": str(agent.secret),
        })  # fmt: skip
        assert by_secret.status_code == 200, by_secret.text
