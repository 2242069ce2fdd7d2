"""The automated approver's workers never lose a failure silently."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from sealbox.approver.rules import parse_rules
from sealbox.approver.serve import AutomatedApprover


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
