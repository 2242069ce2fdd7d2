"""A software WebAuthn authenticator for the console tests (relay and end to end).

It makes real registration and assertion responses (attestation ``none``,
ES256 keys from pyca/cryptography, CBOR from py_webauthn's helper), so the
relay's checks run exactly as they do for a browser.  Its knobs break one
thing at a time: the user-verification flag, the origin, the challenge.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

from sealbox.crypto.encoding import b64u_decode, b64u_encode

__all__ = ["SoftAuthenticator"]

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
