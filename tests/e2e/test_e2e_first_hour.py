"""What a new user meets in the first hour, as real processes: exit codes, hidden input, hints.

- `whoami` and `logout` without a login exit 6 (not logged in), as every other command does;
  `whoami` on a session the relay ended exits 6; on a directory that does not verify, 5;
- `sealbox approver init --setup-token -` on a terminal asks for the token and does not echo it;
- a mistyped reference exits 2, saying what is wrong, the syntax, and the reference meant;
- a second `sealbox approver init` says the vault has its first approver and how to pair
  another device, before it asks for anything.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from pathlib import Path

import pexpect
from e2e_support import SEALBOX, RelayProcess
from loop_support import PASSPHRASE, Deployment, env_for

from sealbox.cli import exits


def _cli(config: Path, *args: str, stdin: str | None = None, **env: str):
    return subprocess.run(
        [*SEALBOX, *args], capture_output=True, text=True, timeout=120, check=False,
        env=env_for(config, **env), input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )  # fmt: skip


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def test_whoami_and_logout_without_a_login_exit_6(tmp_path: Path) -> None:
    empty = tmp_path / "config"
    empty.mkdir()
    for command in ("whoami", "logout"):
        done = _cli(empty, command)
        assert done.returncode == exits.NOT_LOGGED_IN == 6, (command, done.stderr)
        assert "not logged in (no profile 'default')" in done.stderr
        assert "sealbox login --server URL" in done.stderr
        other = _cli(empty, command, "--profile", "work")
        assert other.returncode == 6, other.stderr
        assert "no profile 'work'" in other.stderr
    # `login` cannot be "not logged in": a relay it cannot reach is a plain failure.
    unreachable = _cli(empty, "login", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == exits.FAILED, unreachable.stderr
    assert list(empty.glob("profiles/*.json")) == []  # no profile was written


def test_a_mistyped_reference_exits_2_a_forged_directory_5_an_ended_session_6(
    tmp_path: Path,
) -> None:
    d = Deployment(tmp_path)
    try:
        profile = d.client_config / "profiles" / "default.json"
        assert d.cli("whoami").returncode == 0
        saved = profile.read_text()

        # While logged in: a mistyped reference is a usage error that shows the syntax.
        mistakes = [("sealbx://shop/prod/db", "sealbox://shop/prod/db"),
                    ("shop/prod/db/password", "sealbox://shop/prod/db/password")]  # fmt: skip
        for typed, meant in mistakes:
            bad = d.cli("read", typed)
            assert bad.returncode == exits.USAGE == 2, bad.stderr
            assert bad.stderr == (
                f"sealbox read: {typed!r} "
                + ("does not start with sealbox://" if "://" in typed
                   else "is an item path, not a reference")
                + "; expected sealbox://PROJECT/ENV/ITEM[/FIELD], e.g. "
                "sealbox://shop/prod/db/password\n"
                f"  Did you mean {meant}?\n"
            )  # fmt: skip

        # Pinned to another vault's link 0: what the relay serves does not verify.
        document = json.loads(saved)
        other = "sha256:" + base64.urlsafe_b64encode(b"\x07" * 32).decode().rstrip("=")
        assert document["fingerprint"] != other
        document["fingerprint"] = other
        _write_private(profile, json.dumps(document))
        forged = d.cli("whoami")
        assert forged.returncode == exits.VERIFICATION == 5, forged.stderr
        assert "refused:" in forged.stderr

        _write_private(profile, saved)
        assert d.cli("logout").returncode == 0
        _write_private(profile, saved)  # a copy of the revoked session
        ended = d.cli("whoami")
        assert ended.returncode == 6, ended.stderr
        assert "Log in again" in ended.stderr
    finally:
        d.close()


def test_setup_token_from_a_terminal_is_asked_for_and_not_echoed(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    try:
        token = relay.setup_token()
        assert token
        screen = io.StringIO()
        child = pexpect.spawn(
            SEALBOX[0], [*SEALBOX[1:], "approver", "init", "--server", relay.url,
                         "--setup-token", "-", "--name", "laptop"],
            env=env_for(tmp_path / "config"), encoding="utf-8", timeout=60,
        )  # fmt: skip
        child.logfile_read = screen
        try:
            child.expect_exact("Setup token (input hidden): ")
            child.sendline(token)
            child.expect_exact("Vault safety code: ")
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)
        assert child.exitstatus == 0, screen.getvalue()
        assert token not in screen.getvalue()
        assert token[len("sbx_st_") :][:12] not in screen.getvalue()
    finally:
        relay.stop()


def test_setup_token_from_a_pipe_is_read_as_before_and_an_empty_one_is_refused(
    tmp_path: Path,
) -> None:
    relay = RelayProcess(tmp_path / "relay")
    try:
        config = tmp_path / "config"
        empty = _cli(config, "approver", "init", "--server", relay.url, "--setup-token", "-",
                     stdin="\n")  # fmt: skip
        assert empty.returncode == 1
        assert "no setup token was given on standard input" in empty.stderr
        made = _cli(config, "approver", "init", "--server", relay.url, "--setup-token", "-",
                    stdin=f"{relay.setup_token()}\n")  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "Setup token" not in made.stdout + made.stderr  # no prompt without a terminal
    finally:
        relay.stop()


def test_a_second_approver_init_says_what_to_do_instead(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    try:
        first = _cli(tmp_path / "first", "approver", "init", "--server", relay.url,
                     "--setup-token", relay.setup_token() or "")  # fmt: skip
        assert first.returncode == 0, first.stderr
        # Another device, no token at hand and no passphrase set: it is told at once, and
        # not asked for either.
        env = {k: v for k, v in env_for(tmp_path / "second").items() if k != "SEALBOX_PASSPHRASE"}
        second = subprocess.run(
            [*SEALBOX, "approver", "init", "--server", relay.url + "/"], env=env,
            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert second.returncode == 1
        assert "this vault already has its first approver" in second.stderr
        assert f"sealbox approver add --server {relay.url}`" in second.stderr
        assert "sealbox approve" in second.stderr
        assert "bug" not in second.stderr
        assert "Check the command" not in second.stderr
        assert "no terminal" not in second.stderr
        assert not (tmp_path / "second" / "approvers").exists()
    finally:
        relay.stop()


def test_approver_init_against_no_relay_says_so(tmp_path: Path) -> None:
    done = _cli(tmp_path / "config", "approver", "init", "--server", "http://127.0.0.1:9",
                "--setup-token", "-", stdin="sbx_st_x\n")  # fmt: skip
    assert done.returncode == 1
    assert "could not reach the relay at http://127.0.0.1:9" in done.stderr
    assert "the relay is running" in done.stderr
    assert os.environ.get("SEALBOX_PASSPHRASE") != PASSPHRASE  # the test's own, not leaked
