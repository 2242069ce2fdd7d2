"""Client-assertion JWTs: ours verify with PyJWT and joserfc, theirs with ours; others refused."""

from __future__ import annotations

import json

import jwt as pyjwt
import pytest
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import OKPKey

from sealbox.crypto import jwt
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, SignatureInvalid

KEY = SigningKey._from_seed(bytes(range(7, 39)))
CLAIMS = {"iss": "cli_x", "sub": "cli_x", "aud": "http://relay/oauth/token", "exp": 10, "jti": "j"}


def test_ours_verifies_with_pyjwt() -> None:
    token = jwt.sign_jwt(KEY, CLAIMS)
    decoded = pyjwt.decode(
        token, KEY.verify_key().to_pem(), algorithms=["EdDSA"], audience=CLAIMS["aud"],
        options={"verify_exp": False},
    )  # fmt: skip
    assert decoded == CLAIMS


def test_pyjwt_and_joserfc_verify_with_ours() -> None:
    theirs = pyjwt.encode(CLAIMS, KEY.to_pem(), algorithm="EdDSA")
    assert jwt.verify_jwt(theirs, KEY.verify_key()) == CLAIMS
    # joserfc uses RFC 9864's fully-specified name for the same algorithm.
    other = joserfc_jwt.encode(
        {"alg": "Ed25519"}, CLAIMS, OKPKey.import_key(KEY.to_pem()), algorithms=["Ed25519"]
    )
    assert jwt.verify_jwt(other, KEY.verify_key()) == CLAIMS


def test_another_key_does_not_verify() -> None:
    token = jwt.sign_jwt(SigningKey.generate(), CLAIMS)
    with pytest.raises(SignatureInvalid):
        jwt.verify_jwt(token, KEY.verify_key())


def _forged(header: dict[str, object], payload: bytes | None = None) -> str:
    body = payload if payload is not None else json.dumps(CLAIMS).encode()
    signing_input = b64u_encode(json.dumps(header).encode()) + "." + b64u_encode(body)
    return signing_input + "." + b64u_encode(KEY.sign(signing_input.encode()))


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "HS256"},
        {"alg": "ES256"},
        {"alg": "EdDSA", "jwk": {"kty": "OKP"}},
        {"alg": "EdDSA", "crit": ["b64"], "b64": False},
        {"alg": "EdDSA", "typ": "at+jwt"},
        {"typ": "JWT"},
    ],
)
def test_other_headers_are_refused_before_the_signature(header: dict[str, object]) -> None:
    with pytest.raises(MalformedInput):
        jwt.verify_jwt(_forged(header), KEY.verify_key())


def test_duplicate_claims_are_refused() -> None:
    payload = b'{"iss":"cli_x","iss":"cli_y"}'
    with pytest.raises(MalformedInput, match="twice"):
        jwt.verify_jwt(_forged({"alg": "EdDSA"}, payload), KEY.verify_key())


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "x" * 5000, 7])
def test_malformed_tokens(token: object) -> None:
    with pytest.raises(MalformedInput):
        jwt.verify_jwt(token, KEY.verify_key())
