"""An agent's side: profile names, its saved profile, and the client assertions it signs."""

from __future__ import annotations

import jwt as pyjwt
import pytest

from sealbox.client import agents, credentials
from sealbox.client import profile as profiles
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead


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
