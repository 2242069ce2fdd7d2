"""`sealbox approver init --keyring`: the key file opened with a secret kept in the OS keyring."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
from e2e_support import RelayProcess
from loop_support import env_for

from sealbox.approver import keystore

HERE = Path(__file__).parent


def _sealbox(config: Path, *args: str, **env: str) -> tuple[int, str, str]:
    import subprocess

    from e2e_support import SEALBOX

    environment = env_for(config, **env)
    environment.pop("SEALBOX_PASSPHRASE")
    done = subprocess.run([*SEALBOX, *args], capture_output=True, text=True, timeout=120,
                          check=False, env=environment, stdin=subprocess.DEVNULL)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_keyring_init_then_unlocked_without_a_passphrase(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    try:
        config = tmp_path / "approver"
        token = relay.setup_token() or ""
        # No keyring that protects secrets: refused before anything is made (the token stays good).
        rc, _, err = _sealbox(config, "approver", "init", "--server", relay.url, "--setup-token",
                              token, "--keyring",
                              PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")  # fmt: skip
        assert rc == 1
        assert "no OS keyring" in err
        assert not (config / "approvers").exists()

        fake = {"PYTHON_KEYRING_BACKEND": "fake_keyring.FileKeyring", "PYTHONPATH": str(HERE),
                "SEALBOX_TEST_KEYRING": str(tmp_path / "keyring.json")}  # fmt: skip
        rc, out, err = _sealbox(config, "approver", "init", "--server", relay.url,
                                "--setup-token", token, "--keyring", **fake)  # fmt: skip
        assert rc == 0, err
        assert "OS keyring" in out
        vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
        path = config / "approvers" / f"{vault}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["unlock"] == "keyring"
        held = json.loads((tmp_path / "keyring.json").read_text())
        [secret] = held.values()
        assert secret not in out + err
        assert keystore.load(path, secret).vault == vault

        # Approver commands open it from the keyring: no passphrase asked, none in the env.
        rc, out, err = _sealbox(config, "approver", "list", **fake)
        assert rc == 0, err
        assert "(this device)" in out
        # Without the keyring entry the file stays shut.
        (tmp_path / "keyring.json").write_text("{}")
        rc, _, err = _sealbox(config, "approver", "list", **fake)
        assert rc == 1
        assert "holds no passphrase" in err
    finally:
        relay.stop()
