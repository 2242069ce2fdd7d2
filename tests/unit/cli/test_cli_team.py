"""``sealbox approver invite`` and ``sealbox member``: what is refused before any key is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealbox.cli.main import main


@pytest.mark.parametrize("expires", ["8d", "30s", "soon", "1w"])
def test_an_invite_lasts_a_minute_to_a_week(
    expires: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    code = main(["approver", "invite", "--project", "shop", "--role", "writer",
                 "--expires", expires])  # fmt: skip
    assert code == 2
    assert "--expires" in capsys.readouterr().err


def test_an_unknown_role_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    refused = (
        ["approver", "invite", "--project", "shop", "--role", "owner"],
        ["member", "set-role", "cli_x", "--project", "shop", "--role", "admin"],
    )
    for argv in refused:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_without_an_approver_key_the_member_commands_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    for argv in (["member", "list"], ["member", "revoke", "cli_x"],
                 ["approver", "invite", "--project", "shop", "--role", "viewer"]):  # fmt: skip
        assert main(argv) == 1
        assert "no approver key file here" in capsys.readouterr().err
