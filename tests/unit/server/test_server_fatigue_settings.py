"""The relay's limits per requester: options, then SEALBOX_* variables, then defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sealbox.server.config import Settings

ENV = ("SEALBOX_PROMPTS_PER_MINUTE", "SEALBOX_PENDING_CAP", "SEALBOX_STORM_PROMPTS",
       "SEALBOX_LOCKOUT_DENIALS", "SEALBOX_LOCKOUT_WINDOW")  # fmt: skip


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults(tmp_path: Path) -> None:
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.prompts_per_minute, s.pending_cap, s.storm_prompts, s.lockout_denials,
            s.lockout_window_seconds) == (60, 20, 20, 5, 3600)  # fmt: skip


def test_options_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in zip(ENV, ("30", "10", "15", "0", "600"), strict=True):
        monkeypatch.setenv(name, value)
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.prompts_per_minute, s.pending_cap, s.storm_prompts, s.lockout_denials,
            s.lockout_window_seconds) == (30, 10, 15, 0, 600)  # fmt: skip
    s = Settings.load(data_dir=str(tmp_path), prompts_per_minute=7, lockout_denials=2)
    assert (s.prompts_per_minute, s.lockout_denials, s.pending_cap) == (7, 2, 10)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SEALBOX_PROMPTS_PER_MINUTE", "0", "must be at least 1"),
        ("SEALBOX_PENDING_CAP", "many", "must be a whole number"),
        ("SEALBOX_LOCKOUT_DENIALS", "-1", "must be at least 0"),
        ("SEALBOX_LOCKOUT_WINDOW", "1.5", "must be a whole number"),
    ],
)
def test_a_bad_value_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}.*{message}"):
        Settings.load(data_dir=str(tmp_path))


def test_sealbox_up_refuses_a_bad_limit_with_exit_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", "up", "--data-dir", str(tmp_path),
         "--prompts-per-minute", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "must be at least 1, not 0" in done.stderr
    assert not (tmp_path / "sealbox.db").exists()
