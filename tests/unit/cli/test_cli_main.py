"""The ``sealbox`` command as a real process."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import sealbox


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sealbox {sealbox.__version__}"


def test_no_arguments_prints_usage_and_exits_2() -> None:
    result = _run()
    assert result.returncode == 2
    assert "usage: sealbox" in result.stderr


def test_unknown_argument_is_a_usage_error() -> None:
    result = _run("--no-such-flag")
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_console_script_is_installed() -> None:
    script = pathlib.Path(sys.executable).parent / "sealbox"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("sealbox ")


def test_main_in_process_usage_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    from sealbox.cli.main import EXIT_USAGE, main

    assert main([]) == EXIT_USAGE
    assert "usage: sealbox" in capsys.readouterr().err
    # `--version` alone is answered before argparse is imported; an abbreviation
    # goes through argparse, which exits: the same line either way.
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"sealbox {sealbox.__version__}\n"
    with pytest.raises(SystemExit) as exit_info:
        main(["--vers"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"sealbox {sealbox.__version__}\n"
