"""An agent's side: profile names, its saved profile, and the client assertions it signs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest

from sealbox.client import agents, credentials
from sealbox.client import profile as profiles
from sealbox.crypto import secrets as sx
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.errors import CertificateInvalid, LoginFailed, MalformedInput, NotLoggedIn
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.directory import DirectoryHead
from sealbox.protocol.statements import ApproverRecord, ClientConstraints, ClientInfo


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Deploy Bot", "deploy-bot"), ("  CI / nightly #2 ", "ci-nightly-2"), ("Déjà Vu", "deja-vu")],
)
def test_profile_names_are_slugified(name: str, slug: str) -> None:
    assert agents.slug(name) == slug


def test_a_name_without_letters_needs_a_profile_name() -> None:
    with pytest.raises(MalformedInput) as refused:
        agents.slug("!!!")
    assert "--profile" in str(refused.value.hint)


def test_an_assertion_is_what_rfc_7523_asks_for() -> None:
    key = SigningKey.generate()
    client = ids.new_id(ids.CLIENT)
    token = credentials.assertion(key, client, "https://relay.example/oauth/token", now=1000)
    claims = pyjwt.decode(
        token, key.verify_key().to_pem(), algorithms=["EdDSA"],
        audience="https://relay.example/oauth/token", options={"verify_exp": False},
    )  # fmt: skip
    assert claims["iss"] == claims["sub"] == client
    assert claims["exp"] - claims["iat"] <= 300
    again = credentials.assertion(key, client, "https://relay.example/oauth/token", now=1000)
    assert pyjwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_an_agent_profile_round_trips_and_keeps_its_token_endpoint() -> None:
    saved = profiles.Profile(
        server="http://relay", vault=ids.new_id(ids.VAULT), fingerprint="sha256:" + "a" * 64,
        head=DirectoryHead(seq=0, hash="sha256:" + "b" * 64), client_id=ids.new_id(ids.CLIENT),
        client_name="Deploy Bot", key=SigningKey.generate(), certificate="x.y.z",
        access_token="", refresh_token="", expires_at=0, auth="agent",
        token_endpoint="http://relay/oauth/token", client_secret=None,
    )  # fmt: skip
    again = profiles.Profile.from_json(saved.to_json())
    assert again.to_json() == saved.to_json()
    assert again.auth == "agent"
    assert again.token_endpoint == "http://relay/oauth/token"
    broken = saved.to_json()
    del broken["token_endpoint"]
    with pytest.raises(MalformedInput):
        profiles.Profile.from_json(broken)


def test_a_persons_profile_json_has_no_agent_fields() -> None:
    person = profiles.Profile(
        server="http://relay", vault=ids.new_id(ids.VAULT), fingerprint="sha256:" + "a" * 64,
        head=DirectoryHead(seq=0, hash="sha256:" + "b" * 64), client_id=ids.new_id(ids.CLIENT),
        client_name="bo", key=SigningKey.generate(), certificate="x.y.z", access_token="a",
        refresh_token="r", expires_at=5,
    )  # fmt: skip
    assert "token_endpoint" not in person.to_json()


# --- `sealbox agent create` against a scripted relay -------------------------------------------

SERVER = "http://relay.test"
NOW = 1_800_000_000


class ScriptedRelay:
    """The relay's agent endpoints: what it hands back is the test's to choose."""

    def __init__(self) -> None:
        self.vault = ids.new_id(ids.VAULT)
        self.approver_sig = SigningKey.generate()
        self.approver = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="ana", kind="terminal", tier="synced",
            hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=self.approver_sig.verify_key(),
        )  # fmt: skip
        self.links = [dirs.genesis_link(self.vault, self.approver, self.approver_sig, now=NOW)]
        self.asked: dict[str, Any] = {}
        self.state = "approved"
        self.certify: Callable[[ClientInfo], tuple[ClientInfo, SigningKey, str]] = lambda info: (
            info,
            self.approver_sig,
            self.approver.id,
        )

    def certificate(self) -> str:
        directory = dirs.verify_directory(self.links, pinned=dirs.vault_fingerprint(self.links[0]))
        asked = ClientInfo(id=self.asked["client_id"], kind="agent", name=self.asked["name"],
                           sig_pk=VerifyKey.from_text(self.asked["sig_pk"]))  # fmt: skip
        info, key, issuer = self.certify(asked)
        if issuer != self.approver.id:  # a key the directory does not hold
            other = ApproverRecord(
                id=issuer, name="mallory", kind="terminal", tier="synced",
                hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=key.verify_key(),
            )  # fmt: skip
            link = dirs.genesis_link(self.vault, other, key, now=NOW)
            directory = dirs.verify_directory([link], pinned=dirs.vault_fingerprint(link))
        return issue_certificate(
            directory, issuer=issuer, key=key, client=info, scopes=self.asked["scopes"],
            constraints=ClientConstraints(not_after=NOW + 86400), now=NOW,
        )  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        base = f"/v1/vaults/{self.vault}"
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"token_endpoint": f"{SERVER}/oauth/token"})
        if path == f"{base}/agents" and request.method == "POST":
            assert request.headers["authorization"] == "Bearer sbx_at_person"
            self.asked = json.loads(request.content)
            return httpx.Response(201, json={"scopes": self.asked["scopes"],
                                             "expires_at": NOW + 900})  # fmt: skip
        if path == f"{base}/agents/{self.asked.get('client_id')}/registration":
            certificate = self.certificate() if self.state == "approved" else None
            return httpx.Response(
                200,
                json={
                    "client_id": self.asked["client_id"],
                    "state": self.state,
                    "certificate": certificate,
                },
            )
        if path == f"{base}/directory":
            return httpx.Response(200, json={"links": self.links, "head": 0})
        return httpx.Response(404, json={"error": "not_found", "message": "no", "hint": ""})


@pytest.fixture
def person(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ScriptedRelay, Path]:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path / "config"))
    relay = ScriptedRelay()
    path = tmp_path / "config" / "profiles" / "default.json"
    link0 = relay.links[0]
    profiles.save(path, profiles.Profile(
        server=SERVER, vault=relay.vault, fingerprint=dirs.vault_fingerprint(link0),
        head=dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0)).head,
        client_id=ids.new_id(ids.CLIENT), client_name="bo", key=SigningKey.generate(),
        certificate="x.y.z", access_token="sbx_at_person", refresh_token="sbx_rt_person",
        expires_at=NOW + 3600,
    ), overwrite=False)  # fmt: skip
    return relay, path


def _create(relay: ScriptedRelay, path: Path, *, secret: bool = False) -> agents.AgentCredentials:
    with httpx.Client(transport=httpx.MockTransport(relay.handle)) as http:
        return agents.create(
            http, person_path=path, name="Deploy Bot", scopes=["read", "items:shop/prod/*"],
            client_secret=secret, on_prompt=lambda _: None, on_wait=lambda _: None,
            sleep=lambda _: None, clock=lambda: NOW,
        )  # fmt: skip


def test_only_the_public_key_and_the_secrets_hash_reach_the_relay(
    person: tuple[ScriptedRelay, Path],
) -> None:
    relay, path = person
    made = _create(relay, path, secret=True)
    assert made.client_secret is not None
    assert made.client_secret.startswith("sbx_cs_")
    sent = json.dumps(relay.asked)
    assert made.key.to_text() not in sent
    assert made.client_secret not in sent
    assert relay.asked["client_secret_hash"] == sx.token_hash(made.client_secret)
    assert relay.asked["sig_pk"] == made.key.verify_key().to_text()
    assert made.cert.client.kind == "agent"
    assert made.token_endpoint == f"{SERVER}/oauth/token"
    assert made.key.to_text() not in repr(made)


@pytest.mark.parametrize("swap", ["another_key", "human", "not_an_approver"])
def test_a_certificate_the_vault_did_not_give_this_agent_is_refused(
    person: tuple[ScriptedRelay, Path], swap: str
) -> None:
    relay, path = person
    mallory = SigningKey.generate()
    relay.certify = {
        "another_key": lambda info: (
            ClientInfo(info.id, "agent", info.name, mallory.verify_key()),
            relay.approver_sig,
            relay.approver.id,
        ),
        "human": lambda info: (
            ClientInfo(info.id, "human", info.name, info.sig_pk),
            relay.approver_sig,
            relay.approver.id,
        ),
        "not_an_approver": lambda info: (info, mallory, ids.new_id(ids.APPROVER)),
    }[swap]
    with pytest.raises(CertificateInvalid):
        _create(relay, path)


def test_a_denied_agent_ends_the_wait(person: tuple[ScriptedRelay, Path]) -> None:
    relay, path = person
    relay.state = "denied"
    with pytest.raises(LoginFailed, match="denied"):
        _create(relay, path)


def test_a_machine_or_agent_profile_cannot_ask(person: tuple[ScriptedRelay, Path]) -> None:
    relay, path = person
    saved = profiles.load(path)
    profiles.save(path, dataclasses.replace(saved, auth="signature"), overwrite=True)
    with pytest.raises(NotLoggedIn, match="person's login"):
        _create(relay, path)
    assert relay.asked == {}


def test_a_person_token_that_would_lapse_during_the_wait_is_refreshed_first(
    person: tuple[ScriptedRelay, Path],
) -> None:
    relay, path = person
    saved = profiles.load(path)
    profiles.save(path, dataclasses.replace(saved, expires_at=NOW + 600), overwrite=True)
    refreshed: list[str] = []
    handle = relay.handle

    def with_refresh(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            refreshed.append(request.content.decode())
            return httpx.Response(200, json={
                "access_token": "sbx_at_person", "refresh_token": "sbx_rt_next",
                "token_type": "Bearer", "expires_in": 3600, "vault": relay.vault,
                "client_id": saved.client_id,
            })  # fmt: skip
        return handle(request)

    relay.handle = with_refresh  # type: ignore[method-assign]
    _create(relay, path)
    assert len(refreshed) == 1
    assert "grant_type=refresh_token" in refreshed[0]
    assert profiles.load(path).refresh_token == "sbx_rt_next"
