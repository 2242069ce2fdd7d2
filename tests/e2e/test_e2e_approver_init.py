"""`sealbox approver init` against a real `sealbox up`: the first approver, made on this device."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_e2e_up import Relay

from sealbox.approver import keystore
from sealbox.errors import DecryptionFailed
from sealbox.protocol import directory as dirs

PASSPHRASE = "correct horse battery"


def _init(relay: Relay, tmp_path: Path, *args: str, token: str | None, **env: str):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    base.update({"SEALBOX_CONFIG_DIR": str(tmp_path / "config"), "SEALBOX_PASSPHRASE": PASSPHRASE})
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", "approver", "init", "--server", relay.url,
         "--name", "ana-laptop", "--setup-token", "-", *args],
        input=(token or "") + "\n", capture_output=True, text=True, timeout=120, check=False,
        env=base,
    )  # fmt: skip


def test_first_approver_is_created_on_this_device(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "relay")
    try:
        token = relay.setup_token()
        wrong = _init(relay, tmp_path, token="sbx_st_wrong")
        assert wrong.returncode == 1
        assert "setup token is wrong" in wrong.stderr
        assert "Restart `sealbox up`" in wrong.stderr

        made = _init(relay, tmp_path, token=token)
        assert made.returncode == 0, made.stderr
        assert token not in made.stdout + made.stderr
        vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
        links = httpx.get(f"{relay.url}/v1/vaults/{vault}/directory").json()["links"]
        assert f"Vault safety code: {dirs.vault_safety_code(links[0])}" in made.stdout

        path = tmp_path / "config" / "approvers" / f"{vault}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        document = json.loads(path.read_text())
        assert "sbx-ed25519-sk" not in path.read_text()  # private keys are sealed
        keys = keystore.load(path, PASSPHRASE)
        assert keys.fingerprint == dirs.vault_fingerprint(links[0])
        assert keys.record.id == document["approver"]["id"]
        assert dirs.verify_directory(links, pinned=keys.fingerprint).approver(keys.record.id)
        with pytest.raises(DecryptionFailed):
            keystore.load(path, "not the passphrase")

        again = _init(relay, tmp_path, token=token)
        assert again.returncode == 1
        assert "already has its first approver" in again.stderr
    finally:
        relay.stop()


def test_short_passphrase_and_unreachable_server(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "relay")
    try:
        short = _init(relay, tmp_path, token=relay.setup_token(), SEALBOX_PASSPHRASE="short")
        assert short.returncode == 1
        assert "at least 8 characters" in short.stderr
        # Nothing was created: the token still works.
        assert _init(relay, tmp_path, token=relay.setup_token()).returncode == 0
    finally:
        relay.stop()
    gone = _init(relay, tmp_path, token="sbx_st_x")
    assert gone.returncode == 1
    assert gone.stderr.startswith("sealbox: ")
