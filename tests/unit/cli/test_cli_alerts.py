"""``sealbox approver alerts``: what is refused before any key is opened, and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealbox.cli.alerts import describe
from sealbox.cli.main import main


@pytest.mark.parametrize("action", ["remove", "enable", "test"])
def test_an_id_that_is_not_a_target_id_is_a_usage_error(
    action: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    assert main(["approver", "alerts", action, "alt_nope"]) == 2
    assert "ID is a target's id" in capsys.readouterr().err


def test_an_unknown_severity_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["approver", "alerts", "add-webhook", "https://x.test/", "--min-severity", "loud"])
    assert exited.value.code == 2
    assert "--min-severity" in capsys.readouterr().err


def test_a_target_is_described_safely() -> None:
    lines = describe({
        "id": "alt_" + "a" * 26, "kind": "webhook", "url": "https://x.test/\x1b[31mred",
        "addresses": [], "events": ["canary.*"], "min_severity": "alert", "enabled": False,
        "failures": 10, "pending": 2, "last_error": "HTTP 500",
    })  # fmt: skip
    assert "\x1b" not in "\n".join(lines)
    assert lines[0].endswith(": DISABLED")
    assert lines[1] == "  selects: canary.*, severity alert and up"
    assert lines[2] == "  10 failure(s) in a row, 2 delivery(ies) waiting; last error: HTTP 500"
