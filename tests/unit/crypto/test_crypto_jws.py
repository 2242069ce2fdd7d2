"""Compact JWS: every strictness rule of the header, the parts and the payload."""

from __future__ import annotations

import string
from typing import Any

import pytest

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import b64u_encode, canonical_json, digest
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, SignatureInvalid

SIGNER = SigningKey._from_seed(bytes(range(32, 64)))
OTHER = SigningKey._from_seed(bytes(range(64, 96)))
TYP = labels.TYP_STORE
KID = "apv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
PAYLOAD: dict[str, Any] = {"vault": "v1", "items": [1, 2, 3], "note": "é"}


def _verify(token: object, *, typ: str = TYP, kid: str = KID, key: SigningKey = SIGNER) -> Any:
    return jws.verify(token, key.verify_key(), typ=typ, kid=kid)


def _hand_signed(header: bytes, payload: bytes, key: SigningKey = SIGNER) -> str:
    """A token whose signature is valid over whatever bytes we choose."""
    signing_input = f"{b64u_encode(header)}.{b64u_encode(payload)}"
    return f"{signing_input}.{b64u_encode(key.sign(signing_input.encode('ascii')))}"


def _header(**fields: Any) -> bytes:
    return canonical_json({"alg": "EdDSA", "kid": KID, "typ": TYP, **fields})


# --- Round trip --------------------------------------------------------------------------


def test_sign_verify_round_trip_and_exact_form() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    header_b64, payload_b64, sig_b64 = token.split(".")
    assert header_b64 == b64u_encode(
        b'{"alg":"EdDSA","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.store.v1"}'
    )
    assert payload_b64 == b64u_encode(canonical_json(PAYLOAD))
    assert len(sig_b64) == 86
    assert _verify(token) == PAYLOAD
    assert token == _hand_signed(_header(), canonical_json(PAYLOAD))


def test_sign_is_deterministic() -> None:
    assert jws.sign(SIGNER, TYP, KID, PAYLOAD) == jws.sign(SIGNER, TYP, KID, dict(PAYLOAD))


@pytest.mark.parametrize("typ", sorted(labels.ALL_STATEMENT_TYPES))
def test_every_statement_type_round_trips(typ: str) -> None:
    token = jws.sign(SIGNER, typ, KID, {})
    assert jws.read_header(token) == jws.UnverifiedHeader(typ=typ, kid=KID)
    assert _verify(token, typ=typ) == {}


def test_sign_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown statement type"):
        jws.sign(SIGNER, "sealbox.unknown.v1", KID, PAYLOAD)


# --- Parts and size ------------------------------------------------------------------------


@pytest.mark.parametrize("extra", ["", ".", ".x", "..", "a.b"])
def test_wrong_part_count(extra: str) -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    for bad in [token + extra if extra else token.rsplit(".", 1)[0], "", "a.b", "a.b.c.d.e"]:
        with pytest.raises(MalformedInput, match="three dot-separated parts"):
            _verify(bad)


@pytest.mark.parametrize("value", [None, 1, b"a.b.c", ["a", "b", "c"]])
def test_non_string_token(value: object) -> None:
    with pytest.raises(MalformedInput, match="compact JWS string"):
        _verify(value)
    with pytest.raises(MalformedInput, match="compact JWS string"):
        jws.read_header(value)


def test_token_too_large() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    padded = token + "A" * (jws.MAX_JWS_CHARS + 1 - len(token))
    assert len(padded) == jws.MAX_JWS_CHARS + 1
    with pytest.raises(MalformedInput, match="too large"):
        _verify(padded)
    with pytest.raises(MalformedInput, match="too large"):
        jws.statement_hash(padded)


def test_token_at_size_limit_is_parsed() -> None:
    # A statement exactly at the bound is looked at (and here verifies).
    base = jws.sign(SIGNER, TYP, KID, {"pad": ""})
    pad = "x" * ((jws.MAX_JWS_CHARS - len(base)) * 3 // 4)
    token = jws.sign(SIGNER, TYP, KID, {"pad": pad})
    assert len(token) <= jws.MAX_JWS_CHARS
    assert _verify(token) == {"pad": pad}


# --- Header --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"b64": False},
        {"jwk": {"kty": "OKP"}},
        {"x5u": "https://example.invalid"},
        {"cty": "JWT"},
    ],
    ids=lambda d: next(iter(d)),
)
def test_extra_header_parameters_rejected_even_with_valid_signature(extra: dict[str, Any]) -> None:
    token = _hand_signed(_header(**extra), canonical_json(PAYLOAD))
    with pytest.raises(MalformedInput, match="exactly alg, kid and typ"):
        _verify(token)


@pytest.mark.parametrize("drop", ["alg", "kid", "typ"])
def test_missing_header_parameter(drop: str) -> None:
    header = {"alg": "EdDSA", "kid": KID, "typ": TYP}
    del header[drop]
    with pytest.raises(MalformedInput, match="exactly alg, kid and typ"):
        _verify(_hand_signed(canonical_json(header), canonical_json(PAYLOAD)))


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256", "Ed25519", "eddsa", "", None, 1])
def test_other_algorithms_rejected(alg: object) -> None:
    token = _hand_signed(_header(alg=alg), canonical_json(PAYLOAD))
    with pytest.raises(MalformedInput, match="alg must be EdDSA"):
        _verify(token)


def test_alg_none_with_empty_signature_rejected() -> None:
    header = b64u_encode(_header(alg="none"))
    with pytest.raises(MalformedInput, match="alg must be EdDSA"):
        _verify(f"{header}.{b64u_encode(canonical_json(PAYLOAD))}.")


@pytest.mark.parametrize("typ", ["JWT", "sealbox.store.v2", "sealbox.store", "", None, 7, ["x"]])
def test_unknown_typ_rejected(typ: object) -> None:
    token = _hand_signed(_header(typ=typ), canonical_json(PAYLOAD))
    with pytest.raises(MalformedInput, match="unknown statement type"):
        _verify(token)


@pytest.mark.parametrize(
    "kid",
    [
        "", None, 5, ["a"], {"a": 1},
        "approver-1",  # not the form of a sealbox id
        "apv_" + "a" * 25,  # one short
        "APV_" + "a" * 26,  # upper case
        "apv_" + "a" * 25 + "1",  # '1' is not base32
        "apv_" + "a" * 26 + "\x1b[2K",  # terminal escape after a valid id
        "apv_" + "a" * 26 * 1000,  # long
    ],
)  # fmt: skip
def test_bad_kid_rejected(kid: object) -> None:
    token = _hand_signed(_header(kid=kid), canonical_json(PAYLOAD))
    with pytest.raises(MalformedInput, match="kid must be a sealbox identifier"):
        jws.read_header(token)


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg": "EdDSA","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.store.v1"}',
        b'{"typ":"sealbox.store.v1","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","alg":"EdDSA"}',
        b'{"alg":"EdDSA","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.store.v1"}\n',
        b'{"alg":"EdDSA","kid":"apv\\u005faaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.store.v1"}',
    ],
)
def test_non_canonical_header_rejected(header: bytes) -> None:
    with pytest.raises(MalformedInput, match="JWS header: not in canonical form"):
        _verify(_hand_signed(header, canonical_json(PAYLOAD)))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            b'{"alg":"EdDSA","alg":"EdDSA","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.store.v1"}',
            "duplicate",
        ),
        (b'["EdDSA"]', "not a JSON object"),
        (b"not json", "not valid JSON"),
        (b'{"alg":"EdDSA","kid":"\\ud800","typ":"sealbox.store.v1"}', "canonical form"),
    ],
)
def test_unparseable_header_rejected(header: bytes, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        jws.read_header(_hand_signed(header, canonical_json(PAYLOAD)))


def test_header_not_base64url() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    header_b64, rest = token.split(".", 1)
    for bad in [header_b64 + "=", "+" + header_b64[1:], header_b64 + "é"]:
        with pytest.raises(MalformedInput, match="JWS header: not unpadded base64url"):
            _verify(f"{bad}.{rest}")


# --- Binding: typ, kid and key -----------------------------------------------------------------


def test_typ_mismatch_is_signature_invalid() -> None:
    token = jws.sign(SIGNER, labels.TYP_ITEM, KID, PAYLOAD)
    with pytest.raises(SignatureInvalid, match=r"statement type is sealbox\.item\.v1"):
        _verify(token, typ=TYP)


def test_kid_mismatch_is_signature_invalid() -> None:
    token = jws.sign(SIGNER, TYP, "apv_bbbbbbbbbbbbbbbbbbbbbbbbbb", PAYLOAD)
    with pytest.raises(SignatureInvalid, match="kid does not name the expected signer"):
        _verify(token)


def test_wrong_key_is_signature_invalid() -> None:
    token = jws.sign(OTHER, TYP, KID, PAYLOAD)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        _verify(token)


def test_signature_from_another_statement_is_signature_invalid() -> None:
    a = jws.sign(SIGNER, TYP, KID, {"n": 1})
    b = jws.sign(SIGNER, TYP, KID, {"n": 2})
    spliced = a.rsplit(".", 1)[0] + "." + b.rsplit(".", 1)[1]
    with pytest.raises(SignatureInvalid):
        _verify(spliced)


# --- Signature part --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 32, 63, 65])
def test_signature_of_wrong_length_is_malformed(length: int) -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    head = token.rsplit(".", 1)[0]
    with pytest.raises(MalformedInput, match="JWS signature: expected 64 bytes"):
        _verify(f"{head}.{b64u_encode(bytes(length))}")


def test_signature_non_canonical_base64url_is_malformed() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    head, sig = token.rsplit(".", 1)
    with pytest.raises(MalformedInput, match="JWS signature: not unpadded base64url"):
        _verify(f"{head}.{sig}==")
    # 64 bytes leave 4 unused low bits in the last character; set one of them.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    assert alphabet.index(sig[-1]) & 0xF == 0
    with pytest.raises(MalformedInput, match="JWS signature: non-canonical"):
        _verify(f"{head}.{sig[:-1]}{alphabet[alphabet.index(sig[-1]) | 1]}")


# --- Payload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"items":[1,2,3], "vault":"v1"}', "not in canonical form"),
        (b'{"vault":"v1","items":[1,2,3]}', "not in canonical form"),
        (b'{"a":1}\n', "not in canonical form"),
        (b'{"a":1,"a":1}', "duplicate key"),
        (b'{"a":1.5}', "floats"),
        (b"[1]", "not a JSON object"),
        (b"\xff", "not valid JSON"),
    ],
)
def test_non_canonical_payload_rejected_despite_valid_signature(
    payload: bytes, message: str
) -> None:
    token = _hand_signed(_header(), payload)
    with pytest.raises(MalformedInput, match=message):
        _verify(token)


def test_payload_not_base64url_is_malformed() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    header_b64, payload_b64, sig = token.split(".")
    for bad in [payload_b64 + "=", payload_b64[:-1] + "é", "é" + payload_b64, payload_b64 + "*"]:
        with pytest.raises(MalformedInput, match="JWS payload: not unpadded base64url"):
            _verify(f"{header_b64}.{bad}.{sig}")


# --- read_header and statement_hash -----------------------------------------------------------


def test_read_header_does_not_verify() -> None:
    token = jws.sign(OTHER, labels.TYP_DENY, "apv_bbbbbbbbbbbbbbbbbbbbbbbbbb", PAYLOAD)
    assert jws.read_header(token) == jws.UnverifiedHeader(
        typ=labels.TYP_DENY, kid="apv_bbbbbbbbbbbbbbbbbbbbbbbbbb"
    )


def test_statement_hash() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    assert jws.statement_hash(token) == digest(labels.HASH_STATEMENT, token.encode("ascii"))
    assert jws.statement_hash(token) != jws.statement_hash(jws.sign(SIGNER, TYP, KID, {}))
    with pytest.raises(MalformedInput, match="three dot-separated parts"):
        jws.statement_hash("a.b")
    with pytest.raises(MalformedInput, match="compact JWS string"):
        jws.statement_hash(b"a.b.c")  # type: ignore[arg-type]
    with pytest.raises(MalformedInput, match="not ASCII"):
        jws.statement_hash("a.é.c")
