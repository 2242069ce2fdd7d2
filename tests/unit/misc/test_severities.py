"""The audit severities are one list: every place that names them agrees with it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from sealbox.protocol.severities import SEVERITIES
from sealbox.server.http.audit import Severity


def test_the_relay_s_query_type_names_the_same_severities() -> None:
    # pydantic needs a Literal there; this keeps it equal to the one list.
    assert get_args(Severity) == SEVERITIES


def test_the_browser_names_the_same_severities() -> None:
    source = Path(__file__).parents[3] / "src/sealbox/web/static/sealbox/audit.js"
    found = re.search(r"SEVERITIES = Object\.freeze\(\[([^\]]*)\]\)", source.read_text())
    assert found is not None
    assert tuple(re.findall(r'"([a-z]+)"', found.group(1))) == SEVERITIES
