"""The crypto-floor benchmark runs and prints well-formed JSON lines.

Not a timing test: it runs the benchmark for a few milliseconds per figure
and checks only the shape of the output, never a speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crypto_floor.py"

HEADER_KEYS = {"bench", "figure", "python", "cryptography", "cores"}
FIGURE_KEYS = {
    "bench", "figure", "fields", "m", "n", "ops_per_s", "floor_ops_per_s", "ratio", "seconds",
    "floor", "floor_excludes",
}  # fmt: skip
EXPECTED_FIGURES = [
    ("build_access", 1, None),
    ("approver_release", 1, 1),
    ("approver_release", 4, 1),
    ("client_open", 1, 1),
    ("client_open", 4, 1),
    ("client_open", 1, 2),
    ("client_open", 4, 2),
]


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _run() -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--seconds", "0.02"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, "the benchmark printed nothing"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def test_bench_prints_a_header_then_one_json_line_per_figure() -> None:
    header, *figures = _run()

    assert set(header) >= HEADER_KEYS
    assert header["bench"] == "crypto_floor"
    assert header["figure"] == "header"
    for key in ("python", "cryptography"):
        assert isinstance(header[key], str), key
        assert header[key], key
    assert _positive(header["cores"])

    assert [(f["figure"], f["fields"], f["m"]) for f in figures] == EXPECTED_FIGURES
    for figure in figures:
        assert set(figure) == FIGURE_KEYS, figure
        assert figure["bench"] == "crypto_floor"
        for key in ("ops_per_s", "floor_ops_per_s", "ratio", "seconds", "fields"):
            assert _positive(figure[key]), (key, figure)
        assert figure["seconds"] == 0.02
        for key in ("m", "n"):
            assert figure[key] is None or _positive(figure[key]), (key, figure)
        assert figure["floor"], figure
        assert all(_positive(count) for count in figure["floor"].values()), figure
        assert isinstance(figure["floor_excludes"], list)
