"""`sealbox up` as a real process: banner, setup over HTTP, restart, Ctrl-C, operator commands."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import BANNER_END, PG_URL, ApproverKeys, RelayProcess, pg_schema, signed

from sealbox._relay.httpsig import sign_request
from sealbox.cli.exits import CANNOT_LISTEN
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

SEALBOX = [sys.executable, "-m", "sealbox.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    def __init__(self, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://localhost:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        self.proc = subprocess.Popen(
            [*SEALBOX, "up", "--data-dir", str(data_dir), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self.output = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C to stop." not in self.output:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line and self.proc.poll() is not None:
                raise AssertionError(f"sealbox up exited early:\n{self.output}")
            self.output += line
            assert time.monotonic() < deadline, self.output
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)

    def setup_token(self) -> str | None:
        match = re.search(r"--setup-token (sbx_st_\S+)", self.output)
        return match.group(1) if match else None

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=30)
        self.output += rest
        return self.output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "relay-data"


def test_up_setup_restart_and_stop(data_dir: Path) -> None:
    relay = Relay(data_dir)
    try:
        assert "sealbox relay   " + relay.url in relay.output
        token = relay.setup_token()
        assert token is not None
        vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
        assert vault in relay.output
        # Files holding keys and data are owner-only.
        for name in ("master.key", "sealbox.db"):
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name

        hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
        record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal", tier="synced",
            hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
        )  # fmt: skip
        link0 = dirs.genesis_link(vault, record, sig, now=int(time.time()))
        response = httpx.post(
            f"{relay.url}/v1/vaults/{vault}/setup", json={"setup_token": token, "link": link0}
        )
        assert response.status_code == 201, response.text
        assert response.json()["safety_code"] == dirs.vault_safety_code(link0)
    finally:
        output = relay.stop()
    assert relay.proc.returncode == 0, output
    assert "sealbox relay stopped." in output
    assert token not in output.split("Press Ctrl-C to stop.")[1]

    # A restart keeps the vault, prints no setup token (it has its approver), and
    # a signed request from that approver (nonce persisted) cannot be replayed.
    again = Relay(data_dir)
    try:
        assert again.setup_token() is None
        with httpx.Client(base_url=again.url) as http:
            request = http.build_request("GET", f"/v1/vaults/{vault}/whoami")
            sign_request(request, key=sig, key_id=record.id)
            assert http.send(request).json()["role"] == "approver"
            assert http.send(request).status_code == 401
            links = http.get(f"/v1/vaults/{vault}/directory").json()["links"]
        assert links == [link0]
    finally:
        again.stop()
    # Same port: the signature covers the target URI.
    replayed_after_restart = Relay(data_dir, port=again.port)
    try:
        with httpx.Client(base_url=replayed_after_restart.url) as http:
            assert http.send(request).json()["error"] == "signature_replayed"
    finally:
        replayed_after_restart.stop()


def test_unused_setup_token_dies_with_the_process(data_dir: Path) -> None:
    first = Relay(data_dir)
    old = first.setup_token()
    first.stop()
    second = Relay(data_dir)
    try:
        new = second.setup_token()
        assert old
        assert new
        assert old != new
        vault = httpx.get(f"{second.url}/v1/vault").json()["vault"]
        hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
        record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="x", kind="terminal", tier="synced",
            hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
        )  # fmt: skip
        link0 = dirs.genesis_link(vault, record, sig, now=int(time.time()))
        url = f"{second.url}/v1/vaults/{vault}/setup"
        assert httpx.post(url, json={"setup_token": old, "link": link0}).status_code == 403
        assert httpx.post(url, json={"setup_token": new, "link": link0}).status_code == 201
    finally:
        second.stop()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    return subprocess.run(
        [*SEALBOX, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**base, **(env or {})},
    )  # fmt: skip


def test_db_migrate_status_and_master_key_rotation(data_dir: Path) -> None:
    status = _cli("db", "status", "--data-dir", str(data_dir))
    assert status.returncode == 0, status.stderr
    assert "current revision: none" in status.stdout
    assert "needs `sealbox db migrate`" in status.stdout
    migrated = _cli("db", "migrate", "--data-dir", str(data_dir))
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in _cli("db", "status", "--data-dir", str(data_dir)).stdout

    relay = Relay(data_dir)  # makes the master key and the vault
    relay.stop()
    key_file = data_dir / "master.key"
    before = key_file.read_text()
    rotated = _cli("rotate-master-key", "--data-dir", str(data_dir))
    assert rotated.returncode == 0, rotated.stderr
    assert re.search(r"re-wrapped \d+ data key\(s\)", rotated.stdout)
    after = key_file.read_text()
    assert after != before
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert before.strip() not in rotated.stdout + rotated.stderr
    # The relay still starts with the new key.
    Relay(data_dir).stop()


def test_bad_master_key_file_permissions_stop_the_relay(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    key_file = data_dir / "master.key"
    key_file.write_text("A" * 43 + "\n")
    key_file.chmod(0o644)
    result = _cli("rotate-master-key", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "chmod 600" in result.stderr


# Stopping: one Ctrl-C or SIGTERM (what systemd and Docker send) stops the relay
# within a second or two, with status 0 and its "stopped" line, even while
# approvers' event streams are open; the port in use is said plainly.

STOP_SECONDS = 3.0


@pytest.fixture(params=["sqlite", "postgres"])
def db_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """`sealbox up` options: SQLite in the data directory, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield []
        return
    with pg_schema("sbx_e2e_up") as schema:
        assert PG_URL  # pg_schema has skipped (or failed, in CI) without it
        yield ["--db", PG_URL, "--db-schema", schema]


def _set_up(relay: RelayProcess, http: httpx.Client) -> tuple[str, ApproverKeys]:
    vault = http.get("/v1/vault").json()["vault"]
    approver = ApproverKeys()
    link0 = dirs.genesis_link(vault, approver.record, approver.sig, now=int(time.time()))
    response = http.post(
        f"/v1/vaults/{vault}/setup", json={"setup_token": relay.setup_token(), "link": link0}
    )
    assert response.status_code == 201, response.text
    return vault, approver


def _open_stream(
    stack: contextlib.ExitStack, http: httpx.Client, path: str, approver: ApproverKeys
) -> Iterator[str]:
    """An approver's event stream, open and past its first line; its remaining text."""
    request = signed(http, "GET", path, by=approver)
    response = stack.enter_context(contextlib.closing(http.send(request, stream=True)))
    assert response.status_code == 200, response.read()
    text = response.iter_text()
    assert next(text).startswith(": sealbox ")
    return text


def _stopped_by(relay: RelayProcess, *signals: signal.Signals) -> float:
    """Send ``signals`` (50 ms apart); the seconds until the process ended."""
    started = time.monotonic()
    for signum in signals:
        relay.proc.send_signal(signum)
        time.sleep(0.05)
    try:
        relay.proc.wait(timeout=30)
    finally:
        output = relay.stop()  # collects the output (SIGINT again only if still running)
    assert relay.returncode == 0, output
    assert output.rstrip().endswith("sealbox relay stopped."), output
    assert "Traceback" not in output
    assert "Error" not in output.split(BANNER_END)[1], output
    return time.monotonic() - started


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_one_signal_stops_the_relay_while_approvers_streams_are_open(
    tmp_path: Path, db_args: list[str], signals: list[signal.Signals]
) -> None:
    relay = RelayProcess(tmp_path / "relay-data", *db_args)
    with contextlib.ExitStack() as stack:
        try:
            http = stack.enter_context(httpx.Client(base_url=relay.url, timeout=10))
            vault, approver = _set_up(relay, http)
            approvals = _open_stream(stack, http, f"/v1/vaults/{vault}/approvals/stream", approver)
            audit = _open_stream(stack, http, f"/v1/vaults/{vault}/audit/stream", approver)
        except BaseException:
            relay.stop()
            raise
        took = _stopped_by(relay, *signals)
        assert took < STOP_SECONDS, f"took {took:.1f} s"
        # Both streams were ended by the relay, not cut off: each read ends cleanly.
        for rest in (approvals, audit):
            list(rest)


def test_sigterm_stops_an_idle_relay_with_status_0(tmp_path: Path, db_args: list[str]) -> None:
    relay = RelayProcess(tmp_path / "relay-data", *db_args)
    took = _stopped_by(relay, signal.SIGTERM)
    assert took < STOP_SECONDS, f"took {took:.1f} s"


def test_a_second_relay_on_a_taken_port_says_so_and_changes_nothing(
    tmp_path: Path, db_args: list[str]
) -> None:
    data_dir = tmp_path / "relay-data"
    first = RelayProcess(data_dir, *db_args)
    try:
        # Same data and database too: had it started, it would have replaced the setup token.
        second = _cli("up", "--data-dir", str(data_dir), "--port", str(first.port), *db_args)
        assert second.returncode == CANNOT_LISTEN == 7
        assert second.stderr == (
            f"sealbox: cannot listen on 127.0.0.1:{first.port}: the address is already in use "
            "(is another relay running? choose another with --port)\n"
        )
        assert second.stdout == ""
        with httpx.Client(base_url=first.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            _set_up(first, http)  # the first relay's setup token still works
    finally:
        output = first.stop()
    assert first.returncode == 0, output
