"""The README runs as written: every code block, in order, on one machine, against a fresh relay.

Shell blocks are real processes, line by line, with the README's own text: `./scripts/up`
starts the relay in the background (as "the main job"), `sealbox approver init
--setup-token -` gets the banner's token typed into a pseudo-terminal, `sealbox approve`
keeps running in a pseudo-terminal where the test types what a person would (the user code
the login shows, `yes`, the passphrase), `sealbox login` waits for that, and every other
line runs through `sh -c` and must succeed.  (The long-running and interactive ones are their
own processes, split as a shell would, so that Ctrl-C reaches them and not a shell.)  Python
blocks run with the installed package.

Three things are adapted, never the commands themselves: the port (`localhost:8300` may be
taken on a test machine; a free one is used), `.venv/bin/` (the virtual environment running
these tests, which is `.venv` when `./scripts/test` runs them), and where state lives
(SEALBOX_DATA_DIR, SEALBOX_CONFIG_DIR and SEALBOX_RUNTIME_DIR in a temporary directory, so
the test touches nothing of the user's).

A block, or one command of a block, preceded by ``<!-- readme-test: skip [`COMMAND`] because
REASON -->`` is not run; the walkthrough and the SDK snippet may not be skipped.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pexpect
import pytest
from e2e_support import free_port

from sealbox.approver.rules import parse_rules

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV_BIN = Path(sys.prefix) / "bin"
PASSPHRASE = "a passphrase typed at the prompt"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip(?:\s+`([^`]+)`)?\s+because\s+(\S.*?)\s*-->")

LOGIN_PROMPT = "Type the user code to approve, 'no' to deny, Enter to skip: "
ITEMS_PROMPT = "Items this person may ask for [*/*/*, or 'none']: "
ANSWER_PROMPT = "Approve? Type 'yes' to approve, 'no' to deny, Enter to skip: "
CONFIRM_PROMPT = "Passphrase to confirm: "


@dataclass
class Block:
    language: str
    text: str
    line: int
    """Line of the opening fence in README.md."""
    skip_reason: str | None = None
    skip_commands: dict[str, str] = field(default_factory=dict)

    def commands(self) -> list[str]:
        """The block's shell commands: continuation lines joined, comment lines left out."""
        out: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
        return out


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    lines = README.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.fullmatch(r"```(\S*)", lines[index])
        if not opening:
            index += 1
            continue
        end = lines.index("```", index + 1)
        block = Block(opening.group(1), "\n".join(lines[index + 1 : end]) + "\n", index + 1)
        marker = SKIP.fullmatch(lines[index - 1].strip()) if index else None
        if marker and marker.group(1):
            block.skip_commands[marker.group(1)] = marker.group(2)
        elif marker:
            block.skip_reason = marker.group(2)
        blocks.append(block)
        index = end + 1
    return blocks


def _argv(command: str) -> list[str]:
    """A command without shell syntax, split as sh would; its own process, so that Ctrl-C
    reaches it, not a shell around it."""
    return shlex.split(command, comments=True)


def _command_name(command: str) -> str:
    """The command without its trailing comment: what a skip marker names."""
    return re.sub(r"\s+#.*$", "", command).strip()


# --- what the README promises about its own blocks ------------------------------------------


def test_readme_blocks_are_all_known_and_skips_say_why() -> None:
    blocks = readme_blocks()
    assert blocks
    for block in blocks:
        assert block.language in ("sh", "python", "text", "toml"), f"README.md:{block.line}"
        for command in block.skip_commands:
            assert command in map(_command_name, block.commands()), (block.line, command)
    # Every other HTML comment that mentions the test must be a well-formed marker.
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if "readme-test" in line and line.strip().startswith("<!--"):
            assert SKIP.fullmatch(line.strip()), f"README.md:{number}: {line}"


def test_readme_starts_with_the_two_commands_for_a_fresh_machine() -> None:
    first = readme_blocks()[0]
    assert first.language == "sh"
    assert [_command_name(c) for c in first.commands()] == ["./scripts/up", "./scripts/test"]
    assert "sealbox up" in first.text
    assert "test suite" in first.text


def test_the_walkthrough_and_the_sdk_snippet_are_not_skipped() -> None:
    blocks = readme_blocks()
    walkthrough = [b for b in blocks if "sealbox run" in b.text and "sealbox login" in b.text]
    sdk = [b for b in blocks if b.language == "python" and "sealbox.Client" in b.text
           and "vault.read(" in b.text]  # fmt: skip
    assert len(walkthrough) == 1
    assert len(sdk) == 1
    for block in (*walkthrough, *sdk):
        assert block.skip_reason is None
        assert not block.skip_commands


# --- running it ------------------------------------------------------------------------------


class ApproverTerminal:
    """`sealbox approve` in a pseudo-terminal, answered from a thread as a person would."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.screen = io.StringIO()
        argv = _argv(command)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(ROOT), encoding="utf-8",
                                   timeout=60, dimensions=(50, 200))  # fmt: skip
        self.child.logfile_read = self.screen
        self.user_codes: queue.Queue[str] = queue.Queue()
        self.answered: list[str] = []
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self.child.expect(r"Passphrase for vlt_\w+\.json: ")
        self.child.sendline(PASSPHRASE)
        self.child.expect_exact("Watching for requests, logins, machines, agents and new devices")
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()

    def _answer(self) -> None:
        prompts = [LOGIN_PROMPT, ITEMS_PROMPT, ANSWER_PROMPT, CONFIRM_PROMPT, pexpect.TIMEOUT]
        try:
            while not self._stop.is_set():
                found = self.child.expect_exact(prompts, timeout=0.3)
                if found == 0:  # the code the login's terminal shows, typed here
                    code = self.user_codes.get(timeout=60)
                    self.child.sendline(code)
                    self.answered.append(f"login {code}")
                elif found == 1:
                    self.child.sendline("")  # the default: */*/*
                elif found == 2:
                    self.child.sendline("yes")
                    self.answered.append("yes")
                elif found == 3:
                    self.child.sendline(PASSPHRASE)
        except BaseException as exc:  # reported by the test, with the screen
            self.failure = exc

    @property
    def text(self) -> str:
        return self.screen.getvalue().replace("\r\n", "\n")

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(30)
        if self.child.isalive():
            self.child.sendintr()  # Ctrl-C, as the README says
            with contextlib.suppress(pexpect.EOF, pexpect.TIMEOUT):
                self.child.expect(pexpect.EOF, timeout=30)
        self.child.close(force=True)
        return self.child.exitstatus


class Machine:
    """The one machine of the walkthrough: its relay, its approver terminal, its commands."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        self.env.update({
            "SEALBOX_VENV": sys.prefix, "SEALBOX_DATA_DIR": str(tmp / "data"),
            "SEALBOX_CONFIG_DIR": str(tmp / "config"), "SEALBOX_RUNTIME_DIR": str(tmp / "run"),
        })  # fmt: skip
        self.relay: subprocess.Popen[str] | None = None
        self.relay_output: list[str] = []
        self.approver: ApproverTerminal | None = None
        self.setup_token: str | None = None
        self.outputs: list[tuple[str, str, str]] = []
        """(command as written, stdout, stderr) of every plain command run."""

    def adapt(self, command: str) -> str:
        return command.replace("localhost:8300", f"localhost:{self.port}").replace(
            ".venv/bin/", f"{VENV_BIN}/"
        )

    def run(self, command: str) -> None:
        adapted = self.adapt(command)
        if _command_name(command) == "./scripts/up":
            self.start_relay(adapted)
        elif re.search(r"sealbox approver init .*--setup-token -", command):
            self.approver_init(adapted)
        elif re.search(r"sealbox approve(\s|$)", command):
            self.approver = ApproverTerminal(adapted, self.env)
        elif re.search(r"sealbox login(\s|$)", command):
            self.login(adapted)
        else:
            # Never the suite from inside the suite, marked or not.
            assert "scripts/test" not in command, f"mark {command!r} with a readme-test skip"
            proc = subprocess.Popen(
                ["sh", "-c", adapted], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            try:
                out, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the shell and all it started
                out, err = proc.communicate()
            assert proc.returncode == 0, self.report(command, out + err)
            self.outputs.append((command, out, err))

    def report(self, command: str, output: str) -> str:
        approver = self.approver.text if self.approver else "(not started)"
        return (f"README command failed: {command}\n{output}\n--- approver terminal:\n"
                f"{approver}\n--- relay:\n{''.join(self.relay_output)}")  # fmt: skip

    def start_relay(self, command: str) -> None:
        env = {**self.env, "SEALBOX_PORT": str(self.port)}
        self.relay = subprocess.Popen(
            _argv(command), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        ready = threading.Event()

        def read() -> None:
            assert self.relay is not None
            assert self.relay.stdout is not None
            for line in self.relay.stdout:
                self.relay_output.append(line)
                if "Press Ctrl-C to stop." in line:
                    ready.set()

        self._relay_reader = threading.Thread(target=read, daemon=True)
        self._relay_reader.start()
        # The first start may install into the virtual environment (pip) first.
        deadline = time.monotonic() + 180
        while not ready.wait(0.2):
            assert self.relay.poll() is None, "".join(self.relay_output)
            assert time.monotonic() < deadline, "".join(self.relay_output)
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://localhost:{self.port}/healthz", timeout=1).is_success:
                    break
            assert time.monotonic() < deadline, "".join(self.relay_output)
            time.sleep(0.1)
        found = re.search(r"--setup-token (sbx_st_\S+)", "".join(self.relay_output))
        assert found, "".join(self.relay_output)
        self.setup_token = found.group(1)

    def approver_init(self, command: str) -> None:
        """Paste the token the banner printed, choose a passphrase: on a terminal."""
        assert self.setup_token, "the README must start the relay before approver init"
        screen = io.StringIO()
        argv = _argv(command)
        child = pexpect.spawn(argv[0], argv[1:], env=self.env, cwd=str(ROOT), encoding="utf-8",
                              timeout=60)  # fmt: skip
        child.logfile_read = screen
        try:
            child.expect_exact("Setup token (input hidden): ")
            child.sendline(self.setup_token)
            child.expect_exact("Passphrase for this approver's key file: ")
            child.sendline(PASSPHRASE)
            child.expect_exact("Again, to confirm: ")
            child.sendline(PASSPHRASE)
            child.expect_exact("Vault safety code: ")
            child.expect(pexpect.EOF)
        except (pexpect.EOF, pexpect.TIMEOUT):
            raise AssertionError(self.report(command, screen.getvalue())) from None
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, self.report(command, screen.getvalue())
        assert self.setup_token not in screen.getvalue()  # pasted, never shown
        assert PASSPHRASE not in screen.getvalue()

    def login(self, command: str) -> None:
        """The person's terminal shows a user code; the approver's terminal types it."""
        assert self.approver is not None, "the README must start `sealbox approve` first"
        proc = subprocess.Popen(
            _argv(command), cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        shown = ""
        for line in proc.stdout:
            shown += line
            code = re.search(r"User code:\s+([A-Z]{4}-[A-Z]{4})", line)
            if code:
                self.approver.user_codes.put(code.group(1))
                break
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0, self.report(command, shown + out + err)
        assert "Logged in as cli_" in shown + out

    def stop(self) -> tuple[int | None, int | None]:
        """Ctrl-C to the approver's terminal and to the relay; their exit statuses."""
        approver = self.approver.stop() if self.approver else None
        self.approver = None
        relay = None
        if self.relay is not None:
            if self.relay.poll() is None:
                self.relay.send_signal(signal.SIGINT)  # Ctrl-C in the relay's terminal
            try:
                relay = self.relay.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait(timeout=10)
            finally:
                self._relay_reader.join(10)
                if self.relay.stdout is not None:
                    self.relay.stdout.close()
            self.relay = None
        return approver, relay


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    try:
        yield m
    finally:
        m.stop()


@pytest.mark.timeout(600)
def test_every_readme_block_runs_as_written(machine: Machine, tmp_path: Path) -> None:
    ran_python = 0
    for number, block in enumerate(readme_blocks()):
        if block.language == "text" or block.skip_reason:
            continue
        if block.language == "toml":
            # A rules file for the automated approver: it must load as one, as written.
            parse_rules(block.text, source=f"README.md:{block.line}")
            continue
        if block.language == "python":
            script = tmp_path / f"readme_block_{number}.py"
            script.write_text(block.text)
            done = subprocess.run(
                [sys.executable, str(script)], cwd=tmp_path, env=machine.env,
                capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
            assert done.returncode == 0, machine.report(f"README.md:{block.line} (python)",
                                                        done.stdout + done.stderr)  # fmt: skip
            machine.outputs.append((f"python block {block.line}", done.stdout, done.stderr))
            ran_python += 1
            continue
        for command in block.commands():
            if _command_name(command) not in block.skip_commands:
                machine.run(command)
        assert machine.approver is None or machine.approver.failure is None, (
            machine.approver.failure, machine.approver.text
        )  # fmt: skip
    assert ran_python == 1

    # What the README says these commands print, they print.
    def printed(fragment: str) -> str:
        return next(out for command, out, _ in machine.outputs if fragment in command)

    assert printed("sealbox read sealbox://shop/prod/db/password") == "hunter2\n"
    assert printed("sealbox run") == "connecting with <concealed by sealbox>\n"
    assert printed("python block") == "2 items; shop/prod/db has 1 version(s)\n"
    assert re.search(r"profile:\s+work", printed("sealbox whoami"))

    # Everything was answered in the approver's terminal, which never showed a value.
    assert machine.approver is not None
    screen = machine.approver.text
    assert [a.split()[0] for a in machine.approver.answered] == [
        "login", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "login",
    ]  # fmt: skip
    for secret in ("hunter2", "tok-123", PASSPHRASE):
        assert secret not in screen
    approver_rc, relay_rc = machine.stop()
    assert approver_rc == 0, screen
    assert relay_rc == 0, "".join(machine.relay_output)  # Ctrl-C stops the relay cleanly
