"""Machines end to end: a real `sealbox up`, a real approver key file, real CLI processes.

A machine joins by `sealbox machine register` (approved in a real `sealbox approve`
terminal, typing the registration code), by the sh and Kubernetes scripts the relay
serves (run with `sh`, `sealbox` on PATH from this virtual environment), and as a
pre-provisioned bundle made with `sealbox machine provision` and used from a fresh HOME
with SEALBOX_IDENTITY.  Its reads are answered by `sealbox approver serve` rules for
machines (`client_kinds = ["machine"]`); a machine certified for shop/dev/* is refused
shop/prod/* (403 outside_scope) even after an approver grants it.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest
import yaml
from e2e_support import SEALBOX
from loop_support import PASSPHRASE, Deployment, env_for
from test_e2e_terminal import Terminal

from sealbox._relay.httpsig import sign_request
from sealbox.approver import machines
from sealbox.client.identity import load as identity_of

SECRET = "dev-db-password-5be1"
PROD_SECRET = "prod-db-password-77aa"
MACHINE_RULES = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "machines read"
client_kinds = ["machine"]
decision = "approve"
"""
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("machines")
    d = Deployment(tmp)
    try:
        d.serve(MACHINE_RULES)
        for path, value in (("shop/dev/db", SECRET), ("shop/prod/db", PROD_SECRET)):
            stored = d.store(path, {"password": value})
            assert stored.returncode == 0, stored.stderr
        yield d
    finally:
        d.close()


class Running:
    """A process whose output is read line by line as it runs."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
        self.out = ""
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.out)):
            line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"exited before {pattern!r}:\n{self.out}")
            self.out += line
        return found

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        while (line := self._lines.get(timeout=10)) is not None:
            self.out += line
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return rc, self.out


def _token(d: Deployment, *args: str) -> str:
    made = d.approver_cli("machine", "token", "create", "--name", "api", *args, "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    assert token.startswith("sbx_bt_")
    return str(token)


def _machine_env(home: Path, **extra: str) -> dict[str, str]:
    """A fresh machine: its own HOME and config directory, nothing of the approver's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update({"HOME": str(home), "SEALBOX_CONFIG_DIR": str(home / ".config" / "sealbox"),
                "SEALBOX_RUNTIME_DIR": str(home / "run"),
                "PATH": VENV_BIN + os.pathsep + env.get("PATH", "")})  # fmt: skip
    env.update(extra)
    return env


def _approve_by_code(d: Deployment, code: str) -> str:
    """Approve the waiting machine with this registration code, as `sealbox approve` does."""
    session = d.session()
    try:
        deadline = time.monotonic() + 30
        while not (found := [e for e in machines.pending_machines(session)
                             if e["user_code"] == code]):  # fmt: skip
            assert time.monotonic() < deadline, "the machine never showed up"
            time.sleep(0.2)
        return machines.approve_machine(session, found[0])
    finally:
        session.close()


def _read(env: dict[str, str], path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEALBOX, "read", path, "--purpose", "machine e2e"], env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def _check_identity_dir(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "client.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((path / "identity.json").stat().st_mode) == 0o600
    key = (path / "client.key").read_text().strip()
    assert key not in (path / "identity.json").read_text()  # nothing secret beside the key


def test_register_approved_in_the_terminal_then_read_and_refused_outside_its_scope(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    token = _token(d, "--grant", "shop/dev/*")
    home = tmp_path / "machine"
    register = Running([*SEALBOX, "machine", "register", "--server", d.url],
                       _machine_env(home, SEALBOX_BOOTSTRAP_TOKEN=token))  # fmt: skip
    code = register.wait_for(r"Registration code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
    safety = register.wait_for(r"Machine key safety code:\s+([0-9 ]+)\n").group(1).strip()
    vault_code = register.wait_for(r"Vault safety code:\s+([0-9 ]+)\n").group(1).strip()

    approve = Terminal(["approve"], env_for(d.approver_config))
    try:
        approve.expect(f"=== MACHINE {code}")
        approve.expect("Type the registration code to approve")
        shown = approve.since(f"=== MACHINE {code}")
        assert safety in shown
        assert "shop/dev/*" in shown
        assert "Reported by server (not verified): source IP" in shown
        approve.child.sendline("WRONG-CODE")
        approve.expect("not this machine's registration code")
        approve.child.sendline(code)
        approve.expect(f"Machine {code} approved")
        assert f"Vault safety code: {vault_code}" in approve.screen
    finally:
        approve.child.sendintr()
        approve.child.expect(pexpect.EOF)
    rc, out = register.finish()
    assert rc == 0, out
    assert token not in out
    identity = home / ".config" / "sealbox" / "identity"
    _check_identity_dir(identity)
    client_id = json.loads((identity / "identity.json").read_text())["client"]["id"]

    env = _machine_env(home, SEALBOX_IDENTITY=str(identity))
    read = _read(env, "sealbox://shop/dev/db/password")
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == SECRET

    # Certified for shop/dev/* only: even a grant for prod does not let it ask.
    granted = d.approver_cli("approver", "grant", client_id, "shop/prod/*")
    assert granted.returncode == 0, granted.stderr
    refused = _read(env, "sealbox://shop/prod/db/password")
    assert refused.returncode != 0
    assert "shop/prod/db" in refused.stderr
    assert PROD_SECRET not in refused.stdout + refused.stderr
    # What the relay answers the machine's own signed request naming shop/prod/db.
    machine = identity_of(identity)
    with httpx.Client(base_url=d.url) as http:
        request = http.build_request("GET", f"/v1/vaults/{d.vault}/policy",
                                     params={"path": "shop/prod/db"})  # fmt: skip
        sign_request(request, key=machine.key, key_id=machine.client_id)
        answer = http.send(request)
    assert answer.status_code == 403
    assert answer.json()["error"] == "outside_scope"
    assert answer.json()["hint"]

    # The token is spent: a second registration is refused, and says what to do.
    again = subprocess.run([*SEALBOX, "machine", "register", "--server", d.url, "--token", token,
                            "--out", str(tmp_path / "again")], env=_machine_env(tmp_path / "m2"),
                           capture_output=True, text=True, timeout=60, check=False,
                           stdin=subprocess.DEVNULL)  # fmt: skip
    assert again.returncode == 1
    assert "already used" in again.stderr
    assert "sealbox machine token create" in again.stderr
    assert not (tmp_path / "again").exists()


def test_the_sh_script_registers_a_machine_and_the_k8s_one_prints_kubectl(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    token = _token(d, "--grant", "shop/dev/*")
    script = httpx.get(f"{d.url}/v1/bootstrap/{token}")
    assert script.status_code == 200
    home = tmp_path / "box"
    run = Running(["sh", "-c", script.text], _machine_env(home))
    code = run.wait_for(r"Registration code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
    _approve_by_code(d, code)
    rc, out = run.finish()
    assert rc == 0, out
    assert "installing" not in out  # sealbox was on PATH
    identity = home / ".config" / "sealbox" / "identity"
    _check_identity_dir(identity)
    read = _read(
        _machine_env(home, SEALBOX_IDENTITY=str(identity)), "sealbox://shop/dev/db/password"
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == SECRET
    assert httpx.get(f"{d.url}/v1/bootstrap/{token}").status_code == 410  # spent

    token = _token(d, "--grant", "shop/dev/*")
    k8s = httpx.get(f"{d.url}/v1/bootstrap/{token}", params={"shell": "k8s"}).text
    out_dir = tmp_path / "k8s-identity"
    run = Running(["sh", "-c", k8s], _machine_env(tmp_path / "pod", SEALBOX_OUT=str(out_dir)))
    code = run.wait_for(r"Registration code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
    _approve_by_code(d, code)
    rc, out = run.finish()
    assert rc == 0, out
    last = [line for line in out.splitlines() if line.strip()][-2:]
    assert any(line.strip().startswith("kubectl create secret generic sealbox-api ")
               for line in last), out  # fmt: skip
    assert f"--from-file=identity.json={out_dir}/identity.json" in out
    assert f"--from-file=client.key={out_dir}/client.key" in out
    _check_identity_dir(out_dir)

    ps = httpx.get(f"{d.url}/v1/bootstrap/{_token(d, '--grant', 'shop/dev/*')}",
                   params={"shell": "powershell"}).text  # fmt: skip
    assert "& $sealbox machine register --server $SealboxServer" in ps


def _relay_bytes(d: Deployment) -> bytes:
    data = b"".join(p.read_bytes() for p in (d.tmp / "relay").rglob("*") if p.is_file())
    return data + "".join(d.relay._lines).encode()


def test_a_provisioned_bundle_reads_from_a_fresh_home(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    out = tmp_path / "api-identity"
    made = d.approver_cli("machine", "provision", "--name", "api", "--grant", "shop/dev/*",
                          "--out", str(out))  # fmt: skip
    assert made.returncode == 0, made.stderr
    _check_identity_dir(out)
    key_text = (out / "client.key").read_text().strip()
    assert key_text.startswith("sbx-ed25519-sk-v1:")
    assert key_text not in made.stdout + made.stderr

    again = d.approver_cli("machine", "provision", "--name", "api", "--grant", "shop/dev/*",
                           "--out", str(out))  # fmt: skip
    assert again.returncode == 1
    assert "--overwrite" in again.stderr

    bundle = tmp_path / "api.zip"
    zipped = d.approver_cli("machine", "provision", "--name", "api-zip", "--grant",
                            "shop/dev/*", "--out", str(bundle))  # fmt: skip
    assert zipped.returncode == 0, zipped.stderr
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    with zipfile.ZipFile(bundle) as archive:
        assert sorted(archive.namelist()) == ["client.key", "identity.json"]
        assert (archive.getinfo("client.key").external_attr >> 16) & 0o777 == 0o600
        zipped_key = archive.read("client.key").decode().strip()

    manifest = tmp_path / "api-secret.yaml"
    k8s = d.approver_cli("machine", "provision", "--name", "api-k8s", "--grant", "shop/dev/*",
                         "--k8s", "--out", str(manifest))  # fmt: skip
    assert k8s.returncode == 0, k8s.stderr
    secret = yaml.safe_load(manifest.read_text())
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "sealbox-api-k8s")
    k8s_key = base64.b64decode(secret["data"]["client.key"]).decode().strip()
    json.loads(base64.b64decode(secret["data"]["identity.json"]))

    # The relay never saw any of the three private keys: not in its database, not in its log.
    seen = _relay_bytes(d)
    for key in (key_text, zipped_key, k8s_key):
        assert key.encode() not in seen

    home = tmp_path / "fresh-home"
    read = _read(_machine_env(home, SEALBOX_IDENTITY=str(out)), "sealbox://shop/dev/db/password")
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == SECRET
    outside = _read(
        _machine_env(home, SEALBOX_IDENTITY=str(out)), "sealbox://shop/prod/db/password"
    )
    assert outside.returncode != 0
    assert PROD_SECRET not in outside.stdout
    assert PASSPHRASE not in read.stdout + read.stderr

    # `machine list` and `machine disable`: a disabled machine is refused at once.
    client_id = json.loads((out / "identity.json").read_text())["client"]["id"]
    listed = d.approver_cli("machine", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{client_id}\s+api\s+enabled", listed.stdout), listed.stdout
    disabled = d.approver_cli("machine", "disable", client_id)
    assert disabled.returncode == 0, disabled.stderr
    assert re.search(rf"{client_id}\s+api\s+disabled", d.approver_cli("machine", "list").stdout)
    gone = _read(_machine_env(home, SEALBOX_IDENTITY=str(out)), "sealbox://shop/dev/db/password")
    assert gone.returncode != 0
    assert SECRET not in gone.stdout


def test_a_denied_machine_saves_nothing_and_an_identity_is_never_overwritten(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    shown = d.approver_cli("machine", "token", "create", "--name", "api", "--grant", "shop/dev/*")
    assert shown.returncode == 0, shown.stderr
    [printed] = re.findall(r"sbx_bt_[A-Za-z0-9_-]{43}", shown.stdout.split("\n", 2)[1])
    assert f"SEALBOX_BOOTSTRAP_TOKEN={printed} sealbox machine register --server {d.url}" in (
        shown.stdout
    )
    assert f"curl -sSL '{d.url}/v1/bootstrap/{printed}' | sh" in shown.stdout
    assert "trusts nothing" in shown.stdout
    assert "this trusts the relay" in shown.stdout
    out = tmp_path / "identity"
    out.mkdir()
    (out / "keep").write_text("mine")
    token = _token(d, "--grant", "shop/dev/*")
    env = _machine_env(tmp_path / "m", SEALBOX_BOOTSTRAP_TOKEN=token)
    args = [*SEALBOX, "machine", "register", "--server", d.url, "--out", str(out)]
    taken = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                           check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    assert taken.returncode == 1
    assert "--overwrite" in taken.stderr
    assert (out / "keep").read_text() == "mine"
    # Refused before the relay was asked: the token is still good.
    assert httpx.get(f"{d.url}/v1/bootstrap/{token}").status_code == 200

    run = Running([*args[:-1], str(tmp_path / "new")], env)
    code = run.wait_for(r"Registration code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
    session = d.session()
    try:
        deadline = time.monotonic() + 30
        while not (found := [e for e in machines.pending_machines(session)
                             if e["user_code"] == code]):  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.2)
        machines.deny_machine(session, found[0]["client_id"])
    finally:
        session.close()
    rc, output = run.finish()
    assert rc == 3, output
    assert "an approver denied this machine" in output
    assert not (tmp_path / "new").exists()
