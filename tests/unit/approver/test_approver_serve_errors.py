"""The automated approver's workers never lose a failure silently; approvers say when no
signed policy was served."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from test_approver_canary import SECRET, _review

from sealbox.approver.review import NO_SIGNED_POLICY, PolicyShown
from sealbox.approver.rules import parse_rules
from sealbox.approver.serve import AutomatedApprover
from sealbox.approver.terminal import Console, TerminalApprover


def test_an_unexpected_error_in_a_worker_is_logged_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = io.StringIO()
    bot = AutomatedApprover(SimpleNamespace(), parse_rules(""), log=log)  # type: ignore[arg-type]

    def broken(request_id: str, entry: Any = None) -> str:
        raise ValueError("year 285428751 is out of range")

    bot.handle = broken  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.ERROR, logger="sealbox.approver"):
            bot._run("r" * 43, {"id": "r" * 43})
    finally:
        bot.close()
    [line] = [json.loads(x) for x in log.getvalue().splitlines()]
    assert line["outcome"] == "error"
    assert line["error"] == "internal_error"
    assert line["severity"] == "alert"
    assert line["message"] == "ValueError"
    assert any("r" * 43 in r.getMessage() for r in caplog.records)


def test_the_terminal_says_when_no_signed_policy_was_served() -> None:
    said: list[str] = []
    session = SimpleNamespace(directory=lambda: SimpleNamespace(approvers={}))
    console = Console(say=said.append, ask=lambda _: "", verify=lambda: True)
    terminal = TerminalApprover(session, console, clock=lambda: 100.0)  # type: ignore[arg-type]
    shown = PolicyShown(SECRET.path, None, None, (NO_SIGNED_POLICY,))
    terminal.show_request(replace(_review(SECRET), policies=(shown,)))
    assert any("no signed policy served" in line and SECRET.path in line for line in said)
