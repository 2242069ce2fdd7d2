"""Reads served by the local cache agent: SDK and CLI cache hits, beside ``pass show``.

Run as ``python bench/cached_read.py [--quick]``.  This is a benchmark, not a
test: it asserts no speed.  It prints one JSON line per figure on stdout (the
first is a header), so runs can be compared by tools.

What runs (``bench/_deploy.py``): a relay on SQLite in a temporary directory,
its first approver, one logged-in client (profile ``default``), the policy
``bench/*/*`` allowing 600 s of caching (``sealbox approver policy … --max-cache
600``), and the automated approver ``sealbox approver serve`` whose read rule
sets ``cache_seconds = 600``.  One item is stored with ``sealbox store``; the
client starts its cache agent (``sealbox cache start``) and reads the value
once with ``cache_seconds=600``, which puts it in the agent.  Every later read
is a cache hit: no network, no approval (the bench checks that the automated
approver answered nothing more, and that each read returned the stored value).

The figures:

``sdk_hit_p50_ms``, ``sdk_hit_p99_ms``
    ``sealbox.Client.read`` of the cached value, ``--hits`` times in a loop on
    one ``Client`` (each read connects to the agent's Unix socket, asks, and
    closes).  Baseline (``baseline_ms``): the same percentile of one ``get`` on
    a connection to the agent that stays open (the agent's own round trip);
    ``ratio`` = value / baseline.  The agent reports hits to the relay's audit
    every 2 s in the background, during the loop.
``python_startup_ms``, ``cli_version_ms``
    Floors of a CLI command, as context: wall time of ``python -c pass`` and
    of ``sealbox --version`` (interpreter start plus the CLI's entry module),
    median of ``--runs``.  Every Python command here runs with its bytecode
    cached, as an installed package's is (``PYTHONDONTWRITEBYTECODE`` is
    dropped and ``PYTHONPYCACHEPREFIX`` points into the temporary directory, so
    nothing is written beside the sources of an editable install); the first,
    untimed run of each command writes the cache.
``cli_read_ms``
    Wall time of ``sealbox read sealbox://bench/prod/db/password --cache 600``
    as a subprocess (``python -m sealbox.cli.main``, the same interpreter),
    median of ``--runs``.  Baseline measured in the same run, each run
    alternating with one of ``sealbox read``: ``pass show bench/db`` (Debian's
    ``pass``, a GPG-encrypted password store; a throwaway key without
    passphrase made in a temporary ``GNUPGHOME``, so ``gpg-agent`` decrypts
    without a prompt).  ``ratio`` = value / baseline.  Without ``pass`` or
    ``gpg`` the line says the baseline is unavailable (``baseline_ms`` null)
    and the benchmark still succeeds; install them with
    ``apt-get install -y pass gnupg``.

Bounded: about 15 s with the defaults; ``--quick`` (200 hits, 5 runs) is for
the smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _deploy as dp  # the sibling module: relay, approver, logins

BENCH = "cached_read"
ITEM = "bench/prod/db"
REF = f"sealbox://{ITEM}/password"
CACHE_SECONDS = 600
PASS_ENTRY = "bench/db"
PASS_INSTALL = "install them with: apt-get install -y pass gnupg"

#: The automated approver's rules: approve stores, and reads with 600 s of caching.
RULES = f"""
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "reads"
decision = "approve"
cache_seconds = {CACHE_SECONDS}
"""


emit, percentile, ms = dp.emit, dp.percentile, dp.ms


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def wall(command: Sequence[str], env: Mapping[str, str], expect: str | None = None) -> float:
    """Seconds ``command`` took to run to its end; it must succeed (and print ``expect``)."""
    started = time.perf_counter()
    done = subprocess.run(list(command), capture_output=True, env=dict(env), check=False,
                          stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({done.returncode}):\n"
                           f"{done.stderr.decode(errors='replace')[-2000:]}")  # fmt: skip
    if expect is not None and done.stdout.decode().strip() != expect:
        raise RuntimeError(f"{' '.join(command[:4])} printed something else than the value")
    return elapsed


# --- the baseline: pass ---------------------------------------------------------------------


@dataclass(frozen=True)
class PassStore:
    env: dict[str, str]
    version: str

    def show(self) -> list[str]:
        return ["pass", "show", PASS_ENTRY]


def _version_line(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=30)
    for line in done.stdout.splitlines():
        stripped = line.strip(" =\t")
        if stripped and any(c.isdigit() for c in stripped):
            return stripped
    return "unknown"


@contextlib.contextmanager
def pass_store(work: Path, value: str) -> Iterator[PassStore | str]:
    """A throwaway ``pass`` store holding ``value``, or why there is none."""
    missing = [tool for tool in ("pass", "gpg") if shutil.which(tool) is None]
    if missing:
        yield f"{' and '.join(missing)} not installed; {PASS_INSTALL}"
        return
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    env = dp.clean_env(GNUPGHOME=str(home), PASSWORD_STORE_DIR=str(work / "pass-store"))
    env.pop("GPG_AGENT_INFO", None)
    try:
        steps: list[tuple[list[str], bytes | None]] = [
            (["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "bench@example.com",
              "default", "default", "never"], None),
            (["pass", "init", "bench@example.com"], None),
            (["pass", "insert", "-m", PASS_ENTRY], value.encode()),
        ]  # fmt: skip
        for command, stdin in steps:
            done = subprocess.run(
                command, input=stdin, capture_output=True, env=env, check=False, timeout=120,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )  # fmt: skip
            if done.returncode != 0:
                yield (f"`{' '.join(command[:3])}` failed: "
                       f"{done.stderr.decode(errors='replace').strip()[-300:]}")  # fmt: skip
                return
        pass_version = _version_line(["pass", "version"])
        version = f"pass {pass_version}, {_version_line(['gpg', '--version'])}"
        yield PassStore(env, version)
    finally:
        if shutil.which("gpgconf"):
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False,
                           capture_output=True, timeout=30)  # fmt: skip


# --- the benchmark --------------------------------------------------------------------------


def _stop_agent(d: dp.Deployment) -> None:
    done = d.cli("cache", "stop")
    if done.returncode != 0:
        sys.stderr.write(f"sealbox cache stop failed:\n{done.stdout}{done.stderr}\n")


def measure(args: argparse.Namespace, work: Path) -> int:
    from sealbox.client import cache
    from sealbox.client.sdk import Client

    value = secrets.token_urlsafe(24)
    d = dp.Deployment(work / "deploy")
    agent_started = False
    try:
        d.login("default")
        d.policy("bench/*/*", max_cache=CACHE_SECONDS)
        bot = d.serve(RULES)
        d.store(ITEM, {"password": value})
        started = d.cli("cache", "start")
        if started.returncode != 0:
            raise RuntimeError(f"sealbox cache start failed:\n{started.stdout}{started.stderr}")
        agent_started = True
        d.use_client_env()
        # The commands run as installed Python runs them: with their bytecode cached
        # (here under the temporary directory, not beside the sources).
        client_env = dp.env_for(d.client_config, PYTHONPYCACHEPREFIX=str(work / "pycache"))
        client_env.pop("PYTHONDONTWRITEBYTECODE", None)

        with Client() as client:
            if client.read(REF, cache_seconds=CACHE_SECONDS) != value:
                raise RuntimeError("the first read returned another value than was stored")
            approved = len(bot.decisions())
            agent = cache.connect("default")
            if agent is None:
                raise RuntimeError("the cache agent is not running")
            with contextlib.closing(agent):
                entries = agent.call({"op": "status"})["entries"]
                if [e["ref"] for e in entries] != [REF]:
                    raise RuntimeError(f"the value is not in the cache agent: {entries}")
                # The agent's own round trip, on a connection that stays open.
                base = []
                for _ in range(args.hits):
                    t0 = time.perf_counter()
                    got = agent.get([REF])
                    base.append(time.perf_counter() - t0)
                    if got.get(REF) != value.encode():
                        raise RuntimeError("the agent answered another value")
            hits = []
            for _ in range(max(10, args.hits // 20)):  # warm-up
                client.read(REF)
            for _ in range(args.hits):
                t0 = time.perf_counter()
                got_text = client.read(REF)
                hits.append(time.perf_counter() - t0)
                if got_text != value:
                    raise RuntimeError("a cache hit returned another value than was stored")
        for metric, q in (("sdk_hit_p50_ms", 50), ("sdk_hit_p99_ms", 99)):
            value_ms, base_ms = ms(percentile(hits, q)), ms(percentile(base, q))
            emit({"bench": BENCH, "metric": metric, "value": value_ms, "baseline_ms": base_ms,
                  "baseline": "agent get on an open connection",
                  "ratio": round(value_ms / base_ms, 2), "hits": args.hits})  # fmt: skip

        floors = {
            "python_startup_ms": [sys.executable, "-c", "pass"],
            "cli_version_ms": [*dp.SEALBOX, "--version"],
        }
        for metric, command in floors.items():
            wall(command, client_env)  # warm-up
            runs = [wall(command, client_env) for _ in range(args.runs)]
            emit({"bench": BENCH, "metric": metric, "value": ms(median(runs)),
                  "runs": args.runs})  # fmt: skip

        read_command = [*dp.SEALBOX, "read", REF, "--cache", str(CACHE_SECONDS)]
        with pass_store(work, value) as store:
            line: dict[str, Any] = {"bench": BENCH, "metric": "cli_read_ms",
                                    "baseline": "pass show"}  # fmt: skip
            reads, shows = [], []
            wall(read_command, client_env, value)  # warm-up
            if isinstance(store, PassStore):
                wall(store.show(), store.env, value)
            for _ in range(args.runs):
                reads.append(wall(read_command, client_env, value))
                if isinstance(store, PassStore):
                    shows.append(wall(store.show(), store.env, value))
            line["value"] = ms(median(reads))
            if isinstance(store, PassStore):
                line["baseline_ms"] = ms(median(shows))
                line["ratio"] = round(median(reads) / median(shows), 2)
                line["baseline_version"] = store.version
            else:
                line.update(baseline_ms=None, ratio=None, baseline_unavailable=store)
            line["runs"] = args.runs
            emit(line)
        if len(bot.decisions()) != approved:
            raise RuntimeError("a read that should have been a cache hit went to the approver")
        return 0
    except BaseException:
        sys.stderr.write("relay log (end):\n" + d.relay.output[-3000:] + "\n")
        raise
    finally:
        if agent_started:
            _stop_agent(d)
        d.close()


def header(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bench": BENCH, "metric": "header", "python": platform.python_version(),
        "platform": platform.platform(), "cores": os.cpu_count(), "hits": args.hits,
        "runs": args.runs, "cache_seconds": CACHE_SECONDS, "quick": args.quick,
        "pass": shutil.which("pass") is not None, "gpg": shutil.which("gpg") is not None,
        "bytecode_cached": True,
    }  # fmt: skip


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--hits", type=positive_int, default=2000,
                        help="SDK cache hits timed (default: %(default)s)")  # fmt: skip
    parser.add_argument("--runs", type=positive_int, default=20,
                        help="CLI runs timed, of each command (default: %(default)s)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="200 hits, 5 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.hits, args.runs = 200, 5
    emit(header(args))
    with tempfile.TemporaryDirectory(prefix="sealbox-bench-") as tmp:
        return measure(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
