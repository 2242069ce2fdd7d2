"""A whole sealbox deployment in a temporary directory, for the release benchmarks.

Used by ``release_latency.py`` and ``cached_read.py`` (imported by name: bench/
is not a package, and nothing here imports from tests/).  What it sets up, each
party in its own config directory as on its own machine:

* the relay: ``sealbox up``'s own code (``sealbox.server.runner.serve``: migrate,
  make the vault, print the banner, serve with uvicorn) in a child process, on
  SQLite in the data directory or in a fresh PostgreSQL schema.  With
  ``limits="raised"`` (the default) the per-caller rate limit (50 requests/s,
  burst 200) is raised out of reach, as ``relay_throughput.py`` does: one client
  reading in a loop makes 3 authenticated requests per release and the automated
  approver 2, so the default limit throttles a benchmark's load within seconds
  (429s, which the SDK waits out and retries, a few times before it gives up).
  ``limits="product"`` runs ``sealbox up`` itself, unchanged.  ``trace=True``
  adds a per-route tracer (see ``_install_trace``); the relay is otherwise the same;
* the vault's first approver, made with ``sealbox approver init`` and the setup
  token from the banner; its key file is loaded here to approve logins;
* logged-in clients: the product's device login (``sealbox.client.login.login``,
  what ``sealbox login`` runs) approved by that approver with
  ``sealbox.approver.admin.approve_login`` and granted ``*/*/*``; the login is
  approved before the first poll, so no 5 s poll interval is waited;
* the automated approver, ``sealbox approver serve --rules rules.toml``;
* items stored with ``sealbox store`` and policies set with ``sealbox approver
  policy``, both as the CLI's users run them.

The child-process modes of this file: ``python bench/_deploy.py relay …`` is
the relay with raised limits; ``python bench/_deploy.py serve --profile FILE --
approver serve …`` is the automated approver with all its threads profiled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
SEALBOX = [sys.executable, "-m", "sealbox.cli.main"]
PASSPHRASE = "bench passphrase, not a secret"
BANNER_END = "Press Ctrl-C to stop."
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: Per-caller rate limit and per-requester prompt limits of the relay with ``limits="raised"``
#: (they still run; they never refuse, and no prompt storm is reported).
RAISED = {"rate_per_second": 1e9, "rate_burst": 10**9, "prompts_per_minute": 10**6,
          "storm_prompts": 10**6}  # fmt: skip

#: The automated approver's rules: approve every store and every read.
APPROVE_ALL = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "reads"
decision = "approve"
"""


def emit(line: Mapping[str, Any]) -> None:
    """One figure: one JSON line on stdout."""
    print(json.dumps(line, separators=(",", ":")), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def pg_url() -> str:
    return os.environ.get("SEALBOX_TEST_PG_URL") or DEFAULT_PG_URL


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``SEALBOX_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update(extra)
    return env


def env_for(config: Path, **extra: str) -> dict[str, str]:
    """The environment of one party: its config directory, passphrase and runtime directory."""
    return clean_env(
        SEALBOX_CONFIG_DIR=str(config), SEALBOX_PASSPHRASE=PASSPHRASE,
        SEALBOX_RUNTIME_DIR=str(config / "run"), **extra,
    )  # fmt: skip


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def pg_schema(url: str, prefix: str = "sbx_bench") -> Iterator[str]:
    """A fresh, empty schema on the PostgreSQL server at ``url``, dropped afterwards."""
    import asyncpg

    schema = f"{prefix}_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


# --- processes ----------------------------------------------------------------------------


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child SIGTERMed if this benchmark dies first (Linux).

    Everything is looked up here, in the parent: between fork and exec the
    child must not import or take locks (other threads may hold them).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return die_with_parent


_DIE_WITH_PARENT = _pdeathsig()


class _Child:
    """A child process whose stdout and stderr are collected, line by line, as it runs."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=dict(env), preexec_fn=_DIE_WITH_PARENT,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("a") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(text in line for line in self._lines):
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n"
                                       + "".join(self._lines)[-4000:])  # fmt: skip
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{what} did not start within {timeout} s:\n"
                                       + "".join(self._lines)[-4000:])  # fmt: skip
                self._cond.wait(min(left, 0.2))

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Relay(_Child):
    """The relay in a child process: ``sealbox up``'s code, limits raised unless asked not to."""

    def __init__(
        self, data_dir: Path, *, db_url: str | None = None, db_schema: str | None = None,
        limits: str = "raised", profile: Path | None = None, trace: bool = False,
    ) -> None:  # fmt: skip
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"
        self.limits = limits
        data_dir.mkdir(parents=True, exist_ok=True)
        args = ["--data-dir", str(data_dir), "--port", str(self.port)]
        if db_url:
            args += ["--db", db_url]
        if db_schema:
            args += ["--db-schema", db_schema]
        if limits == "product":
            if profile is not None or trace:
                raise ValueError("profiling and tracing need the relay child of this file")
            command = [*SEALBOX, "up", *args]
        elif limits == "raised":
            command = [sys.executable, str(Path(__file__).resolve()), "relay", *args]
            if profile is not None:
                command += ["--profile", str(profile)]
            if trace:
                command += ["--trace"]
        else:
            raise ValueError(f"limits must be 'raised' or 'product', not {limits!r}")
        # Only what the command line says: no SEALBOX_* setting from this environment.
        super().__init__(command, clean_env(), data_dir / "relay.log")
        try:
            self.wait_for(BANNER_END, 90, "the relay")
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the relay is not serving:\n{self.output[-4000:]}")
            time.sleep(0.05)

    def setup_token(self) -> str:
        match = re.search(r"--setup-token (sbx_st_\S+)", self.output)
        if match is None:
            raise RuntimeError(f"the relay printed no setup token:\n{self.output[-4000:]}")
        return match.group(1)


class Serve(_Child):
    """``sealbox approver serve --rules rules.toml`` in a child process.

    With ``profile``, the same command runs under this file's ``serve`` child
    mode, which writes a cProfile of all its threads there when it stops.
    """

    def __init__(self, config: Path, rules: str, log: Path, *,
                 profile: Path | None = None) -> None:  # fmt: skip
        self.rules = config / "rules.toml"
        self.rules.write_text(rules)
        self.decisions_path = log
        args = ["approver", "serve", "--rules", str(self.rules), "--log", str(log)]
        command = [*SEALBOX, *args]
        if profile is not None:
            command = [sys.executable, str(Path(__file__).resolve()), "serve",
                       "--profile", str(profile), "--", *args]  # fmt: skip
        super().__init__(command, env_for(config), config / "serve.out")
        try:
            self.wait_for("Listening for requests", 60, "sealbox approver serve")
        except BaseException:
            self.stop(signal.SIGTERM)
            raise

    def decisions(self) -> list[dict[str, Any]]:
        if not self.decisions_path.exists():
            return []
        text = self.decisions_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)


# --- the deployment -----------------------------------------------------------------------


class Deployment:
    """A relay, its first approver, and a way to log clients in; ``close()`` stops it all."""

    def __init__(
        self, tmp: Path, *, db_url: str | None = None, db_schema: str | None = None,
        limits: str = "raised", relay_profile: Path | None = None,
        relay_trace: bool = False,
    ) -> None:  # fmt: skip
        import httpx

        from sealbox.approver import keystore

        self.tmp = tmp
        self.approver_config = tmp / "approver"
        self.client_config = tmp / "client"
        self.serves: list[Serve] = []
        self.relay = Relay(tmp / "relay", db_url=db_url, db_schema=db_schema, limits=limits,
                           profile=relay_profile, trace=relay_trace)  # fmt: skip
        try:
            self.url = self.relay.url
            token = self.relay.setup_token()
            init = self.approver_cli(
                "approver", "init", "--server", self.url, "--setup-token", token, "--name", "bench"
            )
            if init.returncode != 0:
                raise RuntimeError(f"sealbox approver init failed:\n{init.stdout}{init.stderr}")
            self.vault: str = httpx.get(f"{self.url}/v1/vault").json()["vault"]
            key_file = self.approver_config / "approvers" / f"{self.vault}.json"
            self.keys = keystore.load(key_file, PASSPHRASE)
            self.approver_id: str = self.keys.record.id
        except BaseException:
            self.close()
            raise

    # --- parties ---

    def run_as(self, config: Path, *args: str, stdin: bytes | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run(
            [*SEALBOX, *args], capture_output=True, timeout=timeout, check=False,
            env=env_for(config), input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )  # fmt: skip
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )  # fmt: skip

    def cli(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """The logged-in person's CLI (config directory ``client/``)."""
        return self.run_as(self.client_config, *args, **kw)

    def approver_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_as(self.approver_config, *args)

    def login(self, profile: str = "default", *, grant: str = "*/*/*") -> str:
        """Log a client in under ``profile`` (in ``client/``); return its client id.

        The product's device login, approved by this deployment's approver
        before the client's first poll (so without waiting a poll interval).
        """
        import httpx

        from sealbox.approver import admin
        from sealbox.approver.session import ApproverSession
        from sealbox.client import login as flow

        path = self.client_config / "profiles" / f"{profile}.json"
        approved: list[str] = []

        def approve(prompt: Any) -> None:
            session = ApproverSession(self.keys)
            try:
                listed = session.ok("GET", "/device-requests", "listing")["device_requests"]
                [entry] = [e for e in listed if e["user_code"] == prompt.user_code]
                approved.append(admin.approve_login(session, entry, scopes=["read", "write"],
                                                    grant=grant))  # fmt: skip
            finally:
                session.close()

        with httpx.Client(timeout=30) as http:
            result = flow.login(
                http, server=self.url, name=f"bench-{profile}", path=path, on_prompt=approve,
                on_wait=lambda _: None, sleep=lambda _: None,
            )  # fmt: skip
        if result.profile.client_id not in approved:
            raise RuntimeError("the login was not the one approved")
        return result.profile.client_id

    def serve(self, rules: str = APPROVE_ALL, *, profile: Path | None = None) -> Serve:
        proc = Serve(self.approver_config, rules,
                     self.approver_config / f"decisions-{len(self.serves)}.jsonl",
                     profile=profile)  # fmt: skip
        self.serves.append(proc)
        return proc

    def policy(self, pattern: str, *, max_cache: int = 0) -> None:
        done = self.approver_cli("approver", "policy", pattern, "--approvers", self.approver_id,
                                 "--threshold", "1", "--max-cache", str(max_cache))  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"sealbox approver policy failed:\n{done.stdout}{done.stderr}")

    def store(self, path: str, fields: Mapping[str, str], *, profile: str = "default") -> None:
        """``sealbox store PATH --field NAME=@FILE …`` (the automated approver must run)."""
        args: list[str] = []
        for name, value in fields.items():
            file = self.tmp / f"value-{secrets.token_hex(4)}"
            file.write_text(value)
            file.chmod(0o600)
            args += ["--field", f"{name}=@{file}"]
        done = self.cli("store", path, *args, "--purpose", "bench setup", "--profile", profile)
        if done.returncode != 0:
            raise RuntimeError(f"sealbox store failed:\n{done.stdout}{done.stderr}")

    def use_client_env(self, **extra: str) -> None:
        """Make this process the logged-in client (the SDK reads its profile from here)."""
        for key in [k for k in os.environ if k.startswith("SEALBOX_")]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env_for(self.client_config, **extra).items()
                           if k.startswith("SEALBOX_")})  # fmt: skip

    def close(self) -> None:
        for proc in self.serves:
            with contextlib.suppress(Exception):
                proc.stop()
        self.relay.stop()


# --- child-process mode: the relay with raised limits -------------------------------------


TRACE_PATH = "/_bench/trace"


def _install_trace() -> None:
    """Time every HTTP request by route and count its SQL statements.

    Wraps the app ``runner.serve`` makes (a pure ASGI wrapper, outside all of
    the relay's middleware; the relay's code is unchanged) and listens to every
    engine it makes.  Per route: requests, total wall time from the request's
    arrival to the end of its response (a long poll's includes its wait), SQL
    statements (those of a task a request started, such as the replay guard's
    group commit, count for that request), and the write transactions it ran
    through ``Relay.tx`` with their total time from asking for the transaction
    (including waiting for SQLite's write lock) to its commit.  ``GET /_bench/trace``,
    answered by the wrapper, returns the totals so far and starts them again.
    Only for looking at where time goes: the tracing itself costs a little.
    """
    import contextvars
    import json

    from sqlalchemy import event

    from sealbox.server import runner
    from sealbox.server.relay import Relay
    from sealbox.server.store import engine as db

    current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
        "bench_trace", default=None
    )
    routes: dict[str, dict[str, float]] = {}
    make_engine, create_app, relay_tx = db.make_engine, runner.create_app, Relay.tx

    @contextlib.asynccontextmanager
    async def timed_tx(self: Relay) -> Any:
        started = time.perf_counter()
        try:
            async with relay_tx(self) as tx:
                yield tx
        finally:
            record = current.get()
            if record is not None:
                record["tx"] += 1
                record["tx_s"] += time.perf_counter() - started

    def counting_engine(*args: Any, **kwargs: Any) -> Any:
        engine = make_engine(*args, **kwargs)

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            record = current.get()
            if record is not None:
                record["sql"] += 1

        return engine

    async def answer(send: Any) -> None:
        body = json.dumps(routes, sort_keys=True).encode()
        routes.clear()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def traced_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)

        async def traced(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if scope["path"] == TRACE_PATH:
                await answer(send)
                return
            record = {"sql": 0.0, "tx": 0.0, "tx_s": 0.0}
            current.set(record)
            started = time.perf_counter()
            try:
                await app(scope, receive, send)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or scope["path"]
                key = f"{scope['method']} {template.removeprefix('/v1/vaults/{vault}')}"
                total = routes.setdefault(
                    key, {"requests": 0, "wall_s": 0.0, "sql": 0, "tx": 0, "tx_s": 0.0}
                )
                total["requests"] += 1
                total["wall_s"] += time.perf_counter() - started
                for name in ("sql", "tx", "tx_s"):
                    total[name] += record[name]

        return traced

    db.make_engine = counting_engine
    runner.create_app = traced_app
    Relay.tx = timed_tx  # type: ignore[method-assign]


def _relay_main(argv: Sequence[str]) -> int:
    """``sealbox up``'s own code (``runner.serve``) with the per-caller rate limit raised."""
    import dataclasses

    from sealbox.server import runner
    from sealbox.server.config import Settings

    parser = argparse.ArgumentParser(prog="_deploy.py relay")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--db-schema")
    parser.add_argument("--profile", help="write a cProfile of the relay here")
    parser.add_argument("--trace", action="store_true",
                        help=f"per-route times and SQL counts at GET {TRACE_PATH}")  # fmt: skip
    args = parser.parse_args(argv)
    if args.trace:
        _install_trace()
    settings = Settings.load(data_dir=args.data_dir, db_url=args.db, db_schema=args.db_schema,
                             port=args.port)  # fmt: skip
    settings = dataclasses.replace(settings, **RAISED)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU, not waits
        profiler.enable()
    try:
        runner.serve(settings)
    except KeyboardInterrupt:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    return 0


# --- child-process mode: the automated approver under a profiler ---------------------------


def _serve_main(argv: Sequence[str]) -> int:
    """``sealbox ARGS…`` with every thread profiled; the merged cProfile is written at exit.

    ``cProfile`` sees only the thread that enables it, and the automated
    approver works in threads (the stream reader, the workers): each thread
    started here gets its own profiler, and all are added up at the end.
    """
    import cProfile
    import pstats

    parser = argparse.ArgumentParser(prog="_deploy.py serve")
    parser.add_argument("--profile", required=True, help="write the cProfile here")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then sealbox's arguments")
    args = parser.parse_args(argv)
    sealbox_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()
    thread_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)  # CPU, not waits
        with lock:
            profilers.append(profiler)
        profiler.enable()
        try:
            thread_run(self)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from sealbox.cli.main import main

    own = cProfile.Profile(time.thread_time)
    own.enable()
    try:
        return main(sealbox_args)
    finally:
        own.disable()
        stats = pstats.Stats(own)
        with lock:
            for profiler in profilers:
                # A thread still running (the stream reader, blocked on a read) has
                # its profile so far taken as it is.
                with contextlib.suppress(Exception):
                    stats.add(profiler)
        stats.dump_stats(args.profile)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(_serve_main(sys.argv[2:]))
    if sys.argv[1:2] != ["relay"]:
        sys.exit("usage: _deploy.py relay --data-dir DIR --port N [--db URL] [--db-schema S]\n"
                 "       _deploy.py serve --profile FILE -- SEALBOX-ARGS…")  # fmt: skip
    sys.exit(_relay_main(sys.argv[2:]))
