"""A whole deployment for the release-loop tests: real relay, real approvers, the real CLI.

`Deployment` starts `sealbox up`, makes the first approver with `sealbox
approver init`, logs a person in with `sealbox login` (the login approved with
the product's own approver code, as `sealbox approve` does), and can start
`sealbox approver serve` processes.  Each party has its own config directory,
as it would on its own machine.

Imported by name (test directories are not packages).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from e2e_support import SEALBOX, RelayProcess
from test_e2e_login import Login

from sealbox.approver import admin, keystore
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

PASSPHRASE = "correct horse battery"


def env_for(config: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    base.update({"SEALBOX_CONFIG_DIR": str(config), "SEALBOX_PASSPHRASE": PASSPHRASE,
                 "SEALBOX_RUNTIME_DIR": str(config / "run")})  # fmt: skip
    base.update(extra)
    return base


class ServeProcess:
    """`sealbox approver serve` in a subprocess; its decision log is a file."""

    def __init__(self, config: Path, rules: str, log: Path, args: Sequence[str] = ()) -> None:
        self.rules = config / "rules.toml"
        self.rules.write_text(rules)
        self.log = log
        self.proc = subprocess.Popen(
            [*SEALBOX, "approver", "serve", "--rules", str(self.rules), "--log", str(log),
             *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_for(config),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.stderr = ""
        ready = threading.Event()
        self._reader: threading.Thread

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr += line
                if "Listening for requests" in line:
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(60):
            self.stop()
            raise AssertionError(f"approver serve did not start:\n{self.stderr}")

    def decisions(self) -> list[dict[str, Any]]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def wait_for(self, outcome: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [d for d in self.decisions() if d.get("outcome") == outcome]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, (self.decisions(), self.stderr)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Deployment:
    def __init__(self, tmp: Path, *relay_args: str) -> None:
        self.tmp = tmp
        self.relay = RelayProcess(tmp / "relay", *relay_args)
        self.url = self.relay.url
        self.approver_config = tmp / "approver"
        self.client_config = tmp / "client"
        self.serves: list[ServeProcess] = []
        token = self.relay.setup_token() or ""
        init = self.run_as(self.approver_config, "approver", "init", "--server", self.url,
                           "--setup-token", token, "--name", "laptop")  # fmt: skip
        assert init.returncode == 0, init.stderr
        self.vault = httpx.get(f"{self.url}/v1/vault").json()["vault"]
        self.key_file = self.approver_config / "approvers" / f"{self.vault}.json"
        self.keys: ApproverKeys = keystore.load(self.key_file, PASSPHRASE)
        self.client_id = self.login(self.client_config)

    def session(self, keys: ApproverKeys | None = None) -> ApproverSession:
        return ApproverSession(keys or self.keys)

    def login(self, config: Path, *, grant: str = "*/*/*", profile: str = "default") -> str:
        login = Login(self.relay, config, "--profile", profile)
        code = login.wait_for(r"User code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
        session = self.session()
        try:
            listed = session.ok("GET", "/device-requests", "listing")["device_requests"]
            [entry] = [e for e in listed if e["user_code"] == code]
            client = admin.approve_login(session, entry, scopes=["read", "write"], grant=grant)
        finally:
            session.close()
        rc, out, err = login.finish()
        assert rc == 0, out + err
        return client

    def add_approver(self, name: str) -> tuple[Path, ApproverKeys]:
        """Another approver device with its own config dir, added by the first approver.

        (The pairing dialogue itself is tested through a terminal elsewhere.)
        """
        hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
        record = ApproverRecord(id=ids.new_id(ids.APPROVER), name=name, kind="automated",
                                tier="device", hpke_pk=hpke.public_key(),
                                sig_pk=sig.verify_key())  # fmt: skip
        session = self.session()
        try:
            admin.add_device(session, record)
        finally:
            session.close()
        keys = ApproverKeys(server=self.url, vault=self.vault, fingerprint=self.keys.fingerprint,
                            record=record, hpke=hpke, sig=sig)  # fmt: skip
        config = self.tmp / f"approver-{name}"
        keystore.save(config / "approvers" / f"{self.vault}.json", keys, PASSPHRASE)
        return config, keys

    def approver_cli(
        self, *args: str, config: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run_as(config or self.approver_config, *args)

    def run_as(self, config: Path, *args: str, stdin: str | bytes | None = None,
               timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            [*SEALBOX, *args], capture_output=True, timeout=timeout, check=False,
            env=env_for(config, **env), input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
        )  # fmt: skip
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def cli(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """The logged-in person's CLI."""
        return self.run_as(self.client_config, *args, **kw)

    def serve(self, rules: str, *, config: Path | None = None,
              args: Sequence[str] = ()) -> ServeProcess:  # fmt: skip
        config = config or self.approver_config
        proc = ServeProcess(config, rules, config / f"decisions-{len(self.serves)}.jsonl", args)
        self.serves.append(proc)
        return proc

    def store(self, path: str, fields: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Store through the CLI, values from files."""
        args = []
        for name, value in fields.items():
            file = self.tmp / f"value-{name}"
            file.write_text(value)
            args += ["--field", f"{name}=@{file}"]
        return self.cli("store", path, *args, "--purpose", "test setup")

    def close(self) -> None:
        for proc in self.serves:
            proc.stop()
        self.relay.stop()


APPROVE_ALL = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "reads"
decision = "approve"
cache_seconds = 300
"""


def outputs(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def matches(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text)
    assert found, text
    return found


def assert_absent(secrets: Sequence[str], *texts: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text
