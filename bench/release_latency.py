"""End-to-end latency and throughput of a release: SDK ``read`` answered by the automated approver.

Run as ``python bench/release_latency.py [--db sqlite|postgres|both] [--quick]``.
This is a benchmark, not a test: it asserts no speed.  It prints one JSON line
per figure on stdout (the first is a header), so runs can be compared by tools.

What runs, all on loopback (``bench/_deploy.py``): a relay (``sealbox up``'s
code, in a child process; SQLite in a temporary directory, or a fresh schema
of the PostgreSQL server at ``SEALBOX_TEST_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``, dropped at the end), its first
approver (``sealbox approver init``), ``--clients`` logged-in clients, and the
automated approver ``sealbox approver serve`` with rules that approve every
read (no caching).  One item is stored with ``sealbox store``.  This process
is the client: every read is ``sealbox.Client.read`` (or ``AsyncClient.read``)
with the cache agent off, so each is a fresh access request: sign the access
statement with a one-time key, ``POST /access-requests``, long-poll until the
automated approver (which hears of it on its event stream, fetches it,
verifies it, and uploads a release sealed to the one-time key) has released
it and the long poll's own answer delivers the envelope (``deliver=true``),
verify and open it.

The relay's per-caller rate limit (50 requests/s, burst 200) is raised out of
reach unless ``--relay-limits product`` is given: a read costs the client 2
authenticated requests and the approver 2, so the default limit refuses a
sequential reader within a few hundred reads (the read then fails with 429).
With ``product``, the baselines stay below the burst (150 requests each), and
a release that fails prints a ``failed`` line (the phase, how many releases
had succeeded in it, the error) before the benchmark exits with status 1.

The figures, per database:

``p50_ms``, ``p99_ms``
    Latency of ``--releases`` sequential ``Client.read`` calls, after a
    warm-up.  Goals: p50 <= 10 ms, p99 <= 30 ms.  Baseline (``baseline_ms``),
    measured in the same run against the same relay: the same percentile of
    ``GET /v1/vaults/{vault}/whoami`` with the bearer token of a client logged
    in for it alone, on a kept-alive connection (one authenticated round trip:
    token lookup, no write).  ``ratio`` = value / baseline: how many such round trips a release
    costs.
``call_ms``
    Where a sequential release's time goes, as the client sees it: for each
    HTTP call the SDK made, its median round trip (``value``), how many per
    release, and its ``share`` of the total; ``(client, outside HTTP)`` is the
    rest (signing, sealing, opening, saving the profile's state, and any wait
    before the SDK retries a call the relay refused with 429).  The long
    poll ``GET /access-requests/{id}`` holds the approver's whole turn.
``cpu_ms_per_release``
    CPU time each process spent per sequential release (``/proc``, all
    threads): the relay, the automated approver, and this client.
``cpu_vs_crypto_floor``
    The three processes' CPU per sequential release (``relay_ms``,
    ``approver_ms``, ``client_ms``, ``total_ms``) beside the crypto floor of
    one release, measured in this run and process before any relay starts
    with ``bench/crypto_floor.py``'s own figures (one field, M = 1):
    ``floor_ms`` is the sum of the floors of ``build_access``,
    ``approver_release`` and ``client_open`` (the ``cryptography``
    primitives a release cannot avoid; ``floor`` has each), and
    ``protocol_ms`` the same three operations as sealbox's protocol code
    does them, with no I/O.  ``ratio`` = ``total_ms`` / ``floor_ms``; goal:
    at most 5.  (The per-party CPU counts clock ticks, 10 ms each on most
    Linux systems: with ``--quick``'s 30 releases a figure is exact to about
    0.3 ms.)
``relay_route_ms`` (only with ``--trace``)
    The relay's own view of the sequential releases: per route, mean wall
    time from a request's arrival to the end of its response, SQL statements
    per request, and requests per release (tracing costs a little; the other
    figures of a traced run are not comparable).
``releases_per_s``
    ``--concurrency`` levels: that many asyncio tasks, each with its own
    ``AsyncClient`` (spread over the ``--clients`` logins, so no client exceeds
    the relay's pending-request cap), read in a loop for ``--seconds``.
    Goal: >= 500 releases/s.  Baseline (``baseline_per_s``): ``whoami``
    requests/s with the same number of tasks, each with its own connection;
    ``ratio`` = baseline / value.  ``relay_cpu``, ``approver_cpu`` and
    ``client_cpu`` are the cores each process used during the run (near 1.0:
    that process's core was the bottleneck; CPython runs one core per process).

Bounded in time: about 1 minute per database with the defaults (set-up about
4 s, 500 sequential releases, 2 x 7 s of load) plus about 7 s for the crypto
floor; ``--quick`` (30 releases, one concurrency level of 4 for 1 s, the floor
timed for 0.3 s per figure) is for the smoke test.

``--profile DIR`` writes cProfiles (CPU time, not waits) of the sequential releases there, per
database: ``client-DB.prof`` (this process, the timed reads only),
``approver-DB.prof`` (``sealbox approver serve``, every thread, from start to
stop) and ``relay-DB.prof`` (the relay, start to stop).  The concurrent runs
are left out so the last two cover the set-up, warm-up and sequential releases
only; read them with ``python -m pstats``.  Profiling slows every process: the
figures of a profiled run are not comparable with others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _deploy as dp  # the sibling module: relay, approver, logins
import crypto_floor as cf  # the sibling module: sealbox's operations beside their floors

BENCH = "release_latency"
GOAL_P50_MS = 10
GOAL_P99_MS = 30
GOAL_RELEASES_PER_S = 500
#: Goal: CPU per release, all three processes, at most this many crypto floors.
GOAL_FLOOR_RATIO = 5
#: Most baseline requests with ``--relay-limits product`` (the relay's burst is 200).
BASELINE_CAP = 150
ITEM = "bench/prod/db"
REF = f"sealbox://{ITEM}/password"
#: One release's HTTP calls, named by route (request ids and queries left out).
_ID = re.compile(r"/[A-Za-z0-9_-]{43}(?=/|$)")


emit, percentile, ms = dp.emit, dp.percentile, dp.ms


# --- timing the SDK's HTTP calls ----------------------------------------------------------


def call_name(method: str, path: str, vault: str) -> str:
    path = path.removeprefix(f"/v1/vaults/{vault}")
    return f"{method} {_ID.sub('/{id}', path)}"


@dataclass
class CallLog:
    """The SDK's HTTP calls of the current read: (name, seconds)."""

    vault: str
    calls: list[tuple[str, float]] = field(default_factory=list)


def timed_transport(log: CallLog) -> Any:
    import httpx

    class Timed(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            started = time.perf_counter()
            response = super().handle_request(request)
            response.read()
            log.calls.append(
                (call_name(request.method, request.url.path, log.vault),
                 time.perf_counter() - started)
            )  # fmt: skip
            return response

    return Timed()


# --- processes' CPU -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    relay: float | None
    approver: float | None
    client: float

    @classmethod
    def now(cls, relay_pid: int, approver_pid: int) -> Cpu:
        return cls(dp.cpu_seconds(relay_pid), dp.cpu_seconds(approver_pid), time.process_time())

    def since(self, before: Cpu) -> dict[str, float | None]:
        def diff(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        return {"relay": diff(self.relay, before.relay),
                "approver": diff(self.approver, before.approver),
                "client": self.client - before.client}  # fmt: skip


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- the crypto floor of one release -------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """One release's cryptography, timed in this process: per operation, (protocol, floor) ms."""

    parts: dict[str, tuple[float, float]]

    @property
    def floor_ms(self) -> float:
        return sum(floor for _, floor in self.parts.values())

    @property
    def protocol_ms(self) -> float:
        return sum(op for op, _ in self.parts.values())


def crypto_floor(seconds: float) -> Floor:
    """``crypto_floor.py``'s figures of one release (one field, M = 1), each timed ``seconds``."""
    world = cf.build_world()
    item = cf.store_item(world, fields=1, threshold=1)
    figures = [
        cf.build_access_figure(world, item),
        cf.approver_release_figure(world, item),
        cf.client_open_figure(world, item),
    ]
    parts = {}
    for figure in figures:
        ops, floor = cf.measure(figure, seconds)
        parts[figure.name] = (1000 / ops, 1000 / floor)
    return Floor(parts)


def floor_line(db: str, cpu: dict[str, float | None], n: int, floor: Floor) -> dict[str, Any]:
    per = {p: None if s is None else s / n * 1000 for p, s in cpu.items()}
    total = None if None in per.values() else sum(v for v in per.values() if v is not None)
    ratio = None if total is None else round(total / floor.floor_ms, 1)
    return {
        "bench": BENCH, "db": db, "metric": "cpu_vs_crypto_floor",
        "relay_ms": _round(per["relay"]), "approver_ms": _round(per["approver"]),
        "client_ms": _round(per["client"]), "total_ms": _round(total),
        "floor_ms": round(floor.floor_ms, 3), "protocol_ms": round(floor.protocol_ms, 3),
        "ratio": ratio, "goal": GOAL_FLOOR_RATIO,
        "meets_goal": ratio is not None and ratio <= GOAL_FLOOR_RATIO,
        "floor": {name: round(f, 3) for name, (_, f) in floor.parts.items()}, "releases": n,
    }  # fmt: skip


# --- the figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    """"sqlite" or "postgres"."""
    db_url: str | None
    db_schema: str | None


@contextlib.contextmanager
def backend_for(name: str) -> Iterator[Backend]:
    if name == "sqlite":
        yield Backend("sqlite", None, None)
        return
    url = dp.pg_url()
    with dp.pg_schema(url) as schema:
        yield Backend("postgres", url, schema)


def whoami_sequential(url: str, token: str, count: int) -> list[float]:
    import httpx

    out = []
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {token}"}) as http:
        for _ in range(max(5, count // 10)):  # warm-up: the connection, the relay's caches
            http.get(url).raise_for_status()
        for _ in range(count):
            started = time.perf_counter()
            response = http.get(url)
            out.append(time.perf_counter() - started)
            response.raise_for_status()
    return out


async def whoami_load(
    url: str, token: str, tasks: int, seconds: float, limit: int | None
) -> tuple[int, float]:
    """(requests, seconds) of ``tasks`` readers of ``url`` for ``seconds`` (``limit`` at most)."""
    import httpx

    headers = {"authorization": f"Bearer {token}"}
    clients = [httpx.AsyncClient(timeout=30, headers=headers) for _ in range(tasks)]
    try:
        await asyncio.gather(*(c.get(url) for c in clients))  # open the connections
        done = 0
        started = time.perf_counter()
        end = started + seconds

        async def work(client: httpx.AsyncClient) -> None:
            nonlocal done
            while time.perf_counter() < end and (limit is None or done < limit):
                done += 1
                (await client.get(url)).raise_for_status()

        await asyncio.gather(*(work(c) for c in clients))
        return done, time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()


async def release_load(
    profiles: Sequence[str], tasks: int, seconds: float, value: str, latencies: list[float]
) -> float:
    """Seconds ``tasks`` readers took to read for ``seconds``; each read's time is appended."""
    from sealbox.client.sdk import AsyncClient

    clients = [AsyncClient(profiles[i % len(profiles)], cache=False) for i in range(tasks)]
    try:
        # Warm-up: one read each (connections, item ids, the directory), not counted.
        got = await asyncio.gather(*(c.read(REF) for c in clients))
        if any(v != value for v in got):
            raise RuntimeError("a read returned another value than was stored")
        started = time.perf_counter()
        end = started + seconds

        async def work(client: AsyncClient) -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                if await client.read(REF) != value:
                    raise RuntimeError("a read returned another value than was stored")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(work(c) for c in clients))
        return time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()


def measure(args: argparse.Namespace, backend: Backend, work: Path, floor: Floor) -> None:
    import httpx

    from sealbox.client import profile as profile_store
    from sealbox.client.sdk import Client

    profiles_dir: Path | None = args.profile
    d = dp.Deployment(work, db_url=backend.db_url, db_schema=backend.db_schema,
                      limits=args.relay_limits, relay_trace=args.trace,
                      relay_profile=profiles_dir and profiles_dir / f"relay-{backend.name}.prof",
                      )  # fmt: skip
    phase, latencies = "set-up", []
    try:
        profiles = [f"bench{i}" for i in range(args.clients)]
        for name in [*profiles, "baseline"]:  # the baseline's own login: its own rate budget
            d.login(name)
        bot = d.serve(dp.APPROVE_ALL, profile=profiles_dir
                      and profiles_dir / f"approver-{backend.name}.prof")  # fmt: skip
        value = secrets.token_urlsafe(24)
        d.store(ITEM, {"password": value}, profile=profiles[0])
        d.use_client_env()
        db = backend.name
        whoami = f"{d.url}/v1/vaults/{d.vault}/whoami"
        token = profile_store.load(profile_store.profile_path("baseline")).access_token
        # Stock `sealbox up` refuses a caller's requests past its burst (200): stay below.
        cap = BASELINE_CAP if args.relay_limits == "product" else None
        phase = "sequential"

        # --- sequential releases, each call of each read timed ---
        log = CallLog(d.vault)
        http = httpx.Client(timeout=30, transport=timed_transport(log))
        with Client(profiles[0], cache=False, http=http) as client:
            for _ in range(args.warmup):
                if client.read(REF) != value:
                    raise RuntimeError("a read returned another value than was stored")
            base = whoami_sequential(whoami, token, min(args.releases, cap or args.releases))
            if args.trace:
                httpx.get(d.url + dp.TRACE_PATH).raise_for_status()  # start the trace here
            calls: dict[str, list[float]] = defaultdict(list)
            outside: list[float] = []
            profiler = None
            if profiles_dir is not None:
                import cProfile

                profiler = cProfile.Profile(time.thread_time)  # CPU, not waits
                profiler.enable()
            cpu0 = Cpu.now(d.relay.pid, bot.pid)
            for _ in range(args.releases):
                log.calls.clear()
                started = time.perf_counter()
                got = client.read(REF)
                elapsed = time.perf_counter() - started
                if got != value:
                    raise RuntimeError("a read returned another value than was stored")
                latencies.append(elapsed)
                for name, seconds in log.calls:
                    calls[name].append(seconds)
                outside.append(elapsed - sum(s for _, s in log.calls))
            cpu = Cpu.now(d.relay.pid, bot.pid).since(cpu0)
            if profiler is not None and profiles_dir is not None:
                profiler.disable()
                profiler.dump_stats(profiles_dir / f"client-{backend.name}.prof")
            traced = httpx.get(d.url + dp.TRACE_PATH).json() if args.trace else None
        http.close()
        n = args.releases
        for metric, q, goal in (("p50_ms", 50, GOAL_P50_MS), ("p99_ms", 99, GOAL_P99_MS)):
            value_ms, base_ms = ms(percentile(latencies, q)), ms(percentile(base, q))
            emit({"bench": BENCH, "db": db, "metric": metric, "value": value_ms, "goal": goal,
                  "meets_goal": value_ms <= goal, "baseline_ms": base_ms,
                  "ratio": round(value_ms / base_ms, 1), "releases": n,
                  "max_ms": ms(max(latencies))})  # fmt: skip
        total = sum(latencies)
        rows = list(calls.items())
        rows.sort(key=lambda r: -sum(r[1]))
        rows.append(("(client, outside HTTP)", outside))
        for name, times in rows:
            per_release = len(times) / n if name != "(client, outside HTTP)" else 1.0
            emit({"bench": BENCH, "db": db, "metric": "call_ms", "call": name,
                  "value": ms(statistics.median(times)), "per_release": round(per_release, 3),
                  "share": round(sum(times) / total, 3), "releases": n})  # fmt: skip
        for process in ("relay", "approver", "client"):
            spent = cpu[process]
            if spent is not None:
                emit({"bench": BENCH, "db": db, "metric": "cpu_ms_per_release",
                      "process": process, "value": ms(spent / n), "releases": n})  # fmt: skip
        emit(floor_line(db, cpu, n, floor))
        if traced is not None:
            for route, t in sorted(traced.items(), key=lambda kv: -kv[1]["wall_s"]):
                emit({"bench": BENCH, "db": db, "metric": "relay_route_ms", "route": route,
                      "value": ms(t["wall_s"] / t["requests"]),
                      "sql_per_request": round(t["sql"] / t["requests"], 2),
                      "per_release": round(t["requests"] / n, 3), "releases": n,
                      "traced": True})  # fmt: skip

        # --- concurrent releases ---
        for tasks in args.concurrency:
            done, base_elapsed = asyncio.run(
                whoami_load(whoami, token, tasks, min(args.seconds, 2.0), cap)
            )
            base_rps = done / base_elapsed
            phase, lat = f"concurrency {tasks}", []
            latencies = lat
            wall0, cpu0 = time.perf_counter(), Cpu.now(d.relay.pid, bot.pid)
            elapsed = asyncio.run(release_load(profiles, tasks, args.seconds, value, lat))
            wall, used = time.perf_counter() - wall0, Cpu.now(d.relay.pid, bot.pid).since(cpu0)
            rps = len(lat) / elapsed
            emit({"bench": BENCH, "db": db, "metric": "releases_per_s", "concurrency": tasks,
                  "value": round(rps, 1), "goal": GOAL_RELEASES_PER_S,
                  "meets_goal": rps >= GOAL_RELEASES_PER_S, "baseline_per_s": round(base_rps, 1),
                  "ratio": round(base_rps / rps, 1), "releases": len(lat),
                  "seconds": round(elapsed, 2), "p50_ms": ms(percentile(lat, 50)),
                  "p99_ms": ms(percentile(lat, 99)),
                  **{f"{p}_cpu": _round(None if s is None else s / wall, 2)
                     for p, s in used.items()},
                  "clients": min(tasks, len(profiles))})  # fmt: skip
        failed = [x for x in bot.decisions() if x.get("outcome") != "approved"]
        if failed:
            sys.stderr.write(f"the automated approver logged {len(failed)} decision(s) other "
                             f"than approved, e.g. {failed[0]}\n")  # fmt: skip
    except Exception as exc:
        emit({"bench": BENCH, "db": backend.name, "metric": "failed", "phase": phase,
              "after_releases": len(latencies), "error": f"{type(exc).__name__}: {exc}"[:500],
              "relay_limits": args.relay_limits})  # fmt: skip
        sys.stderr.write("relay log (end):\n" + d.relay.output[-3000:] + "\n")
        for s in d.serves:
            sys.stderr.write("approver serve output (end):\n" + s.output[-2000:] + "\n")
        raise
    finally:
        d.close()


# --- main -----------------------------------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def header(args: argparse.Namespace, dbs: Sequence[str]) -> dict[str, Any]:
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    return {
        "bench": BENCH, "metric": "header", "python": platform.python_version(),
        "platform": platform.platform(), "cores": os.cpu_count(), "usable_cores": usable,
        "sealbox": _version("sealbox"), "httpx": _version("httpx"),
        "sqlalchemy": _version("sqlalchemy"), "uvicorn": _version("uvicorn"),
        "dbs": list(dbs), "releases": args.releases, "warmup": args.warmup,
        "concurrency": list(args.concurrency), "seconds": args.seconds, "clients": args.clients,
        "relay_limits": args.relay_limits, "traced": args.trace, "quick": args.quick,
        "floor_seconds": args.floor_seconds, "profiled": args.profile is not None,
    }  # fmt: skip


def _pg_reachable(url: str) -> str | None:
    """None if the PostgreSQL server answers, else why not."""

    async def probe() -> None:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect: say what it was
        return f"{type(exc).__name__}: {exc}"
    return None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def levels(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both",
                        help="the relay's database (default: %(default)s); PostgreSQL at "
                        f"$SEALBOX_TEST_PG_URL, else {dp.DEFAULT_PG_URL}")  # fmt: skip
    parser.add_argument("--releases", type=positive_int, default=500,
                        help="sequential releases timed (default: %(default)s)")  # fmt: skip
    parser.add_argument("--warmup", type=positive_int, default=30,
                        help="untimed releases first (default: %(default)s)")  # fmt: skip
    parser.add_argument("--concurrency", type=levels, default=[8, 32], metavar="N,N",
                        help="concurrent readers, one figure each (default: 8,32)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="seconds of each concurrent run (default: %(default)s)")  # fmt: skip
    parser.add_argument("--clients", type=positive_int, default=4,
                        help="logged-in clients the concurrent readers share "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--relay-limits", choices=("raised", "product"), default="raised",
                        help="'product': `sealbox up` unchanged, with its per-caller rate "
                        "limit (default: %(default)s)")  # fmt: skip
    parser.add_argument("--trace", action="store_true",
                        help="also print the relay's per-route times and SQL counts")  # fmt: skip
    parser.add_argument("--floor-seconds", type=float, default=1.0,
                        help="seconds each crypto-floor operation is timed, and as many its "
                        "floor (default: %(default)s)")  # fmt: skip
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write cProfile files of the client, the automated approver and "
                        "the relay here (no concurrent runs)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="30 releases, concurrency 4 for 1 s, the floor timed 0.3 s "
                        "(for the smoke test)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.releases, args.warmup, args.concurrency = 30, 5, [4]
        args.seconds, args.clients, args.floor_seconds = 1.0, 2, 0.3
    if not args.floor_seconds > 0:
        parser.error("--floor-seconds must be positive")
    if args.profile is not None:
        if args.relay_limits == "product":
            parser.error("--profile needs the raised-limits relay")
        args.profile.mkdir(parents=True, exist_ok=True)
        args.concurrency = []
    if args.relay_limits == "product" and args.trace:
        parser.error("--trace needs the raised-limits relay")
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in dbs and (why := _pg_reachable(dp.pg_url())) is not None:
        sys.stderr.write(f"PostgreSQL at {dp.pg_url()} is not reachable ({why}).\n"
                         "Set SEALBOX_TEST_PG_URL, or run with --db sqlite.\n")  # fmt: skip
        return 2
    emit(header(args, dbs))
    floor = crypto_floor(args.floor_seconds)  # before any relay runs: a quiet machine
    for name in dbs:
        with tempfile.TemporaryDirectory(prefix="sealbox-bench-") as tmp, \
                backend_for(name) as backend:  # fmt: skip
            measure(args, backend, Path(tmp), floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
