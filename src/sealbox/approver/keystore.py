"""An approver's keys on its own device: one JSON file, 0600, sealed under a passphrase.

The public part (server, vault, pinned fingerprint, the approver's directory
record) is readable without the passphrase so commands can say which vault a
file is for; the private keys are sealed with Argon2id + AES-256-GCM, bound
to the vault and approver id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.crypto.passphrase import open_with_passphrase, seal_with_passphrase
from sealbox.errors import MalformedInput
from sealbox.protocol.statements import ApproverRecord

__all__ = ["ApproverKeys", "config_dir", "default_path", "load", "save"]

FORMAT = "sealbox.approver.v1"


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


def config_dir() -> Path:
    return Path(os.environ.get("SEALBOX_CONFIG_DIR") or platformdirs.user_config_dir("sealbox"))


def default_path(vault: str) -> Path:
    return config_dir() / "approvers" / f"{vault}.json"


def _context(vault: str, approver: str) -> str:
    return f"{vault} {approver}"


def save(path: Path, keys: ApproverKeys, passphrase: str) -> None:
    """Write the key file 0600 (its directory 0700), never over an existing one."""
    secret = json.dumps({"hpke_sk": keys.hpke.to_text(), "sig_sk": keys.sig.to_text()}).encode()
    document = {
        "format": FORMAT,
        "server": keys.server,
        "vault": keys.vault,
        "fingerprint": keys.fingerprint,
        "approver": keys.record.to_json(),
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
            raise MalformedInput(f"{path} is not a sealbox approver key file")
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
        raise MalformedInput(f"{path} is not a readable sealbox approver key file") from None
    if hpke.public_key() != record.hpke_pk or sig.verify_key() != record.sig_pk:
        raise MalformedInput(f"{path}: the private keys do not match the approver record")
    return ApproverKeys(
        server=document["server"], vault=document["vault"], fingerprint=document["fingerprint"],
        record=record, hpke=hpke, sig=sig,
    )  # fmt: skip
