"""Share links end to end, with real processes: a real relay, `sealbox share create` under a
person's login, `sealbox share open` with no login at all.

Also the hostile-relay case of the threat model, "the relay learns a share's key": every
byte the relay receives while a share is created and opened goes through a recording TCP
proxy, and neither the key (in any of its encodings) nor the value is among them.  That
holds by construction: the key is only in the link's fragment, which no HTTP client sends.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from e2e_support import free_port
from loop_support import Deployment, env_for, outputs

from sealbox.cli.exits import FAILED, OK, USAGE
from sealbox.crypto.encoding import b64u_decode
from sealbox.protocol.shares import parse_link

VALUE = "hunter2-for-the-new-contractor ✓"
PASSPHRASE = "blue canary tuesday"


class RecordingProxy:
    """A TCP forwarder to the relay that keeps every byte sent to it (and back)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.to_relay = bytearray()
        self.from_relay = bytearray()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        accepting = threading.Thread(target=self._accept, daemon=True)
        accepting.start()
        self._threads.append(accepting)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            self._sockets += [client, upstream]
            for args in ((client, upstream, self.to_relay), (upstream, client, self.from_relay)):
                pump = threading.Thread(target=self._pump, args=args, daemon=True)
                pump.start()
                self._threads.append(pump)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bytearray) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    record.extend(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def received(self) -> bytes:
        with self._lock:
            return bytes(self.to_relay)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for s in self._sockets:
            s.close()


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("share"))
    try:
        yield deployment
    finally:
        deployment.close()


def _create(d: Deployment, *args: str, value: str = VALUE, **env: str) -> str:
    done = d.cli("share", "create", *args, stdin=value, **env)
    assert done.returncode == OK, outputs(done)
    link = done.stdout.strip()
    assert link.startswith(f"{d.url}/s/shr_"), link
    assert "One view, until" in done.stderr
    return link


def _open(d: Deployment, link: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # No login at all: a recipient outside the vault.
    return d.run_as(d.tmp / "outsider", "share", "open", link, *args, **env)


def test_create_then_open_once(d: Deployment) -> None:
    link = _create(d, "--ttl", "10m")
    opened = _open(d, link, "-n")
    assert opened.returncode == OK, outputs(opened)
    assert opened.stdout == VALUE
    again = _open(d, link)
    assert again.returncode == FAILED
    assert "opened already" in again.stderr
    assert VALUE not in outputs(again)


def test_with_a_passphrase_and_a_wrong_one(d: Deployment, tmp_path: Path) -> None:
    link = _create(d, "--passphrase", SEALBOX_SHARE_PASSPHRASE=PASSPHRASE)
    # No terminal and no passphrase: refused before anything is spent.
    refused = _open(d, link)
    assert refused.returncode == USAGE, outputs(refused)
    assert "no terminal to ask for the passphrase" in refused.stderr
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE + "\n")
    opened = _open(d, link, "--passphrase-file", str(phrase))
    assert opened.returncode == OK, outputs(opened)
    assert opened.stdout == VALUE + "\n"
    # A wrong passphrase destroys the share: the right one comes too late.
    other = _create(d, "--passphrase", "--passphrase-file", str(phrase))
    wrong = _open(d, other, SEALBOX_SHARE_PASSPHRASE="not the passphrase")
    assert wrong.returncode == FAILED
    assert "wrong passphrase: the share link is destroyed" in wrong.stderr
    late = _open(d, other, "--passphrase-file", str(phrase))
    assert late.returncode == FAILED
    assert "destroyed by a wrong passphrase" in late.stderr
    for done in (refused, wrong, late):
        assert VALUE not in outputs(done)
        assert PASSPHRASE not in outputs(done)


def test_bad_input_changes_nothing(d: Deployment, tmp_path: Path) -> None:
    for args, message in (
        (("--ttl", "30s"), "a share lives 60 s to 7 days"),
        (("--ttl", "8d"), "a share lives 60 s to 7 days"),
        (("--ttl", "soon"), "not a duration"),
        (("--file", str(tmp_path / "missing")), "cannot read"),
    ):
        done = d.cli("share", "create", *args, stdin=VALUE)
        assert done.returncode == USAGE, outputs(done)
        assert message in done.stderr
    empty = d.cli("share", "create", stdin="")
    assert empty.returncode == USAGE
    big = d.cli("share", "create", stdin="x" * (64 * 1024 + 1))
    assert big.returncode == USAGE
    assert "1 to 65536 bytes" in big.stderr
    # A passphrase is never taken from the command line.
    argv = d.cli("share", "create", "--passphrase", PASSPHRASE, stdin=VALUE)
    assert argv.returncode == USAGE
    link = _create(d)
    for cut in (link[:-1], link.split("#")[0], link.replace("/s/", "/x/")):
        done = _open(d, cut)
        assert done.returncode == USAGE, outputs(done)
    # None of that spent the share.
    assert _open(d, link, "-n").stdout == VALUE
    listed = httpx.get(f"{d.url}/v1/shares/{parse_link(link).share_id}")
    assert listed.status_code == 410


def test_a_file_value_and_a_machine_identity(d: Deployment, tmp_path: Path) -> None:
    value = tmp_path / "key.pem"
    value.write_bytes(b"-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n")
    link = _create(d, "--file", str(value))
    # Under a machine's identity the CLI refuses before it contacts the relay.
    robot = _open(d, link, SEALBOX_IDENTITY=str(tmp_path / "identity.json"))
    assert robot.returncode == FAILED
    assert "share links are for people" in robot.stderr
    made = d.run_as(d.tmp / "outsider", "share", "create", stdin=VALUE,
                    SEALBOX_IDENTITY=str(tmp_path / "identity.json"))  # fmt: skip
    assert made.returncode == FAILED
    assert "share links are made by people" in made.stderr
    opened = _open(d, link, "-n")
    assert opened.returncode == OK, outputs(opened)
    assert opened.stdout.encode() == value.read_bytes()


def test_an_expired_share_is_refused(d: Deployment) -> None:
    link = _create(d, "--ttl", "60s")
    info = httpx.get(f"{d.url}/v1/shares/{parse_link(link).share_id}").json()
    time.sleep(max(0.0, info["expires_at"] - time.time()) + 1.5)
    expired = _open(d, link)
    assert expired.returncode == FAILED
    assert "has expired" in expired.stderr
    assert VALUE not in outputs(expired)


def test_the_relay_never_receives_the_key(d: Deployment) -> None:
    """Threat model: "the relay learns a share's key".  It cannot: every byte it receives
    while a share is created and opened is recorded here, and the key is not among them."""
    proxy = RecordingProxy(int(d.url.rsplit(":", 1)[1]))
    try:
        config = d.tmp / "via-proxy"
        profile = d.client_config / "profiles" / "default.json"
        _copy_profile(profile, config / "profiles" / "default.json", proxy.url)
        made = d.run_as(config, "share", "create", "--passphrase", stdin=VALUE,
                        SEALBOX_SHARE_PASSPHRASE=PASSPHRASE)  # fmt: skip
        assert made.returncode == OK, outputs(made)
        link = made.stdout.strip()
        assert link.startswith(proxy.url + "/s/shr_")
        opened = d.run_as(d.tmp / "outsider", "share", "open", link, "-n",
                          SEALBOX_SHARE_PASSPHRASE=PASSPHRASE)  # fmt: skip
        assert opened.returncode == OK, outputs(opened)
        assert opened.stdout == VALUE
        time.sleep(0.2)  # the last bytes through the pump threads
        assert_key_never_sent(proxy.received(), link, VALUE)
        # The proxy did carry the calls (so the check above looked at the real traffic).
        share_id = parse_link(link).share_id
        assert f"POST /v1/shares/{share_id}/open".encode() in proxy.received()
        assert b"/shares HTTP/1.1" in proxy.received()
        # Nor does the relay's own output (its log) hold the key, the value or the passphrase.
        log = d.relay.output
        for secret in (link.split("#", 1)[1], VALUE, PASSPHRASE):
            assert secret not in log
    finally:
        proxy.close()


def assert_key_never_sent(received: bytes, link: str, value: str) -> None:
    """Neither the key in any encoding nor the value is in ``received``."""
    fragment = link.split("#", 1)[1]
    key = b64u_decode(fragment)
    forms = {
        fragment, quote(fragment), key.hex(), key.hex().upper(),
        base64.b64encode(key).decode(), base64.b64encode(key).decode().rstrip("="),
        base64.urlsafe_b64encode(key).decode(), base64.b32encode(key).decode(),
    }  # fmt: skip
    assert received, "nothing was recorded"
    for form in forms:
        assert form.encode() not in received, form
    assert key not in received
    assert value.encode() not in received
    assert b"#" + fragment.encode() not in received


def _copy_profile(source: Path, target: Path, server: str) -> None:
    import json
    import os

    document = json.loads(source.read_text())
    document["server"] = server
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)


#: The README's share block (docs text for README.md, "Share links"), line for line.
README_BLOCK = """\
printf 'wifi: correct-horse' | .venv/bin/sealbox share create --ttl 1h > share-link.txt
.venv/bin/sealbox share open "$(cat share-link.txt)"
printf 'db: s3cr3t' | SEALBOX_SHARE_PASSPHRASE='blue canary tuesday' .venv/bin/sealbox share create --passphrase --ttl 15m > guarded-link.txt
SEALBOX_SHARE_PASSPHRASE='blue canary tuesday' .venv/bin/sealbox share open "$(cat guarded-link.txt)"
"""  # noqa: E501


def test_the_readme_block_runs_as_written(d: Deployment, tmp_path: Path) -> None:
    import sys

    venv_bin = str(Path(sys.executable).parent) + "/"
    printed = []
    for line in README_BLOCK.splitlines():
        done = subprocess.run(
            ["sh", "-c", line.replace(".venv/bin/", venv_bin)], cwd=tmp_path,
            env=env_for(d.client_config), capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        printed.append(done.stdout)
    assert printed[1] == "wifi: correct-horse\n"
    assert printed[3] == "db: s3cr3t\n"
