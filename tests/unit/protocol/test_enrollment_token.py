"""The enrollment token's format: one spelling per token, parsed strictly, never echoed."""

from __future__ import annotations

import json

import pytest

from sealbox.crypto.encoding import b64u_encode, canonical_json
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput
from sealbox.protocol import ids
from sealbox.protocol.enrollment_token import PREFIX, EnrollmentToken, parse_token

FINGERPRINT = "sha256:" + "A" * 43


def _token(**over: object) -> EnrollmentToken:
    fields: dict[str, object] = {
        "server": "https://relay.example.com", "vault": ids.new_id(ids.VAULT),
        "fingerprint": FINGERPRINT, "enrollment": ids.new_id(ids.ENROLLMENT),
        "key": SigningKey.generate(),
    }  # fmt: skip
    fields.update(over)
    return EnrollmentToken(**fields)  # type: ignore[arg-type]


def _body(token: EnrollmentToken) -> dict[str, object]:
    return {"v": 1, "server": token.server, "vault": token.vault,
            "fingerprint": token.fingerprint, "enrollment": token.enrollment,
            "key": token.key.to_text()}  # fmt: skip


def _encode(body: dict[str, object]) -> str:
    return PREFIX + b64u_encode(canonical_json(body))


def test_a_token_round_trips_and_never_shows_its_key() -> None:
    token = _token(server="http://localhost:8300/relay")
    text = token.to_text()
    assert text.startswith("sbx_enr_")
    assert text.isascii()
    assert " " not in text
    back = parse_token(text + "\n")  # a newline pasted with it is forgiven
    assert (back.server, back.vault, back.fingerprint, back.enrollment) == (
        token.server, token.vault, token.fingerprint, token.enrollment)  # fmt: skip
    assert back.key.to_text() == token.key.to_text()
    assert token.key.to_text() not in repr(back)


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"v": True},
        {"server": "https://user:pw@relay.example.com"},
        {"server": "https://relay.example.com/?x=1"},
        {"server": "https://relay.example.com/"},
        {"server": "ftp://relay.example.com"},
        {"vault": "vlt_short"},
        {"enrollment": ids.new_id(ids.CLIENT)},
        {"fingerprint": "sha256:short"},
        {"key": "sbx-ed25519-sk-v1:AAAA"},
        {"extra": 1},
    ],
)
def test_anything_else_is_refused(change: dict[str, object]) -> None:
    body = _body(_token())
    body.update(change)
    with pytest.raises(MalformedInput) as caught:
        parse_token(_encode(body))
    assert caught.value.message.startswith("enrollment token")


def test_non_canonical_spellings_are_refused() -> None:
    token = _token()
    body = _body(token)
    del body["v"]
    with pytest.raises(MalformedInput):
        parse_token(_encode(body))
    # White space, another key order: the same values, not the one spelling.
    spaced = PREFIX + b64u_encode(json.dumps(_body(token)).encode())
    with pytest.raises(MalformedInput):
        parse_token(spaced)
    text = token.to_text()
    for bad in (text[len(PREFIX):], "sbx_st_" + text[len(PREFIX):], text + "=", text[:-1] + "!",
                text + "A", 5, "x" * 5000):  # fmt: skip
        with pytest.raises(MalformedInput) as caught:
            parse_token(bad)
        assert token.key.to_text()[18:] not in caught.value.message
