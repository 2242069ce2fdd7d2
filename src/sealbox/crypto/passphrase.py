"""Files sealed under a passphrase: Argon2id, then AES-256-GCM.

For approver key files that live on the approver's own device.  The Argon2id
parameters travel with the file (so they can be raised later without breaking
old files) but are bounded on read, so a tampered file cannot make opening it
take hours or all the memory there is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto import labels
from sealbox.crypto.encoding import b64u_decode, b64u_encode, length_prefixed
from sealbox.errors import DecryptionFailed, MalformedInput

__all__ = ["KdfParams", "open_with_passphrase", "seal_with_passphrase"]

FORMAT = "sealbox.key-file.v1"


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: RFC 9106's second recommended option by default (64 MiB, t=3)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1

    def check(self) -> None:
        if not (1 <= self.time_cost <= 10 and 8 * 1024 <= self.memory_kib <= 1024 * 1024
                and 1 <= self.parallelism <= 8):  # fmt: skip
            raise MalformedInput("key file: Argon2id parameters out of range")


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    params.check()
    return hash_secret_raw(
        passphrase.encode("utf-8"), salt, time_cost=params.time_cost,
        memory_cost=params.memory_kib, parallelism=params.parallelism, hash_len=32,
        type=Type.ID,
    )  # fmt: skip


def seal_with_passphrase(
    plaintext: bytes, passphrase: str, *, context: str, params: KdfParams | None = None
) -> dict[str, Any]:
    """A JSON-ready envelope; ``context`` (e.g. the vault and approver id) is bound as aad."""
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    params = params or KdfParams()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    key = _derive(passphrase, salt, params)
    aad = length_prefixed(labels.AEAD_KEY_FILE, context)
    return {
        "format": FORMAT,
        "kdf": {"alg": "argon2id", "t": params.time_cost, "m": params.memory_kib,
                "p": params.parallelism, "salt": b64u_encode(salt)},
        "nonce": b64u_encode(nonce),
        "ciphertext": b64u_encode(AESGCM(key).encrypt(nonce, plaintext, aad)),
    }  # fmt: skip


def open_with_passphrase(envelope: object, passphrase: str, *, context: str) -> bytes:
    """Open an envelope from :func:`seal_with_passphrase`; a wrong passphrase raises."""
    try:
        if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
            raise MalformedInput("not a sealbox key file")
        kdf = envelope["kdf"]
        if kdf.get("alg") != "argon2id":
            raise MalformedInput("key file: unknown key derivation")
        params = KdfParams(time_cost=int(kdf["t"]), memory_kib=int(kdf["m"]),
                           parallelism=int(kdf["p"]))  # fmt: skip
        salt = b64u_decode(kdf["salt"], length=16, what="salt")
        nonce = b64u_decode(envelope["nonce"], length=12, what="nonce")
        ciphertext = b64u_decode(envelope["ciphertext"], what="ciphertext")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise MalformedInput("key file: missing or malformed fields") from None
    key = _derive(passphrase, salt, params)
    try:
        return AESGCM(key).decrypt(
            nonce, ciphertext, length_prefixed(labels.AEAD_KEY_FILE, context)
        )
    except InvalidTag:
        raise DecryptionFailed(
            "the key file does not open: wrong passphrase, or the file was altered",
            hint="Check the passphrase; restore the file from your backup if it was changed.",
        ) from None
