"""The interactive commands in a pseudo-terminal: what a person sees and types.

`sealbox approve`, `sealbox login` and `sealbox approver add` run in a real
pseudo-terminal (pexpect) against a real `sealbox up`; the person's `sealbox
read` and `sealbox store` run as plain subprocesses and wait for the answer
typed in the approver's terminal.  The tests check what the terminal shows
(verified facts apart from what only the relay reports, never a secret value,
never the passphrase) and what typing does (`yes` releases, `no` denies with a
reason, a wrong passphrase or a wrong code answers nothing).

`sealbox approve` must never go stale: a request whose passphrase was
mistyped is offered again, a skipped one comes back after a new one, one that
ended while on screen (withdrawn, answered by another approver) is dropped
with a plain line, one this approver answered is never offered again, a
tampered one is refused with a signed refusal, and a relay outage gives one
"lost" line and one "back" line.

One deployment (relay, first approver, one logged-in person, one stored
item) is shared by the module; each test leaves nothing pending behind it.
Pairing a second approver changes the vault's directory, so that test has a
deployment of its own; so do the tests with two approvers and the outage.
"""

from __future__ import annotations

import getpass
import io
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from e2e_support import RelayProcess
from loop_support import APPROVE_ALL, PASSPHRASE, SEALBOX, Deployment, env_for
from test_e2e_hostile_proxy import APPROVAL, HostileProxy, _on, _point_at, _swap_epk

SECRET = "s3cr3t-db-password-9f2c"
TOKEN = "tok_live_7d1e5a-never-on-screen"
QR_BLOCKS = ("\u2588", "\u2580", "\u2584")
ANSWER = "Approve? Type 'yes' to approve, 'no' to deny, Enter to skip: "
CONFIRM = "Passphrase to confirm: "


class Terminal:
    """A `sealbox` command in a pseudo-terminal; all it showed is kept in ``screen``."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._log = io.StringIO()
        self.child = pexpect.spawn(SEALBOX[0], [*SEALBOX[1:], *args], env=env,
                                   encoding="utf-8", timeout=30, dimensions=(50, 200))  # fmt: skip
        self.child.logfile_read = self._log

    @property
    def screen(self) -> str:
        return self._log.getvalue().replace("\r\n", "\n")

    def since(self, marker: str) -> str:
        """What the terminal showed from the last ``marker`` on."""
        screen = self.screen
        assert marker in screen, screen
        return screen[screen.rindex(marker) :]

    def expect(self, text: str, timeout: float = 30) -> None:
        try:
            self.child.expect_exact(text, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(f"the terminal never showed {text!r}:\n{self.screen}") from None

    def match(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        try:
            self.child.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF):
            raise AssertionError(
                f"the terminal never matched {pattern!r}:\n{self.screen}"
            ) from None
        found = self.child.match
        assert isinstance(found, re.Match)
        return found

    def type(self, line: str) -> None:
        self.child.sendline(line)

    def finish(self, timeout: float = 60) -> int:
        """Wait for the command to end; its exit status."""
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT:
            raise AssertionError(f"the command did not end:\n{self.screen}") from None
        self.child.close()
        assert self.child.exitstatus is not None, self.child.signalstatus
        return int(self.child.exitstatus)

    def stop(self) -> int:
        """Ctrl-C, as a person stops `sealbox approve`; the exit status."""
        self.child.sendintr()
        return self.finish()

    def kill(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


class Started:
    """Everything a test starts, ended at teardown whatever happened."""

    def __init__(self) -> None:
        self.procs: list[Terminal | subprocess.Popen[str]] = []

    def terminal(self, args: list[str], env: dict[str, str]) -> Terminal:
        term = Terminal(args, env)
        self.procs.append(term)
        return term

    def approve(self, d: Deployment, *extra: str, ask: bool = True) -> tuple[Terminal, str]:
        """`sealbox approve` up and watching; with ``ask`` it asks for the passphrase itself.

        Returns the terminal and the vault safety code its header shows.
        """
        env = env_for(d.approver_config)
        if ask:
            del env["SEALBOX_PASSPHRASE"]
        term = self.terminal(["approve", *extra], env)
        if ask:
            term.expect(f"Passphrase for {d.key_file.name}: ")
            term.type(PASSPHRASE)
        safety = term.match(r"Vault safety code: ([0-9][0-9 ]*[0-9])\r\n").group(1)
        term.expect(
            "Watching for requests, logins, machines, agents and new devices (Ctrl-C to stop)."
        )
        return term, safety

    def person(self, d: Deployment, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        """The logged-in person's command, waiting for an approval in the background."""
        proc = subprocess.Popen(
            [*SEALBOX, *args], env=env_for(d.client_config), cwd=cwd, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def end(self) -> None:
        procs, self.procs = self.procs, []
        for proc in reversed(procs):
            if isinstance(proc, Terminal):
                proc.kill()
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # withdraws its pending request
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.communicate(timeout=20)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Relay, first approver `laptop`, person `bo@laptop`, and shop/prod/db stored."""
    d = Deployment(tmp_path_factory.mktemp("terminal"))
    try:
        bot = d.serve(APPROVE_ALL)
        try:
            stored = d.store("shop/prod/db", {"password": SECRET})
        finally:
            bot.stop()
        assert stored.returncode == 0, stored.stderr
        yield d
    finally:
        d.close()


@pytest.fixture
def started() -> Iterator[Started]:
    procs = Started()
    try:
        yield procs
    finally:
        procs.end()


def pending(d: Deployment, what: str = "/approvals") -> list[dict[str, Any]]:
    """What the relay holds pending for the first approver (requests, logins or pairings)."""
    key = {"/approvals": "requests", "/device-requests": "device_requests",
           "/pairing-requests": "pairing_requests"}[what]  # fmt: skip
    session = d.session()
    try:
        return list(session.ok("GET", what, "listing")[key])
    finally:
        session.close()


def request_block(term: Terminal, title: str) -> tuple[str, str, str]:
    """The request shown last: its short id, its verified part and its server-reported part."""
    block = term.since(f"=== {title} ")
    rid = re.match(rf"=== {title} (\S+) =+\n", block)
    assert rid, block
    assert block.count("Verified (") == 1, block
    assert block.count("Reported by server (not verified):") == 1, block
    verified = block[block.index("Verified (") : block.index("Reported by server")]
    reported = block[block.index("Reported by server") :]
    return rid.group(1), verified, reported


# --- access requests ----------------------------------------------------------------------


def test_approve_shows_the_verified_request_and_releases_after_yes_and_passphrase(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    reader = started.person(
        d, "read", "sealbox://shop/prod/db/password", "--purpose", "rotate the backups",
        cwd=tmp_path,
    )  # fmt: skip
    approve, _ = started.approve(d)
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    rid, verified, reported = request_block(approve, "ACCESS REQUEST")

    # Signed by the client and checked against the directory: labelled as verified.
    assert verified.startswith(
        "Verified (certificate checked against the directory; details signed by the client):"
    )
    assert f"  who:      bo@laptop (human, {d.client_id})\n" in verified
    assert f"certified by laptop ({d.keys.record.id}); scopes read, write" in verified
    assert f"  host:     {socket.gethostname()}\n" in verified
    assert f"  user:     {getpass.getuser()}" in verified
    assert f"(pid {reader.pid}," in verified
    command = re.search(r"  command:  (.*)\n", verified)
    assert command, verified
    assert command.group(1).endswith(
        "read sealbox://shop/prod/db/password --purpose 'rotate the backups'"
    )
    assert f"  cwd:      {tmp_path}\n" in verified
    assert "  purpose:  rotate the backups\n" in verified
    assert "  reads:    shop/prod/db v1: password  (1-of-1)\n" in verified
    assert re.search(r"  time:     asked .+; expires .+ \(in [45]:\d\d\)\n", verified), verified
    assert "  cache:    no caching; approvals so far 0/1\n" in verified
    # Only the relay says where the request came from: shown apart, as not verified.
    assert "source IP" not in verified
    assert "127.0.0.1" not in verified
    assert re.search(r"Reported by server \(not verified\):\n  source IP: 127\.0\.0\.1\n", reported)

    assert reader.poll() is None, "the read did not wait for the approver"
    approve.type("yes")
    approve.expect(CONFIRM)
    approve.type(PASSPHRASE)
    approve.expect(f"Released {rid}.")
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out == SECRET + "\n"
    assert f"(request {rid})" in err  # the same request in both terminals

    assert approve.stop() == 0
    assert approve.screen.rstrip().endswith("Stopped.")
    assert SECRET not in approve.screen
    assert PASSPHRASE not in approve.screen  # typed with echo off
    assert "yes" in approve.since(ANSWER)  # what the person typed is echoed


def test_approve_no_denies_with_a_reason_the_reader_sees(
    shared: Deployment, started: Started
) -> None:
    d = shared
    reader = started.person(d, "read", "sealbox://shop/prod/db/password",
                            "--purpose", "just curious")  # fmt: skip
    # One passphrase at the start, none per answer while unlocked.
    approve, _ = started.approve(d, "--unlock-for", "10m")
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    rid, verified, _ = request_block(approve, "ACCESS REQUEST")
    assert "  purpose:  just curious\n" in verified
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("not during the change freeze")
    approve.expect(f"Denied {rid}.")
    assert CONFIRM not in approve.screen

    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 3, err
    assert out == ""
    assert "not during the change freeze" in err
    assert not [r for r in pending(d) if r["id"].startswith(rid)]
    assert approve.stop() == 0
    assert SECRET not in approve.screen


def test_approve_shows_the_relays_count_of_the_requesters_recent_requests_apart(
    shared: Deployment, started: Started
) -> None:
    """How often this requester asked lately: the relay's count, shown as not verified."""
    d = shared
    approve, _ = started.approve(d, "--unlock-for", "10m")
    first = started.person(d, "read", "sealbox://shop/prod/db/password", "--purpose", "again?")
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("asked too often")
    approve.expect("Denied ")
    first.communicate(timeout=60)
    reader = started.person(d, "read", "sealbox://shop/prod/db/password", "--purpose", "once more")
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    rid, verified, reported = request_block(approve, "ACCESS REQUEST")
    recent = next(r for r in pending(d) if r["id"].startswith(rid))["reported_by_server"]["recent"]
    assert recent["requests"] >= 2
    assert recent["denials"] >= 1
    assert recent["locked"] is False
    line = (f"  this requester: {recent['requests']} requests in the last hour, "
            f"{recent['denials']} denied\n")  # fmt: skip
    # Under what only the relay says, never among the verified facts.
    assert line in reported
    assert "this requester" not in verified
    assert re.search(r"Reported by server \(not verified\):\n  source IP: 127\.0\.0\.1\n"
                     r"  this requester: ", reported)  # fmt: skip
    approve.type("yes")
    approve.expect(f"Released {rid}.")
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out == SECRET + "\n"
    assert approve.stop() == 0


def test_a_wrong_passphrase_answers_nothing_and_the_request_is_offered_again(
    shared: Deployment, started: Started
) -> None:
    d = shared
    reader = started.person(d, "read", "sealbox://shop/prod/db/password",
                            "--purpose", "nightly export")  # fmt: skip
    approve, _ = started.approve(d)
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    rid, _, _ = request_block(approve, "ACCESS REQUEST")
    approve.type("yes")
    approve.expect(CONFIRM)
    approve.type("not the passphrase")
    approve.expect("Wrong passphrase: nothing was answered.")
    # Offered again at once, in the same session, still unanswered.
    approve.expect(f"=== ACCESS REQUEST {rid} ")
    approve.expect(ANSWER)
    assert "Released" not in approve.screen
    assert reader.poll() is None
    [still] = [r for r in pending(d) if r["id"].startswith(rid)]
    assert still["state"] == "pending"
    assert still["approvals"] == 0

    # Enter skips it: it stays pending, and is not asked again in a loop.
    approve.type("")
    approve.expect("Skipped: it stays pending and is offered again later.")
    with pytest.raises(AssertionError):
        approve.expect(f"=== ACCESS REQUEST {rid} ", timeout=3)
    assert approve.screen.count(f"=== ACCESS REQUEST {rid} ") == 2

    # A new session offers it too (it is still waiting); this time the right passphrase.
    assert approve.stop() == 0
    again, _ = started.approve(d, ask=False)
    again.expect(f"=== ACCESS REQUEST {rid} ")
    again.expect(ANSWER)
    again.type("yes")
    again.expect(f"Released {rid}.")
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out == SECRET + "\n"
    assert again.stop() == 0
    assert SECRET not in approve.screen + again.screen
    assert PASSPHRASE not in approve.screen


def test_a_skipped_request_comes_back_after_a_new_one(shared: Deployment, started: Started) -> None:
    d = shared
    first = started.person(d, "read", "sealbox://shop/prod/db/password",
                           "--purpose", "first, skipped")  # fmt: skip
    approve, _ = started.approve(d, "--unlock-for", "10m")
    approve.expect("  purpose:  first, skipped")
    approve.expect(ANSWER)
    skipped, _, _ = request_block(approve, "ACCESS REQUEST")
    approve.type("")
    approve.expect("Skipped: it stays pending and is offered again later.")

    # A new request is offered at once, before the skipped one comes back.
    second = started.person(d, "read", "sealbox://shop/prod/db/password",
                            "--purpose", "second, answered")  # fmt: skip
    approve.expect("  purpose:  second, answered")
    approve.expect(ANSWER)
    newer, _, _ = request_block(approve, "ACCESS REQUEST")
    assert newer != skipped
    approve.type("yes")
    approve.expect(f"Released {newer}.")
    out, err = second.communicate(timeout=60)
    assert (second.returncode, out) == (0, SECRET + "\n"), err

    # Then the skipped one, still waiting, is offered again.
    approve.expect(f"=== ACCESS REQUEST {skipped} ")
    approve.expect(ANSWER)
    assert "  purpose:  first, skipped" in approve.since(f"=== ACCESS REQUEST {skipped} ")
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("skipped, then refused")
    approve.expect(f"Denied {skipped}.")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 3, err
    assert "skipped, then refused" in err
    assert approve.stop() == 0
    assert SECRET not in approve.screen


def test_a_request_withdrawn_while_the_approver_decides_does_not_end_approve(
    shared: Deployment, started: Started
) -> None:
    d = shared
    reader = started.person(d, "read", "sealbox://shop/prod/db/password",
                            "--purpose", "changed my mind")  # fmt: skip
    approve, _ = started.approve(d, ask=False)
    approve.expect("=== ACCESS REQUEST ")
    approve.expect(ANSWER)
    rid, _, _ = request_block(approve, "ACCESS REQUEST")
    reader.send_signal(signal.SIGINT)  # the person gives up while the approver reads
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 130
    assert out == ""

    # The answer comes too late: the approver is told plainly, nothing is sent, and
    # `sealbox approve` keeps watching.
    approve.type("yes")
    approve.expect(f"Request {rid} was withdrawn by its requester while on screen; "
                   "nothing was sent.")  # fmt: skip
    assert f"Released {rid}." not in approve.screen
    assert "!!" not in approve.screen
    assert "bug in sealbox" not in approve.screen
    second = started.person(d, "read", "sealbox://shop/prod/db/password",
                            "--purpose", "second try")  # fmt: skip
    approve.expect("  purpose:  second try")
    approve.expect(ANSWER)
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("")  # the default reason
    out, err = second.communicate(timeout=60)
    assert second.returncode == 3, err
    assert out == ""
    assert "denied by an approver" in err
    # The withdrawn request is never offered again.
    assert approve.screen.count(f"=== ACCESS REQUEST {rid} ") == 1
    assert approve.stop() == 0
    assert SECRET not in approve.screen


def test_a_request_that_does_not_verify_is_refused_and_its_reader_told_at_once(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    """The relay (a tampering proxy here) swaps the one-time key in what this approver sees.

    The terminal does not show the request: it refuses it with a signed refusal
    and says so; the person's read fails at once (exit 5), told why.
    """
    d = shared
    config = tmp_path / "proxied"
    key_file = config / "approvers" / d.key_file.name
    key_file.parent.mkdir(parents=True)
    shutil.copy2(d.key_file, key_file)
    proxy = HostileProxy(d.url)
    try:
        _point_at(key_file, proxy.url)

        def swap(entry: Any) -> Any:
            _swap_epk(entry, "")
            return entry

        proxy.tamper = _on("GET", APPROVAL, swap)
        approve = started.terminal(["approve"], env_for(config))
        approve.expect(
            "Watching for requests, logins, machines, agents and new devices (Ctrl-C to stop)."
        )
        began = time.monotonic()
        done = d.cli("read", "sealbox://shop/prod/db/password", "--purpose", "tampered",
                     timeout=60)  # fmt: skip
        took = time.monotonic() - began
        approve.match(r"!! Request \S+ does NOT verify \(signature_invalid: [^\r\n]+\)\. "
                      r"It is not shown\.")  # fmt: skip
        approve.expect("Refused with a signed refusal: its requester is told at once. "
                       "Tell your team: the relay may be tampering.")  # fmt: skip
        assert done.returncode == 5, done.stdout + done.stderr
        assert "[refused_unverifiable]" in done.stderr
        assert "the request does not verify: signature_invalid" in done.stderr
        assert done.stdout == ""
        assert took < 30  # not the request's 300 s expiry
        assert ANSWER not in approve.screen
        assert "=== ACCESS REQUEST" not in approve.screen
        assert approve.stop() == 0
        assert SECRET not in approve.screen + done.stderr
        assert not pending(d)
    finally:
        proxy.close()


# --- store requests ------------------------------------------------------------------------


def test_approve_a_store_request_shows_field_names_never_values(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    value = tmp_path / "token.txt"
    value.write_text(TOKEN)
    store = started.person(d, "store", "shop/prod/api", "--field", f"token=@{value}",
                           "--purpose", "new API token")  # fmt: skip
    # SEALBOX_PASSPHRASE in the environment: used without asking.
    approve, _ = started.approve(d, ask=False)
    approve.expect("=== STORE REQUEST ")
    approve.expect(ANSWER)
    rid, verified, reported = request_block(approve, "STORE REQUEST")
    assert f"  who:      bo@laptop (human, {d.client_id})\n" in verified
    assert "  purpose:  new API token\n" in verified
    # (One column further right than the other values: "stores:" is longer than "reads:".)
    assert re.search(r"\n  stores: +shop/prod/api v1: token  \(1-of-1\)\n", verified), verified
    assert "cache:" not in verified
    assert "  source IP: 127.0.0.1\n" in reported
    assert store.poll() is None

    approve.type("yes")
    approve.expect("Stored shop/prod/api v1.")
    out, err = store.communicate(timeout=60)
    assert store.returncode == 0, err
    assert "Stored shop/prod/api version 1 (token)" in out
    assert f"(request {rid})" in err
    assert approve.stop() == 0
    assert TOKEN not in approve.screen
    assert "Passphrase" not in approve.screen


# --- logins ----------------------------------------------------------------------------------


def test_a_login_approved_in_the_terminal_after_a_mistyped_user_code(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    login = started.terminal(["login", "--server", d.url, "--name", "ana@desk"],
                             env_for(tmp_path / "ana"))  # fmt: skip
    code = login.match(r"User code:\s+([A-Z]{4}-[A-Z]{4})\r\n").group(1)
    login.expect(f"Approve at:  {d.url}/device?user_code={code}")
    client = login.match(r"Client id:\s+(cli_\w+)\r\n").group(1)
    fingerprint = login.match(r"Client key fingerprint: (sha256:\S+)\r\n").group(1)
    key_code = login.match(r"Client key safety code: (\S[^\r\n]*\S)\r\n").group(1)
    login.expect("Waiting for an approver")
    assert any(block in login.screen for block in QR_BLOCKS), login.screen

    # A mistyped user code approves nothing; the login keeps waiting, and the same
    # login is asked for again at once.
    approve, safety = started.approve(d)
    approve.expect(f"=== LOGIN {code} ")
    approve.expect("Type the user code to approve, 'no' to deny, Enter to skip: ")
    shown = approve.since(f"=== LOGIN {code} ")
    assert f"  client:       ana@desk (human, {client})\n" in shown
    assert f"  key:          {fingerprint}\n" in shown
    assert f"  safety code:  {key_code}\n" in shown
    wrong = ("B" if code[0] == "A" else "A") + code[1:]
    approve.type(wrong)
    approve.expect("That is not this login's user code: nothing was approved.")
    assert "Items this person may ask for" not in approve.screen
    assert login.child.isalive()
    assert [e["user_code"] for e in pending(d, "/device-requests")] == [code]

    # The right code (typed in lower case) approves.
    approve.expect("Type the user code to approve, 'no' to deny, Enter to skip: ")
    after = approve.since("That is not this login's user code")
    assert f"=== LOGIN {code} " not in after  # asked again, not shown anew
    approve.type(code.lower())
    approve.expect("Items this person may ask for [*/*/*, or 'none']: ")
    approve.type("shop/*/*")
    approve.expect(CONFIRM)
    approve.type(PASSPHRASE)
    approve.expect(f"Login {code} approved: {client} certified, granted shop/*/*.")

    assert login.finish() == 0
    done = login.since("Logged in as")
    assert done.startswith(f"Logged in as {client} (profile 'default').")
    # The person compares this with the safety code the approver's terminal shows.
    assert f"Vault safety code: {safety}\n" in done
    assert not pending(d, "/device-requests")
    assert approve.stop() == 0
    assert PASSPHRASE not in approve.screen


# --- a new approver device -------------------------------------------------------------------


def test_pairing_a_second_approver_needs_the_code_the_new_device_shows(
    tmp_path: Path, started: Started
) -> None:
    d = Deployment(tmp_path)
    try:
        phone = started.terminal(["approver", "add", "--server", d.url, "--name", "phone"],
                                 env_for(tmp_path / "phone"))  # fmt: skip
        phone_safety = phone.match(r"Vault safety code:\s+([0-9][0-9 ]*[0-9])\r\n").group(1)
        pairing = phone.match(r"Pairing code:\s+([0-9][0-9 ]*[0-9])\r\n").group(1)
        phone_id = phone.match(r"Approver id:\s+(apv_\w+)\r\n").group(1)
        phone.expect("Waiting...")

        approve, safety = started.approve(d)
        assert safety == phone_safety
        approve.expect("=== NEW APPROVER DEVICE ")
        approve.expect("Pairing code (or 'no' to refuse, Enter to skip): ")
        shown = approve.since("=== NEW APPROVER DEVICE ")
        assert f"  name:        phone (terminal, {phone_id})\n" in shown
        assert "source IP 127.0.0.1" in shown
        assert pairing not in approve.screen  # the person must type it from the new device
        assert pairing.replace(" ", "") not in approve.screen

        # A code that differs adds nothing; the new device keeps waiting.
        last = pairing[-1]
        approve.type(pairing[:-1] + ("1" if last != "1" else "2"))
        approve.expect("The codes differ: the device was NOT added")
        assert CONFIRM not in approve.screen
        assert phone.child.isalive()
        assert [p["id"] for p in pending(d, "/pairing-requests")]
        assert approve.stop() == 0
        listed = d.run_as(d.approver_config, "approver", "list")
        assert listed.returncode == 0, listed.stderr
        assert phone_id not in listed.stdout

        # A new session shows the device again; the right code and the passphrase add it.
        approve, _ = started.approve(d)
        approve.expect("=== NEW APPROVER DEVICE ")
        approve.expect("Pairing code (or 'no' to refuse, Enter to skip): ")
        approve.type(pairing)
        approve.expect(CONFIRM)
        approve.type(PASSPHRASE)
        approve.match(rf"Added {phone_id}; directory head is now \d+\.")
        assert phone.finish() == 0
        assert f"Added: {phone_id} is now an approver of {d.vault}." in phone.screen
        assert (tmp_path / "phone" / "approvers" / f"{d.vault}.json").exists()
        assert approve.stop() == 0
        assert PASSPHRASE not in approve.screen + phone.screen

        listed = d.run_as(d.approver_config, "approver", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"safety code {safety}," in listed.stdout
        assert re.search(rf"  {d.keys.record.id}  laptop  terminal  .*\(this device\)\n",
                         listed.stdout), listed.stdout  # fmt: skip
        assert re.search(rf"  {phone_id}  phone  terminal  ", listed.stdout), listed.stdout
        assert not pending(d, "/pairing-requests")
    finally:
        started.end()
        d.close()


# --- the key file ----------------------------------------------------------------------------


def test_the_key_file_is_found_beside_the_directory_head_sessions_keep(shared: Deployment) -> None:
    # Sessions (the module's `approver serve`, every `approve` above) keep the verified
    # directory head beside the key file; it must not count as a second key file.
    d = shared
    assert (d.key_file.parent / f"{d.vault}.head.json").exists()
    listed = d.run_as(d.approver_config, "approver", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"Vault {d.vault}, safety code " in listed.stdout


# --- two approvers, and the relay going away -------------------------------------------------


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Path]]:
    """A deployment of its own with a second approver, `desk` (its config dir is returned).

    `team/*/*` is split over both, any one may answer; `pair/*/*` needs both.
    """
    d = Deployment(tmp_path_factory.mktemp("team"))
    try:
        desk_config, desk = d.add_approver("desk")
        both = f"{d.keys.record.id},{desk.record.id}"
        for pattern, threshold in (("team/*/*", "1"), ("pair/*/*", "2")):
            policy = d.approver_cli("approver", "policy", pattern, "--approvers", both,
                                    "--threshold", threshold)  # fmt: skip
            assert policy.returncode == 0, policy.stderr
        bot = d.serve(APPROVE_ALL)
        try:
            for path in ("team/prod/db", "pair/prod/db"):
                stored = d.store(path, {"password": SECRET})
                assert stored.returncode == 0, stored.stderr
        finally:
            bot.stop()
        yield d, desk_config
    finally:
        d.close()


def test_a_request_answered_by_another_approver_while_on_screen(
    team: tuple[Deployment, Path], started: Started
) -> None:
    d, desk_config = team
    reader = started.person(d, "read", "sealbox://team/prod/db/password",
                            "--purpose", "either of you")  # fmt: skip
    approve, _ = started.approve(d, ask=False)
    approve.expect("  purpose:  either of you")
    approve.expect(ANSWER)
    rid, _, _ = request_block(approve, "ACCESS REQUEST")

    # The other approver (rules on `desk`) releases it while it is on this screen.
    desk = d.serve(APPROVE_ALL, config=desk_config)
    try:
        desk.wait_for("approved")
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert out == SECRET + "\n"
    finally:
        desk.stop()
    approve.type("yes")
    approve.expect(f"Request {rid} was answered by another approver while on screen; "
                   "nothing was sent.")  # fmt: skip
    assert f"Released {rid}." not in approve.screen
    assert "!!" not in approve.screen
    assert approve.stop() == 0
    assert SECRET not in approve.screen


def test_a_request_this_approver_answered_is_never_offered_again(
    team: tuple[Deployment, Path], started: Started
) -> None:
    d, desk_config = team
    reader = started.person(d, "read", "sealbox://pair/prod/db/password",
                            "--purpose", "both of you")  # fmt: skip
    approve, _ = started.approve(d, ask=False)
    approve.expect("  purpose:  both of you")
    approve.expect(ANSWER)
    rid, verified, _ = request_block(approve, "ACCESS REQUEST")
    assert "approvals so far 0/2" in verified
    approve.type("yes")
    approve.expect(f"Released {rid}.")
    # One release of two: the request still waits (for `desk`), and its change comes
    # down the stream as pending; this approver is not asked again.
    with pytest.raises(AssertionError):
        approve.expect(f"=== ACCESS REQUEST {rid} ", timeout=3)
    assert approve.stop() == 0
    assert reader.poll() is None
    [waiting] = [r for r in pending(d) if r["id"].startswith(rid)]
    assert (waiting["answered"], waiting["approvals"]) == (True, 1)

    # Nor in a new session: it lists what waits, and this one is answered here.
    again, _ = started.approve(d, ask=False)
    with pytest.raises(AssertionError):
        again.expect("=== ACCESS REQUEST ", timeout=3)
    desk = d.serve(APPROVE_ALL, config=desk_config)
    try:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert out == SECRET + "\n"
    finally:
        desk.stop()
    assert "=== ACCESS REQUEST" not in again.screen
    assert again.stop() == 0


def test_after_a_relay_outage_approve_reconnects_quietly(
    team: tuple[Deployment, Path], started: Started
) -> None:
    d, _ = team
    first = started.person(d, "read", "sealbox://team/prod/db/password",
                           "--purpose", "before the outage")  # fmt: skip
    approve, _ = started.approve(d, ask=False)
    approve.expect("  purpose:  before the outage")
    approve.expect(ANSWER)
    skipped, _, _ = request_block(approve, "ACCESS REQUEST")
    approve.type("")
    approve.expect("Skipped: it stays pending and is offered again later.")

    # The relay dies (its person's read with it) and is down for several reconnect attempts.
    port = d.relay.port
    d.relay.proc.kill()
    d.relay.stop()
    approve.match(r"Lost the relay \(([^\r\n]+)\); reconnecting in the background\.\r\n")
    first.kill()
    first.communicate(timeout=20)
    time.sleep(6)  # 0.5 + 1 + 2 + 4 s of backoff: four attempts at least, all refused
    d.relay = RelayProcess(d.tmp / "relay", port=port)
    approve.expect("Back in touch with the relay.", timeout=30)

    # What waited through the outage is offered again, and new requests are seen.
    approve.expect(f"=== ACCESS REQUEST {skipped} ")
    approve.expect(ANSWER)
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("asked before the outage")
    approve.expect(f"Denied {skipped}.")
    second = started.person(d, "read", "sealbox://team/prod/db/password",
                            "--purpose", "after the outage")  # fmt: skip
    approve.expect("  purpose:  after the outage")
    approve.expect(ANSWER)
    approve.type("yes")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert out == SECRET + "\n"

    assert approve.stop() == 0
    screen = approve.screen
    assert screen.count("Lost the relay") == 1, screen
    assert screen.count("Back in touch with the relay.") == 1, screen
    assert "reconnecting" not in screen.replace("reconnecting in the background", "")
    assert "Traceback" not in screen
    assert SECRET not in screen
