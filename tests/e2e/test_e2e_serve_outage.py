"""The automated approver through a relay outage: a request it failed to answer is answered after.

`sealbox approver serve` is paused (SIGSTOP) while a person's read creates a
request, so the relay's event for it waits in the approver's socket; the
relay is then killed and the approver resumed: it takes the event and fails
to fetch the request (connection refused).  When the relay is back on the
same port and data, the approver must still answer that request: it gave up
its claim on the transient failure, retries with backoff, and lists what is
waiting when it reconnects.  Its log says what happened in words, once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import SEALBOX, RelayProcess
from loop_support import APPROVE_ALL, Deployment, ServeProcess, env_for

SECRET = "outage-s3cret-4b1d"


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()


def _entries(serve: ServeProcess, outcome: str, request: str | None = None) -> list[dict[str, Any]]:
    return [e for e in serve.decisions() if e.get("outcome") == outcome
            and (request is None or e.get("request") == request)]  # fmt: skip


def _wait(what: str, check: Any, serve: ServeProcess, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, (what, serve.decisions(), serve.stderr)
        time.sleep(0.1)
    return found


def test_a_request_whose_answer_failed_in_an_outage_is_answered_after_it(d: Deployment) -> None:
    serve = d.serve(APPROVE_ALL)
    stored = d.store("ops/prod/db", {"password": SECRET})
    assert stored.returncode == 0, stored.stderr

    serve.proc.send_signal(signal.SIGSTOP)
    reader = subprocess.Popen(
        [*SEALBOX, "read", "sealbox://ops/prod/db/password", "--purpose", "through an outage"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env_for(d.client_config),
    )  # fmt: skip
    try:
        # The request exists (the relay lists it) and its event is on its way to the
        # paused approver; then the relay dies, and the approver wakes up to take it.
        session = d.session()
        try:
            [request] = _wait("the request", lambda: session.ok("GET", "/approvals", "listing")[
                "requests"], serve)  # fmt: skip
        finally:
            session.close()
        port = d.relay.port
        d.relay.proc.kill()
        d.relay.stop()
        serve.proc.send_signal(signal.SIGCONT)

        # Its answer fails (the relay is gone): the claim is given up, to try again.
        [retrying, *_] = _wait("a retry", lambda: _entries(serve, "retrying"), serve)
        assert retrying["request"] == request["id"], retrying
        assert retrying["message"] == (
            f"fetching a request: could not reach the relay at {d.url}: connection refused"
        )
        time.sleep(3)  # a few more attempts, all refused
        assert not _entries(serve, "approved", request["id"])

        d.relay = RelayProcess(d.tmp / "relay", port=port)
        [approved] = _wait("the answer", lambda: _entries(serve, "approved", request["id"]), serve)
        assert approved["items"] == [{"path": "ops/prod/db", "version": 1,
                                      "fields": ["password"]}]  # fmt: skip
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.communicate(timeout=20)

    log = serve.log.read_text()
    assert SECRET not in log + serve.stderr
    # In words, and once per outage: no class names, no line per reconnect attempt.
    assert "ConnectError" not in log
    # (The retry may answer before the stream is back: its backoff is its own.)
    _wait("the stream back", lambda: _entries(serve, "reconnected"), serve, timeout=30)
    assert len(_entries(serve, "disconnected")) == 1, serve.decisions()
    assert len(_entries(serve, "reconnected")) == 1, serve.decisions()
    # One line for the failure, not one per attempt (the retries went on for seconds).
    assert [e["request"] for e in _entries(serve, "retrying")] == [request["id"]]
    # Answered once: not a second time by the retry and the reconnection both.
    assert len(_entries(serve, "approved", request["id"])) == 1
    assert not _entries(serve, "error"), serve.decisions()
