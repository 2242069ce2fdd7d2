"""scripts/_venv.sh (used by scripts/up and scripts/test) runs pip only when it must.

The script runs in real bash, in a copy of the project's pyproject.toml and scripts, with a
virtual environment whose ``python`` is a shim: it records every ``-m pip`` call (and makes
the ``sealbox`` entry point an install would make) and hands anything else to this
interpreter.  No network, no real install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "python"
    shim.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
        '  echo "$*" >>"$PIP_CALLS"\n'
        '  printf "#!/bin/sh\\n" >"$(dirname "$0")/sealbox"; chmod +x "$(dirname "$0")/sealbox"\n'
        "  exit 0\n"
        "fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    shim.chmod(0o755)
    return tmp_path


def _source(project: Path, extras: str) -> list[str]:
    """Source the script as scripts/up and scripts/test do; the pip calls it made."""
    calls = project / "pip-calls"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "SEALBOX_VENV": str(project / "venv"), "PIP_CALLS": str(calls)}
    done = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . scripts/_venv.sh "{extras}"'], cwd=project,
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_pip_runs_once_and_again_only_when_what_it_installs_changed(project: Path) -> None:
    first = _source(project, "")
    assert any(call.endswith("install --quiet --disable-pip-version-check -e .")
               for call in first), first  # fmt: skip
    assert _source(project, "") == []  # nothing changed: no pip at all

    # Sources changed: the install is editable, nothing to do.
    (project / "src").mkdir()
    (project / "src" / "new.py").write_text("x = 1\n")
    assert _source(project, "") == []

    # The test tools are another set of extras: installed once.
    dev = _source(project, "dev")
    assert any(call.endswith("-e .[dev]") for call in dev), dev
    assert _source(project, "dev") == []
    assert _source(project, "") == []  # sealbox[dev] includes sealbox

    # A dependency added to pyproject.toml: both reinstall.
    with (project / "pyproject.toml").open("a") as f:
        f.write("\n# a change\n")
    assert _source(project, "") != []
    assert _source(project, "dev") != []
    assert _source(project, "dev") == []


def test_a_missing_entry_point_reinstalls_even_with_a_stamp(project: Path) -> None:
    assert _source(project, "") != []
    (project / "venv" / "bin" / "sealbox").unlink()
    assert _source(project, "") != []
    assert (project / "venv" / "bin" / "sealbox").exists()


def test_a_failed_install_leaves_no_stamp(project: Path) -> None:
    shim = project / "venv" / "bin" / "python"
    shim.write_text(shim.read_text().replace("  exit 0\n", "  exit 1\n", 1))
    env = {**os.environ, "SEALBOX_VENV": str(project / "venv"),
           "PIP_CALLS": str(project / "pip-calls")}  # fmt: skip
    done = subprocess.run(
        ["bash", "-c", '. scripts/_venv.sh ""'], cwd=project, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "pip install" in done.stderr
    assert not list((project / "venv").glob(".sealbox-installed-*"))
