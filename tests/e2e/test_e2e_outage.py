"""A relay that goes away while a client waits: the wait rides it out; Ctrl-C withdraws.

Real processes: `sealbox up` is stopped and started again on the same port and
data while a `sealbox read` and a `sealbox store` wait for an approver; once the
relay is back, an automated approver answers, and both commands succeed as if
nothing had happened.  A read interrupted with Ctrl-C leaves nothing pending
for an approver to answer.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import SEALBOX, RelayProcess
from loop_support import APPROVE_ALL, Deployment, env_for, outputs

PASSWORD = "outage-Pa55word-kept-safe"


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()


def _waiting(d: Deployment, *args: str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*SEALBOX, *args], env=env_for(d.client_config), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
    )  # fmt: skip
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        proc.stdin = None  # written whole: communicate() has nothing more to send
    return proc


def _pending(d: Deployment) -> list[dict[str, object]]:
    session = d.session()
    try:
        listed: list[dict[str, object]] = session.ok("GET", "/approvals", "listing")["requests"]
        return listed
    finally:
        session.close()


def _until_pending(d: Deployment, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(_pending(d)) < count:
        assert time.monotonic() < deadline, "the request never reached the relay"
        time.sleep(0.1)


def _restart(d: Deployment, down_for: float) -> None:
    d.relay.stop()
    time.sleep(down_for)
    d.relay = RelayProcess(d.tmp / "relay", port=d.relay.port)


def test_a_read_and_a_store_ride_out_a_relay_restart(d: Deployment) -> None:
    bot = d.serve(APPROVE_ALL)
    stored = d.store("shop/prod/db", {"password": PASSWORD})
    assert stored.returncode == 0, outputs(stored)
    bot.stop()
    d.serves.remove(bot)

    read = _waiting(d, "read", "sealbox://shop/prod/db/password")
    store = _waiting(d, "store", "shop/prod/api", "--field", "token=-", stdin=b"tok-123")
    _until_pending(d, 2)
    _restart(d, down_for=3)
    later = d.serve(APPROVE_ALL)
    out, err = read.communicate(timeout=90)
    assert read.returncode == 0, err.decode()
    assert out.decode() == PASSWORD + "\n"
    assert b"could not" not in err
    out, err = store.communicate(timeout=90)
    assert store.returncode == 0, err.decode()
    assert b"Stored shop/prod/api version 1" in out
    later.wait_for("approved", count=2)
    again = d.cli("read", "-n", "sealbox://shop/prod/api/token")
    assert again.stdout == "tok-123"


def test_a_read_interrupted_while_waiting_leaves_nothing_pending(d: Deployment) -> None:
    bot = d.serve(APPROVE_ALL)
    assert d.store("shop/prod/db", {"password": PASSWORD}).returncode == 0
    bot.stop()
    d.serves.remove(bot)

    read = _waiting(d, "read", "sealbox://shop/prod/db/password")
    _until_pending(d, 1)
    read.send_signal(signal.SIGINT)
    out, err = read.communicate(timeout=30)
    assert read.returncode == 130
    assert out == b""
    assert b"withdrawn" in err
    assert _pending(d) == []


def test_a_client_that_cannot_reach_the_relay_says_so_in_words(tmp_path: Path) -> None:
    d = Deployment(tmp_path)
    try:
        d.relay.stop()
        done = d.cli("ls")
        assert done.returncode == 1
        assert f"could not reach the relay at {d.url}: " in done.stderr
        assert "ConnectError" not in done.stderr
    finally:
        d.close()


def test_a_store_interrupted_while_waiting_is_withdrawn_and_never_stored(d: Deployment) -> None:
    store = _waiting(d, "store", "shop/prod/api", "--field", "token=-", stdin=b"tok-123")
    _until_pending(d, 1)
    store.send_signal(signal.SIGINT)
    out, err = store.communicate(timeout=30)
    assert store.returncode == 130, err.decode()
    assert b"Stored" not in out
    assert _pending(d) == []
    # An approver that comes along later finds nothing to store.
    later = d.serve(APPROVE_ALL)
    time.sleep(1.0)
    assert later.decisions() == []
    listed = d.cli("ls", "--json")
    assert listed.returncode == 0, outputs(listed)
    assert "shop/prod/api" not in listed.stdout
