"""`sealbox console` as a process in front of `sealbox up`: setup from its banner's link, a
session through the proxy, and the approvals stream arriving event by event.

The browser is httpx with a cookie jar and the Origin a browser would send; the
passkey is the software authenticator of tests/webauthn_support.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import SEALBOX, RelayProcess, free_port

from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord
from webauthn_support import SoftAuthenticator


class ConsoleProcess:
    """`sealbox console --relay … --port …` in a subprocess."""

    def __init__(self, relay_url: str, port: int) -> None:
        self.url = f"http://localhost:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        self.proc = subprocess.Popen(
            [*SEALBOX, "console", "--relay", relay_url, "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/console/", timeout=1).status_code == 303:
                    break
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.1)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            self._reader.join(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[RelayProcess, ConsoleProcess]]:
    port = free_port()
    relay = RelayProcess(tmp_path / "relay", "--console-origin", f"http://localhost:{port}")
    try:
        console = ConsoleProcess(relay.url, port)
        try:
            yield relay, console
        finally:
            console.stop()
    finally:
        relay.stop()


def _record(name: str) -> tuple[ApproverRecord, SigningKey]:
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="browser", tier="device",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return record, sig


def test_setup_and_a_live_stream_through_the_local_console(
    processes: tuple[RelayProcess, ConsoleProcess],
) -> None:
    relay, console = processes
    # The banner's browser link carries the token in the fragment, beside the terminal command.
    link = re.search(r"(\S+)/console/setup#setup_token=(sbx_st_\S+)", relay.output)
    assert link is not None, relay.output
    assert link.group(1) == relay.url
    token = link.group(2)
    assert token == relay.setup_token()
    assert any(f"--console-origin {console.url}" in line for line in console.lines)

    vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
    api = f"/v1/vaults/{vault}/console"
    origin = {"origin": console.url}
    record, sig = _record("Ana's laptop")
    passkey = SoftAuthenticator()
    with httpx.Client(base_url=console.url, timeout=10) as browser:
        options = browser.post(f"{api}/setup/options", headers=origin,
                               json={"setup_token": token, "approver_id": record.id,
                                     "name": record.name})  # fmt: skip
        assert options.status_code == 200, options.text
        public_key = options.json()["publicKey"]
        assert public_key["rp"]["id"] == "localhost"
        link0 = dirs.genesis_link(vault, record, sig, now=int(time.time()))
        done = browser.post(f"{api}/setup", headers=origin, json={
            "setup_token": token, "link": link0,
            "credential": passkey.register(public_key, console.url),
        })  # fmt: skip
        assert done.status_code == 201, done.text
        csrf = done.json()["csrf"]
        assert browser.cookies.get("sealbox_console")
        assert httpx.get(f"{relay.url}/v1/vault").json()["ready"] is True

        # The approvals stream, through the proxy: each event arrives as it happens.
        with browser.stream("GET", f"/v1/vaults/{vault}/approvals/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            chunks = stream.iter_text()
            seen = ""
            while ": sealbox approvals" not in seen:
                seen += next(chunks)
            newcomer, _ = _record("tablet")
            asked = httpx.post(f"{relay.url}/v1/vaults/{vault}/pairing-requests",
                               json={"approver": newcomer.to_json()})  # fmt: skip
            assert asked.status_code == 201, asked.text
            while "event: pairing" not in seen:
                seen += next(chunks)

        refused = browser.post(f"{api}/signout", headers=origin)
        assert refused.status_code == 403
        out = browser.post(f"{api}/signout", headers={**origin, "x-sealbox-csrf": csrf})
        assert out.status_code == 204, out.text
        assert browser.get(f"{api}/session").status_code == 401
