"""Reads served by the local cache agent (SDK and CLI), the CLI's start, and a CLI release.

Run as ``python bench/cached_read.py [--quick]``.  This is a benchmark, not a
test: it asserts no speed.  It prints one JSON line per figure on stdout (the
first is a header), so runs can be compared by tools.  Every figure with a goal
says so (``goal``: the most its ``ratio`` may be; ``meets_goal``).

What runs (``bench/_deploy.py``): a relay on SQLite in a temporary directory,
its first approver, one logged-in client (profile ``default``), the policy
``bench/*/*`` allowing 600 s of caching (``sealbox approver policy … --max-cache
600``), and the automated approver ``sealbox approver serve`` whose read rule
sets ``cache_seconds = 600``.  Two items are stored with ``sealbox store``; the
client starts its cache agent (``sealbox cache start``) and reads the first
once with ``cache_seconds=600``, which puts it in the agent.  Every later read
of it is a cache hit: no network, no approval (the bench checks that the
automated approver answered no read of it again, and that each read returned
the stored value).  The second item is read without caching: each read of it
is a release.

CLI commands run as subprocesses of the same interpreter, each way a user runs
them: ``python -m sealbox.cli.main`` (``command``: ``module``) and the
installed console script beside the interpreter (``script``; pip's script
imports ``re`` before sealbox's code runs).  Each runs with its bytecode
cached, as an installed package's is (``PYTHONDONTWRITEBYTECODE`` is dropped
and ``PYTHONPYCACHEPREFIX`` points into the temporary directory); the first,
untimed run of each command writes the cache.  A CLI figure and its baseline
are measured in alternation, run by run, so that the machine's load weighs on
both alike; ``value`` and ``baseline_ms`` are medians of ``--runs``.

The figures:

``sdk_hit_p50_ms``, ``sdk_hit_p99_ms``
    ``sealbox.Client.read`` of the cached value, ``--hits`` times in a loop on
    one ``Client`` (the SDK keeps one connection to the agent).  Baseline: the
    same percentile of one ``get`` on a connection to the agent that stays
    open (the agent's own round trip, JSON included), timed in alternation
    with the reads.  Goal: ratio <= 1.2.  The agent reports hits to the
    relay's audit every 2 s, during the loop.
``python_startup_ms``
    ``python -c pass``: the floor of every CLI command.
``cli_version_ms``, ``cli_version_script_ms``
    ``sealbox --version``.  Baseline: ``python -c pass``.  Goal: ratio <= 3.
``cli_read_ms``, ``cli_read_script_ms``
    ``sealbox read sealbox://bench/prod/db/password --cache 600``, answered by
    the agent.  Baseline: ``pass show bench/db`` (Debian's ``pass``, a
    GPG-encrypted password store; a throwaway key without passphrase in a
    temporary ``GNUPGHOME``, so ``gpg-agent`` decrypts without a prompt).
    Goal: ratio <= 1.  Without ``pass`` or ``gpg`` the line says the baseline
    is unavailable (``baseline_ms`` null) and the benchmark still succeeds;
    install them with ``apt-get install -y pass gnupg``.
``cli_release_ms``
    ``sealbox read sealbox://bench/prod/api/token``: not cached, so a whole
    release (the automated approver answers), in a new process.  Baseline:
    one release as the SDK does it, ``Client(cache=False).read`` of the same
    reference on a client kept open (what a program that reads many times
    pays per read).  Goal: ratio <= 1.5.
``cli_release_vs_sdk_process_ms``
    The same CLI figure beside the same read done by a program that uses the
    SDK in a process of its own (``python -c``, ``sealbox.Client().read``):
    what the CLI costs beyond the SDK, imports and a fresh client's first
    calls aside.  No goal.
``imports_ms``
    Where a command's imports go (``python -X importtime``; the instrument
    itself slows them, so compare these with each other, not with the wall
    times): ``value`` is the total, ``top`` the costliest top-level imports
    (name, cumulative ms), ``modules`` how many were imported.  One line for
    each ``command``: ``version``, ``read_hit`` and ``release``, the best of
    3 runs each.  For ``read_hit``, ``forbidden`` lists what of the HTTP
    client and the protocol stack it imported (httpx, sealbox.protocol,
    sealbox.crypto, cryptography): it must be empty.

Bounded: about 30 s with the defaults; ``--quick`` (200 hits, 5 runs) is for
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _deploy as dp  # the sibling module: relay, approver, logins

BENCH = "cached_read"
ITEM = "bench/prod/db"
REF = f"sealbox://{ITEM}/password"
RELEASED_ITEM = "bench/prod/api"
RELEASED_REF = f"sealbox://{RELEASED_ITEM}/token"
CACHE_SECONDS = 600
PASS_ENTRY = "bench/db"
PASS_INSTALL = "install them with: apt-get install -y pass gnupg"
GOAL_SDK_HIT = 1.2
GOAL_VERSION = 3.0
GOAL_READ = 1.0
GOAL_RELEASE = 1.5
#: What a cache hit of the CLI must not import: the HTTP client and the protocol stack.
FORBIDDEN = ("httpx", "sealbox.protocol", "sealbox.crypto", "cryptography")
MODULE = [sys.executable, "-m", "sealbox.cli.main"]
#: The same read as a program using the SDK does it, in a process of its own.
SDK_READ = (
    "import sys, sealbox\nwith sealbox.Client() as vault:\n    print(vault.read(sys.argv[1]))"
)
SCRIPT = Path(sys.executable).parent / "sealbox"

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


def _commands() -> dict[str, list[str]]:
    """The ways to run the CLI: ``module`` always, ``script`` if it is installed."""
    found = {"module": list(MODULE)}
    if SCRIPT.exists():
        found["script"] = [str(SCRIPT)]
    return found


def alternate(
    runs: int, timed: Mapping[str, Callable[[], float]]
) -> dict[str, list[float]]:  # fmt: skip
    """Each of ``timed`` once untimed, then ``runs`` rounds of each in turn: seconds, by name."""
    for once in timed.values():
        once()
    out: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(runs):
        for name, once in timed.items():
            out[name].append(once())
    return out


def ratio_line(metric: str, value: Sequence[float], base: Sequence[float] | None, *,
               baseline: str, goal: float | None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A figure beside its baseline (``None``: unavailable), with its goal if it has one."""
    line: dict[str, Any] = {"bench": BENCH, "metric": metric, "value": ms(median(value)),
                            "baseline": baseline}  # fmt: skip
    ratio = median(value) / median(base) if base else None
    line.update(baseline_ms=ms(median(base)) if base else None,
                ratio=round(ratio, 2) if ratio is not None else None)  # fmt: skip
    if goal is not None:
        line.update(goal=goal, meets_goal=ratio <= goal if ratio is not None else None)
    line.update(extra)
    return line


def no_script(metric: str, runs: int) -> dict[str, Any]:
    return {"bench": BENCH, "metric": metric, "value": None, "command": "script", "runs": runs,
            "unavailable": f"no console script at {SCRIPT}"}  # fmt: skip


ImportProfile = tuple[float, int, list[tuple[str, float]], set[str]]


def import_profile(
    command: Sequence[str], env: Mapping[str, str], expect: str | None
) -> ImportProfile:
    """(total ms, modules, costliest top-level imports, every module) of one run of ``command``.

    ``python -X importtime`` writes one line per import: self and cumulative
    microseconds, and the name indented by its depth.  The best of 3 runs.
    """
    best: ImportProfile | None = None
    for _ in range(3):
        done = subprocess.run([sys.executable, "-X", "importtime", *command[1:]],
                              capture_output=True, env=dict(env), check=False,
                              stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
        if done.returncode != 0 or (expect is not None and done.stdout.decode().strip() != expect):
            raise RuntimeError(f"{' '.join(command[1:4])} failed under -X importtime:\n"
                               f"{done.stderr.decode(errors='replace')[-2000:]}")  # fmt: skip
        top: list[tuple[str, float]] = []
        names: set[str] = set()
        for line in done.stderr.decode(errors="replace").splitlines():
            if not line.startswith("import time:") or "| imported package" in line:
                continue
            try:
                _, cumulative, name = line[len("import time:") :].split("|")
                micros = int(cumulative)
            except ValueError:
                continue
            names.add(name.strip())
            if not name.startswith("  "):  # top level: one space after the bar
                top.append((name.strip(), micros / 1000))
        total = sum(t for _, t in top)
        if best is None or total < best[0]:
            ordered = sorted(top, key=lambda t: -t[1])[:8]
            best = (total, len(names), [(n, round(t, 2)) for n, t in ordered], names)
    assert best is not None
    return best


def measure(args: argparse.Namespace, work: Path) -> int:
    from sealbox.client import cache
    from sealbox.client.sdk import Client

    value = secrets.token_urlsafe(24)
    released_value = secrets.token_urlsafe(24)
    d = dp.Deployment(work / "deploy")
    agent_started = False
    try:
        d.login("default")
        d.policy("bench/*/*", max_cache=CACHE_SECONDS)
        bot = d.serve(RULES)
        d.store(ITEM, {"password": value})
        d.store(RELEASED_ITEM, {"token": released_value})
        started = d.cli("cache", "start")
        if started.returncode != 0:
            raise RuntimeError(f"sealbox cache start failed:\n{started.stdout}{started.stderr}")
        agent_started = True
        d.use_client_env()
        # The commands run as installed Python runs them: with their bytecode cached
        # (here under the temporary directory, not beside the sources).
        client_env = dp.env_for(d.client_config, PYTHONPYCACHEPREFIX=str(work / "pycache"))
        client_env.pop("PYTHONDONTWRITEBYTECODE", None)
        commands = _commands()

        with Client() as client:
            if client.read(REF, cache_seconds=CACHE_SECONDS) != value:
                raise RuntimeError("the first read returned another value than was stored")
            approved = len(bot.decisions())
            agent = cache.connect("default")
            if agent is None:
                raise RuntimeError("the cache agent is not running")
            with agent:
                entries = agent.call({"op": "status"})["entries"]
                if [e["ref"] for e in entries] != [REF]:
                    raise RuntimeError(f"the value is not in the cache agent: {entries}")

                # The agent's own round trip, on a connection that stays open, and an
                # SDK read, in alternation (the agent's hit reports weigh on both alike).
                def bare() -> float:
                    t0 = time.perf_counter()
                    got = agent.get([REF])
                    elapsed = time.perf_counter() - t0
                    if got.get(REF) != value.encode():
                        raise RuntimeError("the agent answered another value")
                    return elapsed

                def sdk() -> float:
                    t0 = time.perf_counter()
                    got = client.read(REF)
                    elapsed = time.perf_counter() - t0
                    if got != value:
                        raise RuntimeError("a cache hit returned another value than was stored")
                    return elapsed

                for _ in range(max(10, args.hits // 20)):  # warm-up
                    bare()
                    sdk()
                times = alternate(args.hits, {"bare": bare, "sdk": sdk})
                base, hits = times["bare"], times["sdk"]
        for metric, q in (("sdk_hit_p50_ms", 50), ("sdk_hit_p99_ms", 99)):
            ratio = percentile(hits, q) / percentile(base, q)  # not of the rounded figures
            emit({"bench": BENCH, "metric": metric, "value": ms(percentile(hits, q)),
                  "baseline_ms": ms(percentile(base, q)),
                  "baseline": "agent get on an open connection", "ratio": round(ratio, 2),
                  "goal": GOAL_SDK_HIT, "meets_goal": ratio <= GOAL_SDK_HIT,
                  "hits": args.hits})  # fmt: skip

        def run(command: Sequence[str], env: Mapping[str, str] = client_env,
                expect: str | None = None) -> Callable[[], float]:  # fmt: skip
            return lambda: wall(command, env, expect)

        # --- the CLI's start: --version beside python -c pass ---
        startup = [sys.executable, "-c", "pass"]
        timed = {"python": run(startup)}
        timed.update({how: run([*cmd, "--version"]) for how, cmd in commands.items()})
        times = alternate(args.runs, timed)
        emit({"bench": BENCH, "metric": "python_startup_ms", "value": ms(median(times["python"])),
              "runs": args.runs})  # fmt: skip
        for how in ("module", "script"):
            metric = "cli_version_ms" if how == "module" else "cli_version_script_ms"
            if how not in times:
                emit(no_script(metric, args.runs))
                continue
            emit(ratio_line(metric, times[how], times["python"], baseline="python -c pass",
                            goal=GOAL_VERSION, command=how, runs=args.runs))  # fmt: skip

        # --- a read the agent answers, beside pass show ---
        with pass_store(work, value) as store:
            timed = {how: run([*cmd, "read", REF, "--cache", str(CACHE_SECONDS)], expect=value)
                     for how, cmd in commands.items()}  # fmt: skip
            if isinstance(store, PassStore):
                timed["pass"] = run(store.show(), store.env, value)
            times = alternate(args.runs, timed)
            for how in ("module", "script"):
                metric = "cli_read_ms" if how == "module" else "cli_read_script_ms"
                if how not in times:
                    emit(no_script(metric, args.runs))
                    continue
                extra: dict[str, Any] = {"command": how, "runs": args.runs}
                if isinstance(store, PassStore):
                    extra["baseline_version"] = store.version
                else:
                    extra["baseline_unavailable"] = store
                emit(ratio_line(metric, times[how], times.get("pass"), baseline="pass show",
                                goal=GOAL_READ, **extra))  # fmt: skip
        if len(bot.decisions()) != approved:
            raise RuntimeError("a read that should have been a cache hit went to the approver")

        # --- a whole release: the CLI beside the SDK ---
        sdk_process = [sys.executable, "-c", SDK_READ, RELEASED_REF]
        with Client(cache=False) as releaser:

            def sdk_release() -> float:
                t0 = time.perf_counter()
                got = releaser.read(RELEASED_REF)
                elapsed = time.perf_counter() - t0
                if got != released_value:
                    raise RuntimeError("a release returned another value than was stored")
                return elapsed

            before = len(bot.decisions())
            times = alternate(args.runs, {
                "cli": run([*MODULE, "read", RELEASED_REF], expect=released_value),
                "sdk": sdk_release,
                "sdk_process": run(sdk_process, expect=released_value),
            })  # fmt: skip
            if len(bot.decisions()) - before != 3 * (args.runs + 1):
                raise RuntimeError("a release was not answered by the automated approver")
        emit(ratio_line("cli_release_ms", times["cli"], times["sdk"],
                        baseline="SDK release (Client.read, cache off, client kept open)",
                        goal=GOAL_RELEASE, command="module", runs=args.runs))  # fmt: skip
        emit(ratio_line("cli_release_vs_sdk_process_ms", times["cli"], times["sdk_process"],
                        baseline="the same read by the SDK in a new process (python -c)",
                        goal=None, command="module", runs=args.runs))  # fmt: skip

        # --- where the imports go ---
        profiles = {
            "version": ([*MODULE, "--version"], None),
            "read_hit": ([*MODULE, "read", REF], value),
            "release": ([*MODULE, "read", RELEASED_REF], released_value),
        }
        for name, (command, expect) in profiles.items():
            total, count, top, names = import_profile(command, client_env, expect)
            line = {"bench": BENCH, "metric": "imports_ms", "command": name,
                    "value": round(total, 2), "modules": count, "top": top}  # fmt: skip
            if name == "read_hit":
                line["forbidden"] = sorted(
                    n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)
                )
            emit(line)
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
        "bytecode_cached": True, "console_script": SCRIPT.exists(),
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
