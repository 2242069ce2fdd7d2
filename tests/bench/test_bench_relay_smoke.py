"""The relay benchmarks run and print well-formed JSON lines.

Not timing tests: each benchmark runs with tiny settings (one-second wrk runs,
fifty waiters) and only the shape of its output is checked, never a speed or a
size.  ``relay_throughput`` needs ``wrk``: without it the test is skipped
locally, and fails in CI (``.ci/run`` installs it).  Its PostgreSQL variant
runs when ``SEALBOX_TEST_PG_URL`` is set (always in CI).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")

THROUGHPUT_FIGURE_KEYS = {
    "bench", "figure", "rps", "p50_ms", "p99_ms", "max_ms", "requests", "server_cpu", "backend",
    "seconds", "rounds", "connections", "profiled",
}  # fmt: skip
RATIO_KEYS = {
    "bench", "figure", "ratio", "relay_rps", "bare_rps", "goal", "meets_goal", "backend", "profiled"
}  # fmt: skip
MEMORY_KEYS = {
    "bench", "figure", "waiters", "rss_mb_idle", "rss_mb_waiting", "rss_mb_peak", "kb_per_waiter",
    "ramp_s", "ramp_per_s", "goal_rss_mb", "meets_goal", "backend",
}  # fmt: skip
WAKE_KEYS = {"bench", "figure", "released", "p50_ms", "p99_ms", "max_ms", "goal_p99_ms",
             "meets_goal", "backend"}  # fmt: skip


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _run(script: str, *args: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    assert lines, "the benchmark printed nothing"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def _need_wrk() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk must be installed in CI (.ci/run: apt-get install -y wrk)")
        pytest.skip("wrk is not installed (apt-get install -y wrk): relay_throughput needs it")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_relay_throughput_prints_relay_bare_and_ratio(backend: str) -> None:
    _need_wrk()
    args = ["--seconds", "1", "--rounds", "1", "--connections", "4"]
    if backend == "postgresql":
        if not PG_URL:
            if os.environ.get("CI"):
                pytest.fail("SEALBOX_TEST_PG_URL must be set in CI")
            pytest.skip("SEALBOX_TEST_PG_URL is not set")
        args += ["--db", PG_URL]
    header, *figures = _run("relay_throughput.py", *args)

    assert header["bench"] == "relay_throughput"
    assert header["figure"] == "header"
    assert header["backend"] == backend
    assert isinstance(header["pinning"], str)
    assert [f["figure"] for f in figures] == [
        "relay", "bare", "ratio", "relay_bearer", "bare_plain", "bearer_ratio",
    ]  # fmt: skip
    for figure in (*figures[:2], *figures[3:5]):
        assert set(figure) == THROUGHPUT_FIGURE_KEYS, figure
        assert figure["bench"] == "relay_throughput"
        assert figure["backend"] == backend
        for key in ("rps", "p50_ms", "p99_ms", "requests"):
            assert _positive(figure[key]), (key, figure)
        assert figure["p50_ms"] <= figure["p99_ms"] <= figure["max_ms"]
    for ratio in (figures[2], figures[5]):
        assert set(ratio) == RATIO_KEYS, ratio
        assert _positive(ratio["ratio"])
        assert ratio["ratio"] == pytest.approx(ratio["relay_rps"] / ratio["bare_rps"], rel=0.01)
        assert ratio["meets_goal"] == (ratio["ratio"] >= ratio["goal"])


def test_relay_throughput_explains_a_missing_wrk(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env["PATH"] = str(tmp_path)  # no wrk here
    done = subprocess.run(
        [sys.executable, str(BENCH / "relay_throughput.py"), "--seconds", "1"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert "apt-get install -y wrk" in done.stderr


def test_waiters_prints_memory_and_wake_latencies() -> None:
    header, *figures = _run("waiters.py", "--waiters", "50", "--sample", "5", "--batch", "20")

    assert header["bench"] == "waiters"
    assert header["figure"] == "header"
    assert header["waiters"] == 50
    assert [f["figure"] for f in figures] == ["memory", "wake_single", "wake_burst"]
    memory, single, burst = figures
    assert set(memory) == MEMORY_KEYS, memory
    assert memory["waiters"] == 50
    for key in ("rss_mb_idle", "rss_mb_waiting", "rss_mb_peak", "ramp_s"):
        assert _positive(memory[key]), (key, memory)
    assert set(single) == WAKE_KEYS | {"still_waiting"}, single
    assert single["released"] == 5
    assert single["still_waiting"] == 45
    assert set(burst) == WAKE_KEYS | {"batch", "drain_s", "polled_again"}, burst
    assert burst["released"] == 45
    for line in (single, burst):
        assert _positive(line["p50_ms"]), line
        assert line["p50_ms"] <= line["p99_ms"] <= line["max_ms"]
