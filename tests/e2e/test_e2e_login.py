"""`sealbox login`, `whoami` and `logout` against a real `sealbox up`, approved by a real approver.

The approver is made with `sealbox approver init`; the test then plays the
approver's device: it loads that key file, looks the login up by its user
code with a signed request, compares the key fingerprint the CLI printed,
and signs the client certificate itself.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from test_e2e_up import SEALBOX, Relay

from sealbox._relay.httpsig import sign_request
from sealbox.approver import keystore
from sealbox.approver.keystore import ApproverKeys
from sealbox.crypto.keys import VerifyKey
from sealbox.protocol import directory as dirs
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo

PASSPHRASE = "correct horse battery"
DAY = 86400


def _env(config: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    base.update({"SEALBOX_CONFIG_DIR": str(config), "SEALBOX_PASSPHRASE": PASSPHRASE})
    return base


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SEALBOX, *args], capture_output=True, text=True, timeout=120, check=False,
        env=_env(config), stdin=subprocess.DEVNULL,
    )  # fmt: skip


class Login:
    """A `sealbox login` process whose stdout is read line by line as it runs."""

    def __init__(self, relay: Relay, config: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*SEALBOX, "login", "--server", relay.url, "--name", "bo@laptop", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            env=_env(config),
        )  # fmt: skip
        self.stdout = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.stdout)):
            line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"login exited before {pattern!r}:\n{self.stdout}")
            self.stdout += line
        return match

    def finish(self) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        rc = self.proc.wait(timeout=60)
        while (line := self._lines.get(timeout=10)) is not None:
            self.stdout += line
        self.proc.stdout.close()
        with self.proc.stderr as stderr:
            return rc, self.stdout, stderr.read()


def _signed(http: httpx.Client, keys: ApproverKeys, method: str, url: str, **kw: Any) -> Any:
    request = http.build_request(method, url, **kw)
    sign_request(request, key=keys.sig, key_id=keys.record.id)
    response = http.send(request)
    assert response.status_code == 200, response.text
    return response.json()


def _pending(http: httpx.Client, keys: ApproverKeys, user_code: str) -> dict[str, Any]:
    listed = _signed(http, keys, "GET", f"/v1/vaults/{keys.vault}/device-requests")
    [entry] = [r for r in listed["device_requests"] if r["user_code"] == user_code]
    return dict(entry)


def _approve(http: httpx.Client, keys: ApproverKeys, entry: dict[str, Any]) -> None:
    links = http.get(f"/v1/vaults/{keys.vault}/directory").json()["links"]
    directory = dirs.verify_directory(links, pinned=keys.fingerprint)
    client = ClientInfo(
        id=entry["client_id"], kind="human", name=entry["client_name"],
        sig_pk=VerifyKey.from_text(entry["sig_pk"]),
    )  # fmt: skip
    now = int(time.time())
    certificate = issue_certificate(
        directory, issuer=keys.record.id, key=keys.sig, client=client, scopes=["read", "write"],
        constraints=ClientConstraints(not_after=now + 30 * DAY), now=now,
    )  # fmt: skip
    url = f"/v1/vaults/{keys.vault}/device-requests/{entry['user_code']}/approve"
    assert _signed(http, keys, "POST", url, json={"certificate": certificate})["state"] == (
        "approved"
    )


def test_login_whoami_logout_and_a_denied_login(tmp_path: Path) -> None:
    approver_config, client_config = tmp_path / "approver", tmp_path / "client"
    relay = Relay(tmp_path / "relay")
    try:
        init = _cli(approver_config, "approver", "init", "--server", relay.url,
                    "--setup-token", relay.setup_token() or "")  # fmt: skip
        assert init.returncode == 0, init.stderr
        approver_safety = re.search(r"Vault safety code: (.+)", init.stdout)
        assert approver_safety
        vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
        keys = keystore.load(approver_config / "approvers" / f"{vault}.json", PASSPHRASE)

        nobody = _cli(client_config, "whoami")
        assert nobody.returncode == 6  # not logged in
        assert "not logged in" in nobody.stderr
        assert "sealbox login" in nobody.stderr

        # Log in; the approver compares the fingerprint and certifies the key.
        login = Login(relay, client_config)
        user_code = login.wait_for(r"User code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
        shown = login.wait_for(r"Client key fingerprint: (sha256:\S+)").group(1)
        login.wait_for(r"Client key safety code: ")
        assert f"{relay.url}/device?user_code={user_code}" in login.stdout
        assert "\u2588" in login.stdout or "\u2580" in login.stdout  # the QR code
        with httpx.Client(base_url=relay.url) as http:
            entry = _pending(http, keys, user_code)
            assert entry["key_fingerprint"] == shown
            assert entry["client_name"] == "bo@laptop"
            _approve(http, keys, entry)
        rc, out, err = login.finish()
        assert rc == 0, out + err
        assert f"Vault safety code: {approver_safety.group(1)}" in out

        path = client_config / "profiles" / "default.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        saved = json.loads(path.read_text())
        assert saved["vault"] == vault
        assert saved["fingerprint"] == keys.fingerprint
        assert saved["client"]["id"] == entry["client_id"]
        for secret in (saved["access_token"], saved["refresh_token"], saved["client_sk"]):
            assert secret not in out + err

        # A second login may not overwrite the session (and does not even start).
        again = _cli(client_config, "login", "--server", relay.url)
        assert again.returncode == 1
        assert "already logged in" in again.stderr
        assert "--force" in again.stderr

        who = _cli(client_config, "whoami")
        assert who.returncode == 0, who.stderr
        assert re.search(r"role:\s+client", who.stdout)
        assert re.search(r"kind:\s+human", who.stdout)
        assert entry["client_id"] in who.stdout
        assert approver_safety.group(1) in who.stdout
        assert "read, write" in who.stdout

        # Logout revokes at the relay: a copy of the old profile no longer works.
        copy = tmp_path / "old-profile.json"
        shutil.copy2(path, copy)
        out_ = _cli(client_config, "logout")
        assert out_.returncode == 0, out_.stderr
        assert "revoked" in out_.stdout
        assert not path.exists()
        gone = _cli(client_config, "whoami")
        assert gone.returncode == 6
        assert "sealbox login" in gone.stderr
        shutil.copy2(copy, path)
        revoked = _cli(client_config, "whoami")
        assert revoked.returncode == 6  # the session has ended
        assert "no longer accepts" in revoked.stderr
        assert "Log in again" in revoked.stderr
        path.unlink()

        # A login the approver denies ends with exit 1 and saves nothing.
        denied = Login(relay, client_config, "--profile", "work")
        user_code = denied.wait_for(r"User code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
        with httpx.Client(base_url=relay.url) as http:
            url = f"/v1/vaults/{vault}/device-requests/{user_code}/deny"
            assert _signed(http, keys, "POST", url)["state"] == "denied"
        rc, out, err = denied.finish()
        assert rc == 1
        assert "denied this login" in err
        assert not (client_config / "profiles" / "work.json").exists()
    finally:
        relay.stop()

    # The relay is gone: logout still deletes the profile, and says the token was not revoked.
    shutil.copy2(copy, path)
    offline = _cli(client_config, "logout")
    assert offline.returncode == 0, offline.stderr
    assert "could not be revoked" in offline.stderr
    assert not path.exists()
