"""``sealbox audit``: what is refused before any key is opened, and how an event is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealbox.cli.audit import line
from sealbox.cli.main import main


@pytest.fixture(autouse=True)
def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SEALBOX_PASSPHRASE", raising=False)


@pytest.mark.parametrize("since", ["yesterday", "1w", "-5", "10 m"])
def test_since_is_seconds_or_a_time_ago(since: str, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("tail", "export"):
        assert main(["audit", command, "--since", since]) == 2
        assert "--since" in capsys.readouterr().err


def test_verify_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--against", "b.jsonl"]) == 2
    assert "give FILE too" in capsys.readouterr().err
    export = tmp_path / "a.jsonl"
    export.write_text("")
    # No key file to read the pinned fingerprint from, and no --vault.
    assert main(["audit", "verify", str(export)]) == 2
    assert "--vault" in capsys.readouterr().err
    assert main(["audit", "verify", str(tmp_path / "missing.jsonl"), "--vault", "x"]) == 2
    assert "cannot read" in capsys.readouterr().err
    export.write_text('{"seq": 1}\n')
    assert main(["audit", "verify", str(export), "--vault", "x"]) == 2
    assert "not an audit export" in capsys.readouterr().err
    assert main(["audit", "verify", str(export), "--head", "1:zz"]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["audit", "export", "--format", "xml"])
    assert exited.value.code == 2


def test_an_empty_export_verifies_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "empty.jsonl"
    for text in ("", "\n\n"):
        export.write_text(text)
        assert main(["audit", "verify", str(export), "--vault", "sha256:x"]) == 5
        captured = capsys.readouterr()
        assert "valid" not in captured.out
        assert "INVALID" in captured.err
        assert "no audit event: nothing was verified" in captured.err


def test_a_header_less_export_says_it_is_a_chain_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sealbox.protocol import audit as au

    row = {"seq": 1, "at": 1_800_000_000, "actor": "relay", "action": "vault.created",
           "severity": "info", "client_id": None, "item_id": None, "source_ip": None,
           "detail": {}, "prev_hash": au.GENESIS}  # fmt: skip
    row["hash"] = au.event_hash(au.GENESIS, row)
    export = tmp_path / "plain.jsonl"
    export.write_text(json.dumps(row) + "\n")
    assert main(["audit", "verify", str(export), "--vault", "sha256:x"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: 1 event(s)")
    assert "checkpoints: NOT CHECKED" in out
    assert "not shown to be the vault's log" in out
    assert "give --head" in out
    head = f"1:{row['hash']}"
    assert main(["audit", "verify", str(export), "--vault", "sha256:x", "--head", head]) == 0
    assert "It does reach the --head given." in capsys.readouterr().out
    wrong = f"1:{'0' * 64}"
    assert main(["audit", "verify", str(export), "--vault", "sha256:x", "--head", wrong]) == 5


def test_a_tail_line_is_one_safe_line_with_the_severity() -> None:
    shown = line({
        "seq": 42, "at": 1_800_000_000, "actor": "apv_x\x1b[2J", "action": "access.release",
        "severity": "warning", "client_id": "cli_y", "item_id": None, "source_ip": "10.0.0.7",
        "detail": {"note": "line\nbreak\u202e"},
    })  # fmt: skip
    assert shown.startswith("2027-01-15T08:00:00Z  #42  WARNING   access.release  by apv_x")
    assert "client=cli_y" in shown
    assert "from=10.0.0.7" in shown
    assert "\n" not in shown
    assert "\x1b" not in shown
    assert "\u202e" not in shown
    assert '{"note":"line break"}' in shown or '"note"' in shown


@pytest.mark.parametrize("every", ["-1", "nan", "inf", "0.01"])
def test_checkpoint_every_is_checked_before_anything_starts(every: str, tmp_path: Path) -> None:
    from sealbox.cli import approvers, exits
    from sealbox.cli.main import build_parser

    rules = tmp_path / "rules.toml"
    parsed = build_parser().parse_args(
        ["approver", "serve", "--rules", str(rules), "--checkpoint-every", every]
    )
    # Refused before a session or thread is made (the session passed is never touched).
    with pytest.raises(exits.UsageError, match="checkpoint-every"):
        approvers._checkpointer(parsed, None, None)
