"""Approver key files: 0600, sealed, refused when loose, altered or mismatched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealbox.approver import keystore
from sealbox.approver.keystore import ApproverKeys
from sealbox.crypto import passphrase
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import DecryptionFailed, MalformedInput
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

_FAST = passphrase.KdfParams(time_cost=1, memory_kib=8 * 1024)


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2id for tests; the real cost is pinned in test_crypto_passphrase."""
    original = passphrase.seal_with_passphrase

    def fast(plaintext: bytes, secret: str, *, context: str) -> dict[str, object]:
        return original(plaintext, secret, context=context, params=_FAST)

    monkeypatch.setattr(keystore, "seal_with_passphrase", fast)


def _keys() -> ApproverKeys:
    hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name="ana", kind="terminal", tier="synced",
        hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return ApproverKeys(
        server="http://localhost:8300", vault=ids.new_id(ids.VAULT),
        fingerprint="sha256:" + "A" * 43, record=record, hpke=hpke, sig=sig,
    )  # fmt: skip


def test_save_and_load(tmp_path: Path) -> None:
    keys = _keys()
    path = tmp_path / "approvers" / "k.json"
    keystore.save(path, keys, "pass phrase")
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    loaded = keystore.load(path, "pass phrase")
    assert (loaded.record, loaded.vault, loaded.fingerprint) == (
        keys.record,
        keys.vault,
        keys.fingerprint,
    )
    assert loaded.sig.verify_key() == keys.sig.verify_key()
    assert keys.sig.to_text() not in path.read_text()
    assert keys.sig.to_text() not in repr(loaded)
    with pytest.raises(FileExistsError):
        keystore.save(path, keys, "pass phrase")  # never overwrites a key file
    with pytest.raises(DecryptionFailed):
        keystore.load(path, "wrong")


def test_refusals(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    keystore.save(path, _keys(), "pass phrase")
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        keystore.load(path, "pass phrase")
    path.chmod(0o600)
    document = json.loads(path.read_text())
    other = _keys()
    # The record swapped for another approver's: the sealed keys are bound to the first one.
    document["approver"] = other.record.to_json()
    path.write_text(json.dumps(document))
    with pytest.raises(DecryptionFailed):
        keystore.load(path, "pass phrase")
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(MalformedInput):
        keystore.load(path, "pass phrase")
    path.write_text("not json")
    with pytest.raises(MalformedInput):
        keystore.load(path, "pass phrase")


def test_default_path_follows_the_config_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    assert keystore.default_path("vlt_x") == tmp_path / "approvers" / "vlt_x.json"
