"""A software WebAuthn authenticator and a browser-like client for the console tests.

The authenticator makes real registration and assertion responses (attestation
``none``, ES256 keys from pyca/cryptography, CBOR from py_webauthn's helper),
so the relay's checks run exactly as they do for a browser.  Its knobs break
one thing at a time: the user-verification flag, the origin, the challenge.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from relay_support import Approver
from webauthn.helpers import encode_cbor

from sealbox.crypto.encoding import b64u_decode, b64u_encode

#: The relay under test has no public URL: its own origin is the default one.
RELAY_ORIGIN = "http://localhost:8300"
#: A second console origin (``sealbox console`` on localhost), configured in the tests.
LOCAL_ORIGIN = "http://localhost:8400"

UP, UV, AT = 0x01, 0x04, 0x40


def _b64u_to_bytes(text: str) -> bytes:
    return b64u_decode(text)


class SoftAuthenticator:
    """One passkey on a software authenticator (resident: it remembers the user handle)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.sign_count = 0
        self.user_handle: bytes | None = None
        self.rp_id: str | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})  # fmt: skip

    def register(
        self, options: dict[str, Any], origin: str, *, uv: bool = True, rp_id: str | None = None,
        challenge: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A registration response for creation ``options`` (the ``publicKey`` member)."""
        rp = rp_id or options["rp"]["id"]
        self.rp_id = rp
        self.user_handle = _b64u_to_bytes(options["user"]["id"])
        client_data = json.dumps({
            "type": "webauthn.create", "challenge": challenge or options["challenge"],
            "origin": origin, "crossOrigin": False,
        }).encode()  # fmt: skip
        flags = UP | AT | (UV if uv else 0)
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([flags])
            + self.sign_count.to_bytes(4, "big") + bytes(16)
            + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        )  # fmt: skip
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        raw_id = b64u_encode(self.credential_id)
        return {
            "id": raw_id, "rawId": raw_id, "type": "public-key",
            "response": {"clientDataJSON": b64u_encode(client_data),
                         "attestationObject": b64u_encode(attestation),
                         "transports": ["internal"]},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }  # fmt: skip

    def assertion(
        self, options: dict[str, Any], origin: str, *, uv: bool = True,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """An assertion for request ``options``, as a discoverable credential answers."""
        rp = options["rpId"]
        self.sign_count += 1
        client_data = json.dumps({
            "type": "webauthn.get", "challenge": options["challenge"], "origin": origin,
            "crossOrigin": False,
        }).encode()  # fmt: skip
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([UP | (UV if uv else 0)])
            + self.sign_count.to_bytes(4, "big")
        )  # fmt: skip
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = user_handle if user_handle is not None else self.user_handle
        assert handle is not None
        raw_id = b64u_encode(self.credential_id)
        return {
            "id": raw_id, "rawId": raw_id, "type": "public-key",
            "response": {"clientDataJSON": b64u_encode(client_data),
                         "authenticatorData": b64u_encode(auth_data),
                         "signature": b64u_encode(signature),
                         "userHandle": b64u_encode(handle)},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }  # fmt: skip


class BrowserApprover(Approver):
    """An approver whose directory record says kind ``browser``, with a passkey."""

    def __init__(self, name: str = "browser") -> None:
        super().__init__(name)
        self.record = dataclasses.replace(self.record, kind="browser", tier="device")
        self.passkey = SoftAuthenticator()


class Browser:
    """An HTTP client acting as the console in a browser: cookies kept, Origin sent."""

    def __init__(self, http: httpx.AsyncClient, vault: str, origin: str = RELAY_ORIGIN) -> None:
        self.http = http
        self.vault = vault
        self.origin = origin
        self.csrf: str | None = None

    @property
    def api(self) -> str:
        return f"/v1/vaults/{self.vault}/console"

    async def post(
        self, path: str, body: Any = None, *, csrf: bool = True, origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:  # fmt: skip
        sent = {"origin": origin or self.origin, **(headers or {})}
        if csrf and self.csrf is not None:
            sent["x-sealbox-csrf"] = self.csrf
        return await self.http.post(path, json=body if body is not None else {}, headers=sent)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def sign_in(self, passkey: SoftAuthenticator, **tweak: Any) -> httpx.Response:
        options = await self.post(f"{self.api}/signin/options")
        assert options.status_code == 200, options.text
        credential = passkey.assertion(options.json()["publicKey"], self.origin, **tweak)
        answer = await self.post(f"{self.api}/signin", {"credential": credential})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer
