"""RFC 9421 transport authentication of key holders, on both backends."""

from __future__ import annotations

import httpx
import pytest
from relay_support import Vault, error_of

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.keys import SigningKey
from sealbox.server.auth.httpsig import target_uri
from sealbox.server.relay import Relay

pytestmark = pytest.mark.anyio


def _signed(
    client: httpx.AsyncClient, method: str, url: str, *, key: SigningKey, key_id: str,
    body: bytes | None = None, now: float | None = None, nonce: str | None = None,
) -> httpx.Request:  # fmt: skip
    headers = {"content-type": "application/json"} if body is not None else {}
    request = client.build_request(method, url, content=body, headers=headers)
    sign_request(request, key=key, key_id=key_id, now=now, nonce=nonce)
    return request


async def test_approver_signed_request_is_accepted(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    a = vault.approvers[0]
    request = _signed(client, "GET", f"/v1/vaults/{vault.id}/whoami", key=a.sig, key_id=a.id,
                      now=relay.now())  # fmt: skip
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.json() == {"vault": vault.id, "id": a.id, "role": "approver",
                               "client_kind": None, "via": "signature"}  # fmt: skip


async def test_signed_body_is_covered_by_content_digest(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    a = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/whoami"
    ok = _signed(client, "POST", url, key=a.sig, key_id=a.id, body=b'{"x":1}', now=relay.now())
    assert (await client.send(ok)).status_code == 200
    tampered = _signed(client, "POST", url, key=a.sig, key_id=a.id, body=b'{"x":1}',
                       now=relay.now())  # fmt: skip
    tampered.stream = httpx.ByteStream(b'{"x":2}')
    response = await client.send(tampered)
    assert response.status_code == 401
    assert error_of(response)["error"] == "signature_invalid"


async def test_replayed_nonce_is_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    a = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/whoami"
    first = _signed(client, "GET", url, key=a.sig, key_id=a.id, now=relay.now(), nonce="n" * 16)
    assert (await client.send(first)).status_code == 200
    again = _signed(client, "GET", url, key=a.sig, key_id=a.id, now=relay.now(), nonce="n" * 16)
    response = await client.send(again)
    assert response.status_code == 401
    assert error_of(response)["error"] == "signature_replayed"


@pytest.mark.parametrize("offset", [-301, 301])
async def test_skewed_signature_is_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, offset: int
) -> None:
    a = vault.approvers[0]
    request = _signed(client, "GET", f"/v1/vaults/{vault.id}/whoami", key=a.sig, key_id=a.id,
                      now=relay.now() + offset)  # fmt: skip
    response = await client.send(request)
    assert response.status_code == 401
    assert error_of(response)["error"] in {"signature_expired", "signature_invalid"}


async def test_wrong_key_unknown_key_and_no_signature(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    a = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/whoami"
    forged = _signed(client, "GET", url, key=SigningKey.generate(), key_id=a.id, now=relay.now())
    response = await client.send(forged)
    assert (response.status_code, error_of(response)["error"]) == (401, "signature_invalid")
    stranger = _signed(client, "GET", url, key=SigningKey.generate(), key_id="apv_" + "c" * 26,
                       now=relay.now())  # fmt: skip
    response = await client.send(stranger)
    assert (response.status_code, error_of(response)["error"]) == (401, "unknown_key")
    response = await client.get(url)
    assert (response.status_code, error_of(response)["error"]) == (401, "signature_required")
    response = await client.get(url, headers={"signature-input": "garbage((", "signature": "x"})
    assert (response.status_code, error_of(response)["error"]) == (401, "signature_invalid")


async def test_signature_for_another_path_does_not_transfer(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    a = vault.approvers[0]
    request = _signed(client, "GET", f"/v1/vaults/{vault.id}/whoami?x=1", key=a.sig, key_id=a.id,
                      now=relay.now())  # fmt: skip
    moved = client.build_request("GET", f"/v1/vaults/{vault.id}/whoami", headers=request.headers)
    response = await client.send(moved)
    assert (response.status_code, error_of(response)["error"]) == (401, "signature_invalid")


async def test_bearer_token_must_look_like_one(client: httpx.AsyncClient, vault: Vault) -> None:
    url = f"/v1/vaults/{vault.id}/whoami"
    for header in ["Bearer nope", "Basic abc", "Bearer sbx_at_unknown"]:
        response = await client.get(url, headers={"authorization": header})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert error_of(response)["error"] == "invalid_token"


async def test_percent_encoded_path_verifies_as_sent(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    # The signer covers the URI as it sends it; the relay must not check the decoded path.
    a = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/device-requests/abcd%20efgh/deny"
    request = _signed(client, "POST", url, key=a.sig, key_id=a.id, body=b"{}", now=relay.now())
    assert request.url.raw_path.endswith(b"/abcd%20efgh/deny")
    response = await client.send(request)
    assert response.status_code in (400, 404), response.text
    assert error_of(response)["error"] not in {"signature_invalid", "unknown_key"}


@pytest.mark.parametrize(
    ("signed_path", "sent_path"), [("whoami", "whoam%69"), ("whoam%69", "whoami")]
)
async def test_signature_over_another_spelling_of_the_path_does_not_verify(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, signed_path: str, sent_path: str
) -> None:
    # Both spellings reach the same route once decoded; a signature covers only the one
    # it was made over, so a decoded form cannot stand in for the raw one (or back).
    a = vault.approvers[0]
    base = f"/v1/vaults/{vault.id}/"
    signed = _signed(client, "GET", base + signed_path, key=a.sig, key_id=a.id, now=relay.now())
    sent = client.build_request("GET", base + sent_path, headers=signed.headers)
    assert sent.url.raw_path.endswith(sent_path.encode())
    response = await client.send(sent)
    assert (response.status_code, error_of(response)["error"]) == (401, "signature_invalid")
    honest = _signed(client, "GET", base + sent_path, key=a.sig, key_id=a.id, now=relay.now())
    assert (await client.send(honest)).status_code == 200


def test_target_uri_is_rebuilt_from_the_raw_request_target() -> None:
    scope = {
        "type": "http", "scheme": "https", "path": "/v1/x y", "raw_path": b"/v1/x%20y",
        "query_string": b"a=%2F", "headers": [(b"host", b"relay.example:8443")],
        "server": ("10.0.0.1", 8443),
    }  # fmt: skip
    assert target_uri(scope) == "https://relay.example:8443/v1/x%20y?a=%2F"
    # Some servers leave the query in raw_path; it is taken from query_string only.
    assert target_uri({**scope, "raw_path": b"/v1/x%20y?a=%2F"}) == (
        "https://relay.example:8443/v1/x%20y?a=%2F"
    )
    assert target_uri({**scope, "query_string": b""}) == "https://relay.example:8443/v1/x%20y"
    # Without raw_path (it is optional in ASGI) the decoded path is all there is.
    plain = {**scope, "path": "/v1/whoami", "query_string": b""}
    del plain["raw_path"]
    assert target_uri(plain) == "https://relay.example:8443/v1/whoami"
