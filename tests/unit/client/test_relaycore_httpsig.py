"""The request signer writes exactly what the RFC 9421 library would; its verifier accepts it."""

from __future__ import annotations

import datetime
from typing import Any

import http_message_signatures as hms
import httpx
import pytest
from http_message_signatures import algorithms

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.keys import SigningKey

KEY = SigningKey._from_seed(bytes(range(32)))
KEY_ID = "apv_0123456789abcdefghijkl"
NOW = 1_800_000_000
NONCE = "n0nce-of-sixteen"
URL = "http://relay.test:8080/v1/vaults/vlt_x/approvals/abc?wait=25"


class _Private(hms.HTTPSignatureKeyResolver):
    def resolve_private_key(self, key_id: str) -> Any:
        return KEY.to_pem()


class _Public(hms.HTTPSignatureKeyResolver):
    def resolve_public_key(self, key_id: str) -> Any:
        return KEY.verify_key().to_pem() if key_id == KEY_ID else None


def _request(method: str, body: bytes | None) -> httpx.Request:
    headers = {"content-type": "application/json"} if body is not None else {}
    return httpx.Request(method, URL, content=body, headers=headers)


def _library_signed(method: str, body: bytes | None) -> httpx.Request:
    """The same request signed by ``http_message_signatures``, as sealbox once did."""
    request = _request(method, body)
    signer = hms.HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Private())
    signer.sign(
        request, key_id=KEY_ID, created=datetime.datetime.fromtimestamp(NOW, datetime.UTC),
        nonce=NONCE, label="sealbox", tag="sealbox",
        covered_component_ids=("@method", "@target-uri"), body=body or None,
    )  # fmt: skip
    return request


def _verify(request: httpx.Request) -> None:
    verifier = hms.HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519, key_resolver=_Public()
    )
    verifier.max_clock_skew = datetime.timedelta(days=365 * 100)
    verifier.verify(request, max_age=None, expect_tag="sealbox",
                    require_components=("@method", "@target-uri"),
                    body=request.content)  # fmt: skip


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", b'{"release":"x.y.z"}'),
                                              ("POST", b"")])  # fmt: skip
def test_headers_are_byte_for_byte_the_librarys(method: str, body: bytes | None) -> None:
    ours = _request(method, body)
    sign_request(ours, key=KEY, key_id=KEY_ID, now=NOW, nonce=NONCE)
    theirs = _library_signed(method, body)
    for name in ("signature-input", "signature", "content-digest"):
        assert ours.headers.get(name) == theirs.headers.get(name), name
    assert ("content-digest" in ours.headers) == bool(body)
    _verify(ours)


def test_a_changed_body_or_url_no_longer_verifies() -> None:
    signed = _request("POST", b'{"x":1}')
    sign_request(signed, key=KEY, key_id=KEY_ID, now=NOW, nonce=NONCE)
    swapped = httpx.Request("POST", URL, content=b'{"x":2}', headers=signed.headers)
    with pytest.raises(hms.HTTPMessageSignaturesException):
        _verify(swapped)
    moved = httpx.Request("POST", URL.replace("abc", "abd"), content=b'{"x":1}',
                          headers=signed.headers)  # fmt: skip
    with pytest.raises(hms.HTTPMessageSignaturesException):
        _verify(moved)


def test_each_signature_has_its_own_nonce() -> None:
    first, second = _request("GET", None), _request("GET", None)
    sign_request(first, key=KEY, key_id=KEY_ID)
    sign_request(second, key=KEY, key_id=KEY_ID)
    assert first.headers["signature-input"] != second.headers["signature-input"]


@pytest.mark.parametrize("key_id", ['apv_"x', "apv_\\x", "apv_\nx", "apv_é"])
def test_a_value_that_would_need_escaping_is_refused(key_id: str) -> None:
    with pytest.raises(ValueError, match="cannot be signed"):
        sign_request(_request("GET", None), key=KEY, key_id=key_id, now=NOW, nonce=NONCE)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://localhost:8300/v1/x?a=b", "http://localhost:8300/v1/x?a=b"),
        # Neither the userinfo nor a fragment is sent, so neither is signed.
        ("http://user:pw@localhost:8300/v1/x#part", "http://localhost:8300/v1/x"),
        # An empty query: the relay sees none, so none is signed.
        ("http://localhost:8300/v1/x?", "http://localhost:8300/v1/x"),
        ("http://localhost:8300/v1/device-requests/abcd%20efgh/deny",
         "http://localhost:8300/v1/device-requests/abcd%20efgh/deny"),
        ("http://[::1]:8300/x", "http://[::1]:8300/x"),
    ],
)  # fmt: skip
def test_the_target_uri_is_what_goes_on_the_wire(url: str, target: str) -> None:
    signed: list[bytes] = []
    key = SigningKey.generate()

    class Recording:
        """The key, keeping what it is asked to sign: the signature base."""

        def sign(self, data: bytes) -> bytes:
            signed.append(data)
            return key.sign(data)

    request = httpx.Request("GET", url)
    sign_request(request, key=Recording(), key_id="apv_aaaaaaaaaaaaaaaaaaaaaaaaaa")  # type: ignore[arg-type]
    [base] = signed
    assert f'"@target-uri": {target}\n'.encode() in base
