"""An approver's keys on its own device: one JSON file, 0600, sealed under a passphrase.

The public part (server, vault, pinned fingerprint, the approver's directory
record) is readable without the passphrase so commands can say which vault a
file is for; the private keys are sealed with Argon2id + AES-256-GCM, bound
to the vault and approver id.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealbox._relay.files import config_dir
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.crypto.passphrase import open_with_passphrase, seal_with_passphrase
from sealbox.errors import KeyringUnavailable, MalformedInput
from sealbox.protocol.statements import ApproverRecord

__all__ = [
    "ApproverKeys",
    "KeyringUnavailable",
    "config_dir",
    "default_path",
    "keyring_passphrase",
    "load",
    "require_keyring",
    "save",
    "save_in_keyring",
    "uses_keyring",
]

KEYRING_SERVICE = "sealbox-approver"
#: Keyring backends that do not protect what they hold: refused, whatever their priority.
_INSECURE_BACKENDS = ("PlaintextKeyring", "fail.Keyring", "null.Keyring", "chainer.ChainerBackend")

FORMAT = "sealbox.approver.v1"
_RESTORE = "Restore the key file from its backup, or pick another with --key-file."


@dataclass(frozen=True)
class ApproverKeys:
    server: str
    vault: str
    fingerprint: str
    """The vault fingerprint this approver pinned (hash of directory link 0)."""
    record: ApproverRecord
    hpke: HpkePrivateKey
    sig: SigningKey

    def __repr__(self) -> str:
        return f"ApproverKeys(vault={self.vault}, approver={self.record.id})"


def default_path(vault: str) -> Path:
    return config_dir() / "approvers" / f"{vault}.json"


def _context(vault: str, approver: str) -> str:
    return f"{vault} {approver}"


def require_keyring() -> Any:
    """The ``keyring`` module, if its backend protects secrets; else raise."""
    try:
        import keyring
    except ImportError:
        raise KeyringUnavailable("the keyring library is not installed") from None
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if getattr(backend, "priority", 0) < 1 or any(bad in name for bad in _INSECURE_BACKENDS):
        raise KeyringUnavailable(f"no OS keyring is available (found {type(backend).__name__})")
    return keyring


def _keyring_user(keys_or_vault: str, approver: str) -> str:
    return f"{keys_or_vault}/{approver}"


def save_in_keyring(path: Path, keys: ApproverKeys) -> None:
    """Keep the key file's passphrase in the OS keyring: a random one, never shown to anyone.

    The key file itself is the same Argon2id + AES-GCM file; the keyring (unlocked
    with the person's login) holds what opens it.
    """
    kr = require_keyring()
    passphrase = secrets.token_urlsafe(32)
    kr.set_password(KEYRING_SERVICE, _keyring_user(keys.vault, keys.record.id), passphrase)
    save(path, keys, passphrase, unlock="keyring")


def uses_keyring(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("unlock") == "keyring")
    except (OSError, ValueError, AttributeError):
        return False


def keyring_passphrase(path: Path) -> str:
    """The passphrase of a key file kept in the OS keyring."""
    document = json.loads(path.read_text())
    record = document.get("approver") or {}
    found = require_keyring().get_password(
        KEYRING_SERVICE, _keyring_user(str(document.get("vault")), str(record.get("id")))
    )
    if not found:
        raise KeyringUnavailable(f"the OS keyring holds no passphrase for {path.name}")
    return str(found)


def save(path: Path, keys: ApproverKeys, passphrase: str, *, unlock: str = "passphrase") -> None:
    """Write the key file 0600 (its directory 0700), never over an existing one."""
    secret = json.dumps({"hpke_sk": keys.hpke.to_text(), "sig_sk": keys.sig.to_text()}).encode()
    document = {
        "format": FORMAT,
        "server": keys.server,
        "vault": keys.vault,
        "fingerprint": keys.fingerprint,
        "approver": keys.record.to_json(),
        "unlock": unlock,
        "sealed": seal_with_passphrase(
            secret, passphrase, context=_context(keys.vault, keys.record.id)
        ),
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")


def load(path: Path, passphrase: str) -> ApproverKeys:
    """Read and open a key file; a wrong passphrase raises ``DecryptionFailed``."""
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must be readable by its owner only (chmod 600)")
    try:
        document = json.loads(path.read_text())
        if document.get("format") != FORMAT:
            raise MalformedInput(
                f"{path} is not a sealbox approver key file",
                hint=_RESTORE,
            )
        record = ApproverRecord.from_json(document["approver"])
        opened = open_with_passphrase(
            document["sealed"], passphrase, context=_context(document["vault"], record.id)
        )
        secret = json.loads(opened)
        hpke, sig = (
            HpkePrivateKey.from_text(secret["hpke_sk"]),
            SigningKey.from_text(secret["sig_sk"]),
        )
    except (KeyError, TypeError, ValueError):
        raise MalformedInput(
            f"{path} is not a readable sealbox approver key file",
            hint=_RESTORE,
        ) from None
    if hpke.public_key() != record.hpke_pk or sig.verify_key() != record.sig_pk:
        raise MalformedInput(
            f"{path}: the private keys do not match the approver record",
            hint=_RESTORE,
        )
    return ApproverKeys(
        server=document["server"], vault=document["vault"], fingerprint=document["fingerprint"],
        record=record, hpke=hpke, sig=sig,
    )  # fmt: skip
