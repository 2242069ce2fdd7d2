"""The local cache agent and its clients, with a real agent process (no relay: nothing to report).

The agent serves the login of its profile, so each test saves a profile first;
its hits go unreported (no relay answers), which these tests do not look at.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cache_support import REF, VALUE, Agent, released, save_profile

from sealbox.client import cache, cache_socket
from sealbox.client import profile as profiles
from sealbox.client._flows import Read


def test_lookup_gets_exactly_the_value_the_agent_holds(cache_agent: Agent) -> None:
    with cache.connect("default") as conn:  # type: ignore[union-attr]
        assert conn.put(released(), {REF: VALUE, REF + "x": b""}) == 2
    # The CLI's one request, on nothing but _socket: its hand-checked JSON must be the
    # agent's (a change to the agent's answer would make every hit a miss).
    assert cache_socket.lookup("default", REF) == VALUE
    assert cache_socket.lookup("default", REF + "x") == b""
    assert cache_socket.lookup("default", "sealbox://shop/prod/db/user") is None
    assert cache_socket.lookup("default", 'sealbox://a/b/"c') is None  # never asked: not plain
    assert cache_socket.lookup("other", REF) is None  # no agent for that profile
    assert cache.shared("default").get([REF, "sealbox://x/y/z"]) == {REF: VALUE}


def test_the_sdk_keeps_one_connection_for_every_read(cache_agent: Agent) -> None:
    shared = cache.shared("default")
    assert shared.put(released(), {REF: VALUE})
    before = cache_agent.call({"op": "status"})["connections"]
    for _ in range(50):
        assert shared.get([REF]) == {REF: VALUE}
    after = cache_agent.call({"op": "status"})["connections"]
    assert after == before + 1  # type: ignore[operator]  # this status call; none for the reads
    assert cache.shared("default") is shared


def test_the_sdk_connection_is_shared_safely_by_threads(cache_agent: Agent) -> None:
    shared = cache.shared("default")
    values = {f"{REF}{n}": bytes([n]) * (n + 1) for n in range(8)}
    assert shared.put(released(), values)
    wrong: list[object] = []

    def reader(n: int) -> None:
        for _ in range(100):
            got = shared.get([f"{REF}{n}"])
            if got != {f"{REF}{n}": values[f"{REF}{n}"]}:
                wrong.append(got)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_the_sdk_finds_a_restarted_agent_on_its_kept_connection(cache_env: dict[str, str]) -> None:
    shared = cache.shared("default")
    assert shared.get([REF]) == {}  # no agent yet: a miss, not an error
    assert not shared.put(released(), {REF: VALUE})
    first = Agent(cache_env)
    try:
        assert shared.put(released(), {REF: VALUE})
        assert shared.get([REF]) == {REF: VALUE}
    finally:
        first.stop()
    assert shared.get([REF]) == {}  # gone: the kept connection is dropped
    second = Agent(cache_env)
    try:
        assert shared.get([REF]) == {}  # a new agent holds nothing
        assert shared.put(released(), {REF: VALUE})
        assert shared.get([REF]) == {REF: VALUE}
    finally:
        second.stop()


def test_a_forked_child_opens_its_own_connection(cache_agent: Agent) -> None:
    shared = cache.shared("default")
    # Held by the parent's tree only: the agent must see the child's own pid to serve it.
    assert shared.put(released("process-tree"), {REF: VALUE})
    assert shared.get([REF]) == {REF: VALUE}
    before = cache_agent.call({"op": "status"})["connections"]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports by its exit status
        code = 0 if shared.get([REF]) == {REF: VALUE} else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    after = cache_agent.call({"op": "status"})["connections"]
    assert after == before + 2  # type: ignore[operator]  # the child's, and this status call
    assert shared.get([REF]) == {REF: VALUE}  # the parent's connection was left alone


def test_the_agent_stops_when_its_profile_is_logged_out(
    cache_agent: Agent, cache_env: dict[str, str]
) -> None:
    shared = cache.shared("default")
    assert shared.put(released(), {REF: VALUE})
    Path(cache_env["SEALBOX_CONFIG_DIR"], "profiles", "default.json").unlink()
    assert shared.get([REF]) == {}
    assert cache_socket.lookup("default", REF) is None
    cache_agent.proc.wait(timeout=20)
    assert not Path(cache.socket_file("default")).exists()


def test_the_agent_stops_when_the_profile_is_another_login(
    cache_agent: Agent, cache_env: dict[str, str]
) -> None:
    shared = cache.shared("default")
    assert shared.put(released(), {REF: VALUE})
    save_profile(Path(cache_env["SEALBOX_CONFIG_DIR"]))  # logged out and in again: another client
    assert shared.get([REF]) == {}
    cache_agent.proc.wait(timeout=20)


def test_the_agent_keeps_serving_when_the_tokens_are_refreshed(
    cache_agent: Agent, cache_env: dict[str, str]
) -> None:
    path = Path(cache_env["SEALBOX_CONFIG_DIR"], "profiles", "default.json")
    current = profiles.load(path)
    profiles.save(path, current.with_tokens("sbx_at_new", "sbx_rt_new", 2**41), overwrite=True)
    shared = cache.shared("default")
    assert shared.put(released(), {REF: VALUE})
    assert shared.get([REF]) == {REF: VALUE}
    assert cache_agent.proc.poll() is None


def test_socket_dir_without_any_runtime_dir_is_private_and_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEALBOX_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path / "config"))
    save_profile(tmp_path / "config")
    expected = tmp_path / f"sealbox-{os.getuid()}"
    assert cache.socket_dir() == str(expected)
    sealbox = [sys.executable, "-m", "sealbox.cli.main"]
    start = subprocess.run([*sealbox, "cache", "start"], capture_output=True, text=True,
                           timeout=60, check=False)  # fmt: skip
    try:
        assert start.returncode == 0, start.stderr
        assert start.stderr == ""  # no RuntimeDirWarning, nothing else
        assert str(expected / "cache-default.sock") in start.stdout
        assert stat.S_IMODE(expected.stat().st_mode) == 0o700
        assert stat.S_IMODE((expected / "cache-default.sock").stat().st_mode) == 0o600
        status = subprocess.run([*sealbox, "cache", "status"], capture_output=True, text=True,
                                timeout=60, check=False)  # fmt: skip
        assert status.returncode == 0
        assert status.stderr == ""
    finally:
        subprocess.run([*sealbox, "cache", "stop"], capture_output=True, timeout=60, check=False)


def test_socket_dir_with_xdg_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEALBOX_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert cache.socket_file("work") == str(tmp_path / "sealbox" / "cache-work.sock")
    monkeypatch.setenv("SEALBOX_RUNTIME_DIR", str(tmp_path / "mine"))
    assert cache.socket_file("work") == str(tmp_path / "mine" / "cache-work.sock")


def test_prepare_socket_dir_takes_only_a_directory_of_this_user(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    cache.prepare_socket_dir(str(loose))
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    made = tmp_path / "a" / "b"
    cache.prepare_socket_dir(str(made))
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    # A name someone made first: a link to elsewhere, or a file, is refused.
    (tmp_path / "link").symlink_to(loose)
    with pytest.raises(PermissionError, match="XDG_RUNTIME_DIR"):
        cache.prepare_socket_dir(str(tmp_path / "link"))
    (tmp_path / "file").write_text("")
    with pytest.raises((PermissionError, FileExistsError)):
        cache.prepare_socket_dir(str(tmp_path / "file"))
    if os.getuid() == 0:  # as root, a directory of another user can be made to show it
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(PermissionError, match="not a directory of this user"):
            cache.prepare_socket_dir(str(theirs))


def test_cache_start_refuses_a_profile_that_is_not_logged_in(cache_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", "cache", "start", "--profile", "nobody"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "not logged in" in done.stderr
    assert not Path(cache.socket_file("nobody")).exists()


def _read(*, until: int, asked: int = 300) -> Read:
    return Read(values={"shop/prod/db": {"password": b"x"}}, versions={"shop/prod/db": 1},
                items={"shop/prod/db": "itm_x"}, request="req", cache_until=until,
                cache_scope="user", cache_asked=asked)  # fmt: skip


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    said = [r.getMessage() for r in caplog.records if r.name == "sealbox.cache"]
    caplog.clear()
    return said


def test_why_nothing_was_cached_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "_explained", set())
    closed = {"shop/prod/db": (0.0, {"max_cache_seconds": 0})}
    cache.explain_not_cached("default", _read(until=0), closed)
    [said] = _said(caplog)
    assert "the policy for shop/prod/db allows no caching" in said
    assert "sealbox approver policy shop/prod/* --approvers … --max-cache SECONDS" in said
    cache.explain_not_cached("default", _read(until=0), closed)
    assert _said(caplog) == []  # once

    opened = {"shop/prod/db": (0.0, {"max_cache_seconds": 600})}
    cache.explain_not_cached("default", _read(until=0), opened)
    [said] = _said(caplog)
    assert "the approver released the values without caching" in said
    assert "cache_seconds" in said

    cache.explain_not_cached("work", _read(until=int(time.time()) + 300), opened)
    [said] = _said(caplog)
    assert "no cache agent runs for profile 'work'" in said
    assert "`sealbox cache start --profile work`" in said


def test_a_process_tree_value_whose_tree_cannot_be_told_is_refused_not_widened() -> None:
    import subprocess
    import time as clock

    from sealbox.client import cache_agent

    class StillLoggedIn:
        def current(self) -> bool:
            return True

    gone = subprocess.Popen(["true"])
    gone.wait()
    agent = cache_agent._Agent("default", StillLoggedIn())  # type: ignore[arg-type]
    entry = {"ref": "sealbox://a/b/c/d", "until": int(clock.time()) + 60, "request": "r" * 43,
             "hex": b"value-of-the-tree".hex()}  # fmt: skip
    answer = agent.handle({"op": "put", "scope": "process-tree", "entries": [entry]}, gone.pid)
    assert "error" in answer
    assert agent.entries == {}
    kept = agent.handle({"op": "put", "scope": "user", "entries": [entry]}, gone.pid)
    assert kept == {"stored": 1}
