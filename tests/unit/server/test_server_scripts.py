"""The bootstrap scripts, run by a real `sh` with stand-in `sealbox`, `python3` and `pip`
programs that record what they were given: values reach them intact, whatever they hold,
and nothing in them is ever run as code."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sealbox.server.services import scripts

HOSTILE_URL = "http://relay.test/'$(touch pwned)'\"`touch pwned2`\";touch pwned3"
TOKEN = "sbx_bt_" + "Ab-_" * 10 + "xyz"
NAME = "api'; touch pwned4 #\u2019"

RECORDER = """#!/bin/sh
{ printf 'ARG:%s\\n' "$@"; printf 'TOKEN:%s\\n' "$SEALBOX_BOOTSTRAP_TOKEN"; } >> "$RECORD"
"""


def _stub(directory: Path, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)


def _run(script: str, tmp_path: Path, path: str, **env: str) -> tuple[int, str, list[str]]:
    record = tmp_path / "record"
    done = subprocess.run(
        ["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        check=False, env={"PATH": path, "HOME": str(tmp_path), "RECORD": str(record), **env},
    )  # fmt: skip
    lines = record.read_text().splitlines() if record.exists() else []
    return done.returncode, done.stdout + done.stderr, lines


@pytest.fixture
def system_path() -> str:
    sh = shutil.which("sh")
    assert sh is not None
    return os.path.dirname(sh)


def test_the_sh_script_runs_the_installed_sealbox_with_the_values_intact(
    tmp_path: Path, system_path: str
) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "sealbox", RECORDER)
    script = scripts.script("sh", server=HOSTILE_URL, token=TOKEN, name=NAME)
    rc, out, record = _run(script, tmp_path, f"{stubs}:{system_path}")
    assert rc == 0, out
    assert record == ["ARG:machine", "ARG:register", "ARG:--server", f"ARG:{HOSTILE_URL}",
                      f"TOKEN:{TOKEN}"]  # fmt: skip
    assert not list(tmp_path.glob("pwned*"))
    assert TOKEN not in " ".join(a for a in record if a.startswith("ARG:"))  # not on argv


def test_without_sealbox_it_installs_the_pip_spec_into_a_venv(
    tmp_path: Path, system_path: str
) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # A stand-in python3 whose "-m venv DIR" makes DIR/bin/pip and DIR/bin/sealbox recorders.
    _stub(tmp_path, "recorder", RECORDER)
    _stub(
        stubs,
        "python3",
        f"""#!/bin/sh
[ "$1 $2" = "-m venv" ] || exit 9
mkdir -p "$3/bin"
cp {tmp_path}/recorder "$3/bin/pip"
cp {tmp_path}/recorder "$3/bin/sealbox"
""",
    )
    script = scripts.script("sh", server="http://relay.test", token=TOKEN, name="api")
    venv = tmp_path / "venv"
    rc, out, record = _run(script, tmp_path, f"{stubs}:{system_path}",
                           SEALBOX_PIP_SPEC="sealbox @ file:///src/sealbox",
                           SEALBOX_VENV=str(venv))  # fmt: skip
    assert rc == 0, out
    assert "installing sealbox @ file:///src/sealbox" in out
    assert record[:3] == ["ARG:install", "ARG:--quiet", "ARG:sealbox @ file:///src/sealbox"]
    assert record[3] == "TOKEN:"  # the installer never sees the token
    assert record[-1] == f"TOKEN:{TOKEN}"
    assert record[4:8] == ["ARG:machine", "ARG:register", "ARG:--server", "ARG:http://relay.test"]


def test_the_k8s_script_saves_to_out_and_ends_with_the_kubectl_command(
    tmp_path: Path, system_path: str
) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "sealbox", RECORDER)
    script = scripts.script("k8s", server="http://relay.test", token=TOKEN, name=NAME)
    rc, out, record = _run(script, tmp_path, f"{stubs}:{system_path}")
    assert rc == 0, out
    assert record[-3:-1] == ["ARG:--out", "ARG:./sealbox-api-touch-pwned4"]
    assert "kubectl create secret generic sealbox-api-touch-pwned4 " in out
    assert "--from-file=client.key=./sealbox-api-touch-pwned4/client.key" in out
    assert not list(tmp_path.glob("pwned*"))


def test_a_refusal_is_a_script_that_fails_with_the_reason(tmp_path: Path, system_path: str) -> None:
    text = scripts.error_script("sh", "this bootstrap token was already used", "Ask `$(x)`.")
    rc, out, _ = _run(text, tmp_path, system_path)
    assert rc == 1
    assert out.strip() == "sealbox: this bootstrap token was already used. Ask `$(x)`."


def test_powershell_strings_double_every_kind_of_single_quote() -> None:
    text = scripts.script("powershell", server="http://r/it's\u2019", token=TOKEN, name="api")
    assert "$SealboxServer = 'http://r/it''s\u2019\u2019'" in text
    assert f"$SealboxToken = '{TOKEN}'" in text
    assert scripts.kubernetes_secret_name("---") == "sealbox-machine"
