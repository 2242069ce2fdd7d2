"""`sealbox up` takes its port first, and says plainly why it cannot."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import pytest

from sealbox.cli import main as cli
from sealbox.cli.exits import CANNOT_LISTEN
from sealbox.server import runner


def test_a_port_already_listened_on_is_refused_with_a_hint() -> None:
    first = runner._listen("127.0.0.1", 0)
    port = first[0].getsockname()[1]
    try:
        with pytest.raises(runner.CannotListen) as refused:
            runner._listen("127.0.0.1", port)
        assert str(refused.value) == (
            f"cannot listen on 127.0.0.1:{port}: the address is already in use "
            "(is another relay running? choose another with --port)"
        )
    finally:
        for sock in first:
            sock.close()
    # Closed, the port can be had again at once (SO_REUSEADDR, as for a restart).
    for sock in runner._listen("127.0.0.1", port):
        sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux's SO_REUSEADDR rules")
def test_listening_at_once_wins_the_port_from_a_relay_that_has_only_bound_it() -> None:
    # Two relays starting together: with SO_REUSEADDR both may bind; the first to
    # listen has the port.  Listening only later, in uvicorn, the loser would find
    # out after it had migrated the database and replaced the setup token.
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    other.bind(("127.0.0.1", 0))
    port = other.getsockname()[1]
    ours = runner._listen("127.0.0.1", port)
    try:
        with pytest.raises(OSError, match=os.strerror(errno.EADDRINUSE)):
            other.listen()
    finally:
        other.close()
        for sock in ours:
            sock.close()


def test_an_address_of_another_machine_is_refused_with_a_hint() -> None:
    with pytest.raises(runner.CannotListen) as refused:
        runner._listen("192.0.2.1", 8300)  # TEST-NET-1: never this machine's
    assert str(refused.value) == (
        "cannot listen on 192.0.2.1:8300: this machine has no such address (check --host)"
    )


def test_up_on_a_taken_port_exits_7_before_touching_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SEALBOX_DB_URL", "SEALBOX_DB_SCHEMA", "SEALBOX_HOST", "SEALBOX_PORT"):
        monkeypatch.delenv(name, raising=False)
    taken = runner._listen("127.0.0.1", 0)
    port = taken[0].getsockname()[1]
    data_dir = tmp_path / "data"
    try:
        code = cli.main(["up", "--data-dir", str(data_dir), "--port", str(port)])
    finally:
        for sock in taken:
            sock.close()
    assert code == CANNOT_LISTEN == 7
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"sealbox: cannot listen on 127.0.0.1:{port}: the address is already")
    assert not data_dir.exists()  # no database, no master key, no vault
