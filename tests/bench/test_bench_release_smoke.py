"""The release benchmarks run end to end and print well-formed JSON lines.

Not timing tests: each benchmark runs with ``--quick`` (a real relay, approver
and client, a few dozen releases) and only the shape of its output is checked,
never a speed.  ``release_latency`` runs on SQLite, and on PostgreSQL when
``SEALBOX_TEST_PG_URL`` is set (always in CI).  ``cached_read`` compares with
``pass``: without ``pass`` and ``gpg`` its baseline is reported unavailable
(locally the test accepts that; CI installs them in ``.ci/run`` and requires
the baseline).
"""

from __future__ import annotations

import json
import math
import os
import pstats
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")

RELEASE_HEADER_KEYS = {
    "bench", "metric", "python", "platform", "cores", "usable_cores", "sealbox", "httpx",
    "sqlalchemy", "uvicorn", "dbs", "releases", "warmup", "concurrency", "seconds", "clients",
    "relay_limits", "traced", "quick", "floor_seconds", "profiled",
}  # fmt: skip
LATENCY_KEYS = {
    "bench", "db", "metric", "value", "goal", "meets_goal", "baseline_ms", "ratio", "releases",
    "max_ms",
}  # fmt: skip
CALL_KEYS = {"bench", "db", "metric", "call", "value", "per_release", "share", "releases"}
CPU_KEYS = {"bench", "db", "metric", "process", "value", "releases"}
FLOOR_RATIO_KEYS = {
    "bench", "db", "metric", "relay_ms", "approver_ms", "client_ms", "total_ms", "floor_ms",
    "protocol_ms", "ratio", "goal", "meets_goal", "floor", "releases",
}  # fmt: skip
#: The operations of one release whose crypto floors add up to the release's.
FLOOR_PARTS = {"build_access", "approver_release", "client_open"}
RATE_KEYS = {
    "bench", "db", "metric", "concurrency", "value", "goal", "meets_goal", "baseline_per_s",
    "ratio", "releases", "seconds", "p50_ms", "p99_ms", "relay_cpu", "approver_cpu",
    "client_cpu", "clients",
}  # fmt: skip
#: The HTTP calls every release makes (others, such as the directory, come now and then).
# The long poll delivers in its own answer: no POST …/envelope per read.
RELEASE_CALLS = {"POST /access-requests", "GET /access-requests/{id}", "(client, outside HTTP)"}

CACHED_HEADER_KEYS = {
    "bench", "metric", "python", "platform", "cores", "hits", "runs", "cache_seconds", "quick",
    "pass", "gpg", "bytecode_cached", "console_script",
}  # fmt: skip
SDK_HIT_KEYS = {
    "bench", "metric", "value", "baseline_ms", "baseline", "ratio", "goal", "meets_goal", "hits"
}  # fmt: skip
FLOOR_KEYS = {"bench", "metric", "value", "runs"}
CLI_KEYS = {
    "bench", "metric", "baseline", "value", "baseline_ms", "ratio", "goal", "meets_goal",
    "command", "runs",
}  # fmt: skip
IMPORT_KEYS = {"bench", "metric", "command", "value", "modules", "top"}
CACHED_METRICS = [
    "sdk_hit_p50_ms", "sdk_hit_p99_ms", "python_startup_ms", "cli_version_ms",
    "cli_version_script_ms", "cli_read_ms", "cli_read_script_ms", "cli_release_ms",
    "cli_release_vs_sdk_process_ms", "imports_ms", "imports_ms", "imports_ms",
]  # fmt: skip


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _non_negative(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    lines = done.stdout.splitlines()
    assert lines, "the benchmark printed nothing"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


# --- release_latency ------------------------------------------------------------------------


def _check_release_run(
    lines: list[dict[str, Any]], db: str, *, profiled: bool = False
) -> dict[str, list[dict[str, Any]]]:
    header, *figures = lines
    assert set(header) == RELEASE_HEADER_KEYS, header
    assert header["bench"] == "release_latency"
    assert header["metric"] == "header"
    assert header["dbs"] == [db]
    assert header["quick"] is True
    assert header["relay_limits"] == "raised"
    assert header["profiled"] is profiled
    assert _positive(header["floor_seconds"]), header
    assert all(f["bench"] == "release_latency" and f["db"] == db for f in figures), figures
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for figure in figures:
        by_metric.setdefault(figure["metric"], []).append(figure)
    expected = {"p50_ms", "p99_ms", "call_ms", "cpu_ms_per_release", "cpu_vs_crypto_floor"}
    if not profiled:  # a profiled run leaves the concurrent runs out
        expected.add("releases_per_s")
    assert set(by_metric) == expected, sorted(by_metric)

    [p50], [p99] = by_metric["p50_ms"], by_metric["p99_ms"]
    for line in (p50, p99):
        assert set(line) == LATENCY_KEYS, line
        for key in ("value", "goal", "baseline_ms", "ratio", "releases", "max_ms"):
            assert _positive(line[key]), (key, line)
        assert line["releases"] == header["releases"]
        assert line["meets_goal"] == (line["value"] <= line["goal"])
        assert line["ratio"] == pytest.approx(line["value"] / line["baseline_ms"], rel=0.05)
    assert p50["value"] <= p99["value"] <= p99["max_ms"]
    assert p50["baseline_ms"] <= p99["baseline_ms"]

    calls = by_metric["call_ms"]
    assert {c["call"] for c in calls} >= RELEASE_CALLS, calls
    assert "POST /access-requests/{id}/envelope" not in {c["call"] for c in calls}, calls
    for line in calls:
        assert set(line) == CALL_KEYS, line
        for key in ("value", "per_release", "releases"):
            assert _positive(line[key]), (key, line)
        assert _non_negative(line["share"]), line  # a rare call's share rounds to 0
        if line["call"] in RELEASE_CALLS:
            assert line["per_release"] >= 1.0, line
    assert sum(c["share"] for c in calls) == pytest.approx(1.0, abs=0.02)

    cpu = by_metric["cpu_ms_per_release"]
    assert {c["process"] for c in cpu} == {"relay", "approver", "client"}, cpu
    for line in cpu:
        assert set(line) == CPU_KEYS, line
        assert _positive(line["value"]), line

    [floor] = by_metric["cpu_vs_crypto_floor"]
    assert set(floor) == FLOOR_RATIO_KEYS, floor
    spent = {c["process"]: c["value"] for c in cpu}
    for process in ("relay", "approver", "client"):
        assert floor[f"{process}_ms"] == pytest.approx(spent[process], abs=0.002), floor
    assert floor["total_ms"] == pytest.approx(sum(spent.values()), abs=0.005), floor
    assert set(floor["floor"]) == FLOOR_PARTS, floor
    for key in ("floor_ms", "protocol_ms", "ratio", "goal", "releases"):
        assert _positive(floor[key]), (key, floor)
    assert all(_positive(v) for v in floor["floor"].values()), floor
    assert floor["floor_ms"] == pytest.approx(sum(floor["floor"].values()), abs=0.005), floor
    # sealbox's own protocol code does at least what the raw primitives do.
    assert floor["protocol_ms"] >= floor["floor_ms"], floor
    assert floor["ratio"] == pytest.approx(
        floor["total_ms"] / floor["floor_ms"], rel=0.002, abs=0.06
    )
    assert floor["meets_goal"] == (floor["ratio"] <= floor["goal"])
    assert floor["releases"] == header["releases"]
    if profiled:
        return by_metric

    [rate] = by_metric["releases_per_s"]
    assert set(rate) == RATE_KEYS, rate
    assert rate["concurrency"] == header["concurrency"][0]
    for key in ("value", "goal", "baseline_per_s", "ratio", "releases", "seconds", "p50_ms",
                "p99_ms", "clients"):  # fmt: skip
        assert _positive(rate[key]), (key, rate)
    for key in ("relay_cpu", "approver_cpu", "client_cpu"):
        assert rate[key] is None or _non_negative(rate[key]), (key, rate)
    assert rate["meets_goal"] == (rate["value"] >= rate["goal"])
    assert rate["p50_ms"] <= rate["p99_ms"]
    return by_metric


def test_release_latency_quick_on_sqlite() -> None:
    _check_release_run(_run("release_latency.py", "--quick", "--db", "sqlite"), "sqlite")


def test_release_latency_quick_on_postgresql() -> None:
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("SEALBOX_TEST_PG_URL must be set in CI")
        pytest.skip("SEALBOX_TEST_PG_URL is not set")
    _check_release_run(_run("release_latency.py", "--quick", "--db", "postgres"), "postgres")


def test_release_latency_writes_profiles(tmp_path: Path) -> None:
    """``--profile DIR``: a CPU profile of each process, readable by pstats, naming its hot path."""
    out = tmp_path / "profiles"
    lines = _run("release_latency.py", "--quick", "--db", "sqlite", "--profile", str(out))
    _check_release_run(lines, "sqlite", profiled=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "approver-sqlite.prof", "client-sqlite.prof", "relay-sqlite.prof",
    ]  # fmt: skip
    expected = {"client": "read_flow", "approver": "handle", "relay": "serve"}
    for process, function in expected.items():
        stats = pstats.Stats(str(out / f"{process}-sqlite.prof"))
        names = {name for (_, _, name) in stats.stats}  # type: ignore[attr-defined]
        assert function in names, (process, sorted(names)[:50])


# --- cached_read ----------------------------------------------------------------------------


def _check_ratio(line: dict[str, Any], *, goal: bool = True) -> None:
    for key in ("value", "baseline_ms", "ratio"):
        assert _positive(line[key]), (key, line)
    assert line["ratio"] == pytest.approx(line["value"] / line["baseline_ms"], rel=0.05)
    if goal:
        assert _positive(line["goal"]), line
        assert isinstance(line["meets_goal"], bool), line
        if abs(line["ratio"] - line["goal"]) > 0.01:  # else rounding may tip either way
            assert line["meets_goal"] is (line["ratio"] <= line["goal"]), line


def _check_cached_run(lines: list[dict[str, Any]], *, with_pass: bool) -> dict[str, Any]:
    header, *figures = lines
    assert set(header) == CACHED_HEADER_KEYS, header
    assert header["bench"] == "cached_read"
    assert header["metric"] == "header"
    assert header["quick"] is True
    assert header["console_script"] is True  # the test environment installs sealbox
    assert all(f["bench"] == "cached_read" for f in figures), figures
    assert [f["metric"] for f in figures] == CACHED_METRICS
    p50, p99, startup, *versions, read, read_script, release, release_sdk = figures[:9]
    for line in (p50, p99):
        assert set(line) == SDK_HIT_KEYS, line
        _check_ratio(line)
        assert line["hits"] == header["hits"]
    assert p50["value"] <= p99["value"]
    assert set(startup) == FLOOR_KEYS, startup
    assert _positive(startup["value"]), startup
    for line, command in zip(versions, ("module", "script"), strict=True):
        assert set(line) == CLI_KEYS, line
        assert line["command"] == command
        assert line["baseline"] == "python -c pass"
        assert line["baseline_ms"] == startup["value"]
        _check_ratio(line)
    for line in (release, release_sdk):
        assert line["command"] == "module"
        assert line["runs"] == header["runs"]
        assert line["value"] == release["value"]
    assert set(release) == CLI_KEYS, release
    _check_ratio(release)
    assert set(release_sdk) == CLI_KEYS - {"goal", "meets_goal"}, release_sdk
    _check_ratio(release_sdk, goal=False)
    for cli, command in ((read, "module"), (read_script, "script")):
        assert cli["baseline"] == "pass show"
        assert cli["command"] == command
        assert _positive(cli["value"]), cli
        assert cli["runs"] == header["runs"]
        if with_pass:
            assert set(cli) == CLI_KEYS | {"baseline_version"}, cli
            _check_ratio(cli)
            assert "pass" in cli["baseline_version"]
        else:
            assert set(cli) == CLI_KEYS | {"baseline_unavailable"}, cli
            assert cli["baseline_ms"] is None
            assert cli["ratio"] is None
            assert cli["meets_goal"] is None
            assert "apt-get install -y pass gnupg" in cli["baseline_unavailable"]
    imports = {line["command"]: line for line in figures[9:]}
    assert list(imports) == ["version", "read_hit", "release"]
    for name, line in imports.items():
        extra = {"forbidden"} if name == "read_hit" else set()
        assert set(line) == IMPORT_KEYS | extra, line
        assert _positive(line["value"]), line
        assert line["modules"] > 0
        assert all(isinstance(n, str) and _positive(t) for n, t in line["top"]), line
    assert imports["read_hit"]["forbidden"] == []  # not a speed: what a cache hit loads
    assert any(n == "sealbox.client.sdk" for n, _ in imports["release"]["top"])
    return read


def test_cached_read_quick_beside_pass() -> None:
    have_pass = shutil.which("pass") is not None and shutil.which("gpg") is not None
    if not have_pass and os.environ.get("CI"):
        pytest.fail("pass and gpg must be installed in CI (.ci/run: apt-get install -y pass gnupg)")
    _check_cached_run(_run("cached_read.py", "--quick"), with_pass=have_pass)


def test_cached_read_says_when_pass_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env["PATH"] = str(tmp_path)  # neither pass nor gpg here; the bench runs sealbox by path
    cli = _check_cached_run(_run("cached_read.py", "--quick", env=env), with_pass=False)
    assert "pass and gpg not installed" in cli["baseline_unavailable"]
