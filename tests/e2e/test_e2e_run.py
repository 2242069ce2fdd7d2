"""`sealbox run` end to end: a real relay, a real approver, the CLI on pipes and on a terminal.

A command that cannot be found makes no request at all.  On pipes, stdout
and stderr stay apart and are masked, a short value only as a whole word (and
`run` says so once).  On a terminal (pexpect), the command gets a terminal of
its own: colour escapes arrive intact around the masked value, the size
follows ours, typing and line editing reach the command, Ctrl-C reaches it,
and our terminal's modes are back afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from e2e_support import SEALBOX
from loop_support import (
    APPROVE_ALL,
    Deployment,
    ServeProcess,
    assert_absent,
    env_for,
    outputs,
)

PASSWORD = "pw-7Hq2/x+Zk&9=never-shown"
USER = "app"  # 3 bytes: masked only as a whole word
JSON_VALUE = 'tok\u00e9n/"q"<x>'  # escaped in JSON output
ITEM = "shop/prod/db"
MASKED = "<concealed by sealbox>"
NOTICE = "sealbox run: 1 value shorter than 8 bytes is masked only as a whole word"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("run"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def bot(d: Deployment) -> Iterator[ServeProcess]:
    serve = d.serve(APPROVE_ALL)
    stored = d.store(ITEM, {"password": PASSWORD, "user": USER, "token": JSON_VALUE})
    assert stored.returncode == 0, outputs(stored)
    yield serve
    serve.stop()


def _secret_env() -> list[str]:
    return [f"--env={name}=sealbox://{ITEM}/{field}"
            for name, field in (("DB_PASSWORD", "password"), ("DB_USER", "user"),
                                ("TOKEN", "token"))]  # fmt: skip


def _access_requests(d: Deployment) -> list[dict[str, Any]]:
    session = d.session()
    try:
        path = "/audit?action=access.requested&limit=1000"
        return list(session.ok("GET", path, "audit")["events"])
    finally:
        session.close()


def _pending(d: Deployment) -> list[dict[str, Any]]:
    session = d.session()
    try:
        return list(session.ok("GET", "/approvals", "listing")["requests"])
    finally:
        session.close()


# --- a command that cannot run --------------------------------------------------------------


def test_a_command_that_cannot_run_asks_for_nothing(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    before = _access_requests(d)
    decided = len(bot.decisions())
    not_executable = tmp_path / "notes.txt"
    not_executable.write_text("not a program\n")
    for command, why in (
        ("nonexistent-cmd", "not found on PATH"),
        ("./no-such-script", "no executable file there"),
        (str(not_executable), "no executable file there"),
    ):
        done = d.cli("run", *_secret_env(), "--", command, "arg")
        assert done.returncode == 2, outputs(done)
        assert done.stderr == f"sealbox run: cannot run {command!r}: {why}\n"
        assert "Waiting for approval" not in done.stderr
    # The relay never heard of it: no access request in its audit, none pending, none decided.
    assert _access_requests(d) == before
    assert _pending(d) == []
    assert len(bot.decisions()) == decided


def test_one_run_with_references_to_several_items_is_one_prompt(
    d: Deployment, bot: ServeProcess
) -> None:
    """A bundle: every reference a task needs (here two items, four fields) in one approval."""
    other = d.store("shop/prod/api", {"key": "api-key-2f9c-never-shown"})
    assert other.returncode == 0, outputs(other)
    before = _access_requests(d)
    decided = len(bot.decisions())
    done = d.cli("run", *_secret_env(), "--env", "API_KEY=sealbox://shop/prod/api/key", "--",
                 "sh", "-c", 'test -n "$DB_PASSWORD$DB_USER$TOKEN$API_KEY" && echo ok')  # fmt: skip
    assert done.returncode == 0, outputs(done)
    assert done.stdout == "ok\n"
    asked = _access_requests(d)[len(before) :]
    assert len(asked) == 1, asked  # one request, so one prompt for the approvers
    items = asked[0]["detail"]["items"]
    assert sorted((i["path"], tuple(i["fields"])) for i in items) == [
        ("shop/prod/api", ("key",)), (ITEM, ("password", "token", "user")),
    ]  # fmt: skip
    assert len(bot.decisions()) == decided + 1


def test_the_command_is_looked_up_on_the_path_it_will_get(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / "deploy-tool"
    tool.write_text('#!/bin/sh\necho "deploying as $DB_USER"\n')
    tool.chmod(0o755)
    env_file = tmp_path / "deploy.env"
    env_file.write_text(f"PATH={tools}:{os.environ['PATH']}\n")
    done = d.cli("run", "--env-file", str(env_file), *_secret_env(), "--", "deploy-tool")
    assert done.returncode == 0, outputs(done)
    assert done.stdout == f"deploying as {MASKED}\n"


# --- pipes ----------------------------------------------------------------------------------

PIPE_SCRIPT = r"""
import json, os, sys
pw, user, token = os.environ["DB_PASSWORD"], os.environ["DB_USER"], os.environ["TOKEN"]
print("my application is happy")
print(f"user={user} password={pw}")
print(json.dumps({"token": token, "password": pw, "user": user}))
sys.stdout.flush()
for i in range(0, len(pw)):  # the value written in two pieces, in two writes
    os.write(1, pw[:i].encode()); os.write(1, pw[i:].encode() + b"\n")
print(f"to stderr: {pw} as {user}", file=sys.stderr)
sys.exit(7)
"""


def test_on_pipes_stdout_and_stderr_are_masked_apart(d: Deployment, bot: ServeProcess) -> None:
    done = d.cli("run", *_secret_env(), "--", sys.executable, "-c", PIPE_SCRIPT)
    assert done.returncode == 7, outputs(done)  # the command's own status
    lines = done.stdout.splitlines()
    assert lines[0] == "my application is happy"  # "app" is not masked inside a word
    assert lines[1] == f"user={MASKED} password={MASKED}"
    assert json.loads(lines[2]) == {"token": MASKED, "password": MASKED, "user": MASKED}
    assert lines[3:] == [MASKED] * len(PASSWORD)
    assert f"to stderr: {MASKED} as {MASKED}" in done.stderr
    assert "to stderr" not in done.stdout
    # Said once, naming no value.
    assert done.stderr.count("masked only as a whole word") == 1
    assert NOTICE + "\n" in done.stderr
    assert_absent([PASSWORD, json.dumps(JSON_VALUE)[1:-1], JSON_VALUE], done.stdout, done.stderr)
    assert not re.search(r"\bapp\b", outputs(done))


def test_on_pipes_a_signal_gives_128_plus_its_number(d: Deployment, bot: ServeProcess) -> None:
    done = d.cli("run", *_secret_env(), "--", "sh", "-c", 'echo "$DB_PASSWORD"; kill -TERM $$')
    assert done.returncode == 128 + 15, outputs(done)
    assert done.stdout == MASKED + "\n"


def test_when_our_reader_goes_away_the_command_learns_it(d: Deployment, bot: ServeProcess) -> None:
    # `sealbox run -- yes | head -1`: as without sealbox, `yes` gets SIGPIPE and all end.
    proc = subprocess.Popen([*SEALBOX, "run", *_secret_env(), "--", "yes", "$DB_PASSWORD"],
                            env=env_for(d.client_config), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"$DB_PASSWORD\n"
        proc.stdout.close()
        assert proc.wait(timeout=30) == 128 + signal.SIGPIPE
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_without_masking_values_show_and_nothing_is_said(d: Deployment, bot: ServeProcess) -> None:
    done = d.cli("run", "--no-masking", *_secret_env(), "--", "sh", "-c",
                 'echo "$DB_USER $DB_PASSWORD" | base64')  # fmt: skip
    assert done.returncode == 0, outputs(done)
    assert base64.b64decode(done.stdout) == f"{USER} {PASSWORD}\n".encode()
    assert "masked" not in done.stderr


# --- a terminal -----------------------------------------------------------------------------

TERMINAL_SCRIPT = r"""
import os, signal, sys
pw, user = os.environ["DB_PASSWORD"], os.environ["DB_USER"]
print("\x1b[1;31m" + pw + "\x1b[0m and \x1b[32m" + user + "\x1b[0m in green")
print("ttys:", os.isatty(0), os.isatty(1), os.isatty(2))
os.close(os.open("/dev/tty", os.O_RDWR))  # it has a controlling terminal
cols, rows = os.get_terminal_size()
print(f"size {cols}x{rows} pid {os.getpid()}")
resized = lambda *_: print("resized %dx%d" % os.get_terminal_size(), flush=True)
signal.signal(signal.SIGWINCH, resized)
print("ready", flush=True)
line = input("type: ")
print(f"got [{line}]", flush=True)
if line == "sleep":
    signal.pause()
sys.exit(5)
"""


class Screen:
    """`sh -c "sealbox run …; echo status=$?; stty -a"` in a pseudo-terminal, bytes kept."""

    def __init__(self, d: Deployment, script: Path) -> None:
        run = shlex.join([*SEALBOX, "run", *_secret_env(), "--", sys.executable, str(script)])
        self.child = pexpect.spawn("sh", ["-c", f"{run}; echo status=$?; stty -a"],
                                   env=env_for(d.client_config), timeout=60,
                                   dimensions=(40, 132))  # fmt: skip
        self._log: list[bytes] = []
        self.child.logfile_read = self

    def write(self, data: bytes) -> None:
        self._log.append(data)

    def flush(self) -> None:
        pass

    @property
    def shown(self) -> bytes:
        return b"".join(self._log)

    def expect(self, text: bytes) -> None:
        try:
            self.child.expect_exact(text)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(f"never showed {text!r}:\n{self.shown!r}") from None

    def finish(self) -> tuple[int, str]:
        """The run's status, and the modes `stty -a` showed after it."""
        self.expect(b"status=")
        self.child.expect(pexpect.EOF)
        self.child.close()
        after = self.shown[self.shown.rindex(b"status=") :].decode()
        return int(re.match(r"status=(\d+)", after).group(1)), after  # type: ignore[union-attr]

    def kill(self) -> None:
        self.child.close(force=True)


@pytest.fixture
def terminal_script(tmp_path: Path) -> Path:
    script = tmp_path / "terminal_check.py"
    script.write_text(TERMINAL_SCRIPT)
    return script


def _modes_restored(stty: str) -> None:
    # Raw mode turns these off; the person's shell needs them back.
    for mode in ("icanon", "echo", "isig", "icrnl", "opost"):
        assert re.search(rf"(?<![-\w]){mode}\b", stty), (mode, stty)


def test_on_a_terminal_colours_survive_and_the_terminal_works(
    d: Deployment, bot: ServeProcess, terminal_script: Path
) -> None:
    screen = Screen(d, terminal_script)
    try:
        screen.expect(b"ready")
        screen.expect(b"type: ")
        # The colour escapes arrive byte for byte around the masked values.
        assert (b"\x1b[1;31m" + MASKED.encode() + b"\x1b[0m and \x1b[32m" + MASKED.encode()
                + b"\x1b[0m in green") in screen.shown  # fmt: skip
        assert b"ttys: True True True" in screen.shown
        assert b"size 132x40 pid " in screen.shown
        # Our terminal's new size reaches the command's (SIGWINCH).
        screen.child.setwinsize(30, 100)
        screen.expect(b"resized 100x30")
        # Typing reaches it, and its terminal edits the line (backspace).
        screen.child.send(b"hellx\x7fo\r")
        screen.expect(b"got [hello]")
        status, stty = screen.finish()
    finally:
        screen.kill()
    assert status == 5
    _modes_restored(stty)
    assert PASSWORD.encode() not in screen.shown
    assert not re.search(rb"(?<![A-Za-z0-9])app(?![A-Za-z0-9])", screen.shown)


def test_on_a_terminal_ctrl_c_reaches_the_command_and_the_modes_come_back(
    d: Deployment, bot: ServeProcess, terminal_script: Path
) -> None:
    screen = Screen(d, terminal_script)
    try:
        screen.expect(b"type: ")
        screen.child.send(b"sleep\r")
        screen.expect(b"got [sleep]")
        screen.child.sendintr()  # typed, so it goes to the command's terminal
        status, stty = screen.finish()
    finally:
        screen.kill()
    assert status == 128 + 2
    _modes_restored(stty)


def test_on_a_terminal_ctrl_z_suspends_and_fg_resumes(
    d: Deployment, bot: ServeProcess, terminal_script: Path
) -> None:
    env = env_for(d.client_config, PS1="shell$ ")
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env=env, timeout=60,
                          dimensions=(40, 132))  # fmt: skip
    try:
        shell.expect_exact("shell$ ")
        run = shlex.join(
            [*SEALBOX, "run", *_secret_env(), "--", sys.executable, str(terminal_script)]
        )
        shell.sendline(run)
        shell.expect(rb"pid (\d+)")
        pid = int(shell.match.group(1))
        shell.expect_exact("type: ")
        # Ctrl-Z is typed on the command's terminal; sealbox stops the command and
        # itself, and the shell has its prompt again (bash keeps the modes of a
        # stopped job and puts its own back, so they say nothing here).
        shell.sendcontrol("z")
        shell.expect_exact("Stopped")
        shell.expect_exact("shell$ ")
        shell.sendline("jobs -l; echo jobs-$((1 + 1))")
        shell.expect_exact("jobs-2\r\n")
        assert "Stopped" in shell.before.decode()
        # The command is stopped too, not running on behind the prompt.
        assert Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T"
        shell.sendline("fg")
        shell.expect_exact(terminal_script.name)  # bash names the job it resumes
        shell.send(b"on again\r")
        shell.expect_exact("got [on again]")
        shell.expect_exact("shell$ ")
        shell.sendline("echo status=$?")
        shell.expect(r"status=(\d+)")
        assert shell.match.group(1) == b"5"
    finally:
        shell.close(force=True)
