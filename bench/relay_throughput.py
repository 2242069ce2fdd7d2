"""Throughput and latency of the relay's signed read path, beside a bare Ed25519 endpoint.

Run as ``python bench/relay_throughput.py [--seconds S] [--db postgresql://…]``.
This is a benchmark, not a test: it asserts no speed.  It prints one header
line, then one JSON line per figure on stdout, so runs can be compared by tools.

Figures, each measured in the same run with the same load generator (``wrk``),
the same connections and the same uvicorn settings:

``relay``
    ``GET /v1/vaults/{vault}/whoami`` on a real relay process (``create_app``
    under uvicorn, one process, SQLite in a temporary directory, or a
    throwaway schema of the PostgreSQL server given by ``--db``, dropped at the
    end), signed (RFC 9421) by the vault's first approver.  Each request
    carries its own nonce, so each request is a full authentication: parse
    ``Signature-Input``, look up the signer in the verified directory (cached
    by the stored head: two small SELECTs), verify the signature, and insert
    the nonce in the ``replay`` table in a write transaction.
``bare``
    A bare Starlette endpoint in its own uvicorn process that does exactly one
    Ed25519 verification of a fixed message and signature per request and
    answers a JSON body of the same shape; it receives the same signed
    requests.  This is the floor: HTTP on uvicorn plus the one cryptographic
    operation the relay cannot avoid.
``ratio``
    ``relay_rps / bare_rps``: the share of the floor's throughput the relay
    keeps.  The goal is 0.7; the line says whether it is met, and nothing fails
    if it is not.
``relay_bearer``, ``bare_plain``, ``bearer_ratio``
    The same ``whoami`` with a person's session instead: a bearer token of a
    client certified by the approver (a token lookup joined with the client,
    the certificate check cached, no write), beside the bare server answering
    the same JSON with no work at all; the same rounds, cycling one request.
    Goal of the ratio: 0.7.

Measurement: all requests are signed before any clock starts (one unique
nonce each, ``created`` = now), written to a file, and replayed by a ``wrk``
Lua script, so client-side signing is not in the measurement; a signed
request is used at most once (``overrun`` counts requests wrk had to repeat
because the file ran out, which the relay refuses: a round with any is not
counted).  The bare endpoint cycles through the same kind of requests.  The
server (either) runs on one core and wrk on another when there are two usable
cores (``sched_setaffinity``; the header says which).  After one warm-up run
each, relay and bare rounds of ``S`` seconds alternate, ``--rounds`` each;
each figure is its best round (highest 2xx responses per second, with that
round's p50 and p99 from wrk's latency histogram, and ``server_cpu``: the CPU
time the server process used per second of the run, all its threads; near 1.0
means the server's core was the bottleneck).  A round with any non-2xx
response or socket error is not counted.  Everything is on loopback and
bounded in time: about ``2 * (rounds * S + 1)`` seconds plus start-up (under
30 s by default).  The servers' logs go to their temporary directory; wrk
cutting requests in flight at the end of a run makes the relay log
``ClientDisconnect`` tracebacks there, which are expected.

``--profile FILE`` runs the relay under cProfile (slower: its figures are
then not comparable) and prints the top of the profile on stderr.  SQLite runs
on the event loop's thread (``store/engine.py``), so its statements show up in
the profile as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import io
import json
import math
import os
import platform
import pstats
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = "relay_throughput"
GOAL = 0.7
HOST = "127.0.0.1"
WRK_INSTALL = (
    "wrk is not installed. It is the load generator of this benchmark; install it with\n"
    "    sudo apt-get install -y wrk      (Debian, Ubuntu)\n"
    "    brew install wrk                 (macOS)\n"
    "or build it from https://github.com/wg/wrk, then run this benchmark again."
)

LUA = r"""
-- Replays pre-signed requests from a file: one line per request,
-- "<Signature-Input>\t<Signature>", or "authorization\t<value>" for a bearer token.
-- args: path, mode ("once" | "cycle"), host, threads.
local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local path, mode, host, nthreads = args[1], args[2], args[3], tonumber(args[4])
   cycle = (mode == "cycle")
   overrun = 0
   reqs = {}
   local k = 0
   for line in io.lines(path) do
      if k % nthreads == tid then
         local first, second = line:match("^([^\t]*)\t(.*)$")
         if first == "authorization" then
            reqs[#reqs + 1] = wrk.format("GET", nil, {["Host"] = host, ["Authorization"] = second})
         else
            reqs[#reqs + 1] = wrk.format("GET", nil,
               {["Host"] = host, ["Signature-Input"] = first, ["Signature"] = second})
         end
      end
      k = k + 1
   end
   idx = 0
end

function request()
   idx = idx + 1
   if idx > #reqs then
      if cycle then
         idx = 1
      else
         overrun = overrun + 1
         idx = #reqs
      end
   end
   return reqs[idx]
end

function done(summary, latency, requests)
   local over = 0
   for _, t in ipairs(threads) do over = over + t:get("overrun") end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
      '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"overrun":%d}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, over))
end
"""


# --- the servers (run by this same script, in child processes) ----------------------------


def _uvicorn_config(app: Any, port: int) -> Any:
    """The same uvicorn settings for both servers: those of ``sealbox up``."""
    import uvicorn

    return uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="on",
        backlog=4096,
    )  # fmt: skip


#: The per-caller rate limit (50/s, burst 200 by default) and the per-requester prompt limit
#: (60 a minute) would refuse most of the load: they are raised out of reach.  They still run
#: on every request; they never refuse, and no prompt storm is reported.
UNLIMITED: dict[str, Any] = {"rate_per_second": 1e9, "rate_burst": 10**9,
                             "prompts_per_minute": 10**6, "storm_prompts": 10**6}  # fmt: skip


def _relay_app(data_dir: Path, db_url: str, schema: str | None) -> Any:
    from sealbox.server.app import create_app
    from sealbox.server.atrest import load_master_key
    from sealbox.server.config import Settings
    from sealbox.server.relay import Relay
    from sealbox.server.store import engine as db

    settings = Settings(data_dir=data_dir, db_url=db_url, db_schema=schema, **UNLIMITED)
    engine = db.make_engine(db_url, schema=schema)
    relay = Relay(settings=settings, engine=engine, master_key=load_master_key(data_dir))
    return create_app(relay)


BARE_MESSAGE = (
    b'"@method": GET\n"@target-uri": http://127.0.0.1:8300/v1/vaults/vlt_bench/whoami\n'
    b'"@signature-params": ("@method" "@target-uri");created=1800000000;keyid="apv_bench";'
    b'alg="ed25519";nonce="AAAAAAAAAAAAAAAAAAAAAA";tag="sealbox"'
)


def _bare_app() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    private = ed25519.Ed25519PrivateKey.generate()
    public, signature = private.public_key(), private.sign(BARE_MESSAGE)

    async def whoami(request: Request) -> JSONResponse:
        public.verify(signature, BARE_MESSAGE)  # the one verification; raises if wrong
        return JSONResponse(
            {"vault": request.path_params["vault"], "id": "apv_bench", "role": "approver",
             "client_kind": None, "via": "signature"}
        )  # fmt: skip

    async def plain(request: Request) -> JSONResponse:
        # The floor of a bearer request: HTTP and a JSON answer, nothing else.
        return JSONResponse(
            {"vault": request.path_params["vault"], "id": "cli_bench", "role": "client",
             "client_kind": "human", "via": "bearer"}
        )  # fmt: skip

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/v1/vaults/{vault}/whoami", whoami),
                Route("/v1/vaults/{vault}/plain", plain), Route("/healthz", healthz)]
    )  # fmt: skip


def serve(args: argparse.Namespace) -> int:
    """Child process: one uvicorn server (relay or bare), pinned if asked."""
    import uvicorn

    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    if args.serve == "relay":
        app = _relay_app(Path(args.data_dir), args.db_url, args.db_schema)
    else:
        app = _bare_app()
    server = uvicorn.Server(_uvicorn_config(app, args.port))
    if not args.profile:
        server.run()
        return 0
    # uvicorn re-raises the signal that stopped it once it has shut down: turn that
    # into SystemExit, so the profile is written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        server.run()
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


# --- the world: a vault with one approver, set up before the relay process starts ---------


@dataclass(frozen=True)
class Backend:
    name: str
    """"sqlite" or "postgresql"."""
    db_url: str
    schema: str | None


@dataclass(frozen=True)
class Signer:
    vault: str
    key_id: str
    key: Any  # sealbox.crypto.keys.SigningKey
    access_token: str = field(repr=False)
    """A client's bearer token (certified by the approver above, as a login would be)."""


async def _prepare(data_dir: Path, backend: Backend) -> Signer:
    """Migrate, create the vault, and set it up with one approver (as the tests do)."""
    import httpx

    from sealbox.crypto.keys import HpkePrivateKey, SigningKey
    from sealbox.protocol import directory as dirs
    from sealbox.protocol import ids
    from sealbox.protocol.certificates import issue_certificate
    from sealbox.protocol.statements import ApproverRecord, ClientConstraints, ClientInfo
    from sealbox.server.app import create_app
    from sealbox.server.atrest import load_master_key
    from sealbox.server.config import Settings
    from sealbox.server.relay import Relay
    from sealbox.server.services.directory import ensure_vault
    from sealbox.server.services.login import issue_tokens
    from sealbox.server.store import clients as client_store
    from sealbox.server.store import engine as db

    settings = Settings(data_dir=data_dir, db_url=backend.db_url, db_schema=backend.schema)
    engine = db.make_engine(backend.db_url, schema=backend.schema)
    try:
        await db.upgrade(engine)
        relay = Relay(settings=settings, engine=engine, master_key=load_master_key(data_dir))
        status = await ensure_vault(relay)
        sig = SigningKey.generate()
        record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="bench", kind="terminal", tier="synced",
            hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
        )  # fmt: skip
        link0 = dirs.genesis_link(status.vault, record, sig, now=relay.now())
        app = create_app(relay, listen=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            response = await http.post(
                f"/v1/vaults/{status.vault}/setup",
                json={"setup_token": status.setup_token, "link": link0},
            )
        if response.status_code != 201:
            raise RuntimeError(f"vault setup failed: {response.status_code} {response.text}")
        # A client with a session, as `sealbox login` leaves one (approved at once).
        now = relay.now()
        client_key = SigningKey.generate()
        info = ClientInfo(id=ids.new_id(ids.CLIENT), kind="human", name="bench",
                          sig_pk=client_key.verify_key())  # fmt: skip
        directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
        certificate = issue_certificate(
            directory, issuer=record.id, key=sig, client=info, scopes=["read"],
            constraints=ClientConstraints(not_after=now + 86400), now=now,
        )  # fmt: skip
        async with relay.tx() as tx:
            await client_store.insert(
                tx.conn, vault=status.vault, client_id=info.id, kind=info.kind, name=info.name,
                sig_pk=info.sig_pk.to_text(), certificate=certificate, now=now,
            )  # fmt: skip
            issued = await issue_tokens(tx.conn, vault=status.vault, client_id=info.id, now=now,
                                        not_after=now + 86400)  # fmt: skip
        return Signer(status.vault, record.id, sig, issued.access_token)
    finally:
        await engine.dispose()


async def _sql(url: str, statement: str) -> None:
    from sqlalchemy import text

    from sealbox.server.store import engine as db

    engine = db.make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def backend_for(db: str | None, data_dir: Path) -> Iterator[Backend]:
    """SQLite in ``data_dir``, or a fresh PostgreSQL schema dropped on the way out."""
    if db is None:
        yield Backend("sqlite", f"sqlite+aiosqlite:///{data_dir / 'relay.db'}", None)
        return
    from sealbox.server.config import normalise_db_url

    url = normalise_db_url(db)
    if not url.startswith("postgresql+asyncpg://"):
        raise SystemExit(f"--db must be a postgresql:// URL, not {db!r}")
    schema = f"sbx_bench_{secrets.token_hex(4)}"
    asyncio.run(_sql(url, f'CREATE SCHEMA "{schema}"'))
    try:
        yield Backend("postgresql", url, schema)
    finally:
        asyncio.run(_sql(url, f'DROP SCHEMA "{schema}" CASCADE'))


# --- pre-signed requests ------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signed_headers(signer: Signer, url: str, *, created: int, nonce: str) -> tuple[str, str]:
    """``Signature-Input`` and ``Signature`` of ``GET url``, as sealbox's client signs them.

    Built directly (RFC 9421 signature base, one Ed25519 signature) because the
    client's signer parses its PEM key at every call; :func:`check_signer`
    proves the two agree byte for byte (Ed25519 signatures are deterministic).
    """
    params = (
        f'("@method" "@target-uri");created={created};keyid="{signer.key_id}";'
        f'alg="ed25519";nonce="{nonce}";tag="sealbox"'
    )
    base = f'"@method": GET\n"@target-uri": {url}\n"@signature-params": {params}'
    signature = signer.key.sign(base.encode("ascii"))
    return f"sealbox={params}", f"sealbox=:{_b64(signature)}:"


def check_signer(signer: Signer, url: str) -> None:
    import httpx

    from sealbox._relay.httpsig import sign_request

    created, nonce = int(time.time()), secrets.token_urlsafe(16)
    request = httpx.Request("GET", url)
    sign_request(request, key=signer.key, key_id=signer.key_id, now=created, nonce=nonce)
    ours = signed_headers(signer, url, created=created, nonce=nonce)
    theirs = (request.headers["signature-input"], request.headers["signature"])
    if ours != theirs:
        raise RuntimeError(f"pre-signing disagrees with sealbox._relay.httpsig:\n{ours}\n{theirs}")


def write_requests(path: Path, signer: Signer, url: str, count: int) -> None:
    created = int(time.time())
    with path.open("w") as f:
        for _ in range(count):
            sig_input, sig = signed_headers(
                signer, url, created=created, nonce=secrets.token_urlsafe(16)
            )
            f.write(f"{sig_input}\t{sig}\n")


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cores:
    server: int | None
    wrk: int | None

    def describe(self) -> str:
        if self.server is None:
            return "not pinned: fewer than two usable cores"
        return (
            f"each server pinned to core {self.server}, wrk to core {self.wrk} "
            "(sched_setaffinity, as taskset -c)"
        )


def pick_cores() -> Cores:
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return Cores(None, None)
    if len(usable) < 2:
        return Cores(None, None)
    return Cores(usable[0], usable[1])


class Server:
    """A uvicorn server in a child process (``script`` in ``--serve`` mode)."""

    def __init__(
        self,
        kind: str,
        cores: Cores,
        log: Path,
        extra: Sequence[str] = (),
        *,
        script: str = __file__,
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = log
        command = [sys.executable, script, "--serve", kind, "--port", str(self.port), *extra]
        if cores.server is not None:
            command += ["--core", str(cores.server)]
        with log.open("wb") as f:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the {self.kind} server exited with {self.proc.returncode}:\n"
                    + self.log_text()
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the {self.kind} server did not start within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Run:
    """One wrk run, as its Lua ``done`` reports it."""

    requests: int
    duration_us: int
    status_errors: int
    socket_errors: int
    p50_us: int
    p99_us: int
    max_us: int
    overrun: int
    server_cpu: float | None
    """CPU time the server process used (all its threads), per second of the run."""

    @property
    def ok_rps(self) -> float:
        """2xx responses per second."""
        return (self.requests - self.status_errors) / (self.duration_us / 1e6)

    @property
    def clean(self) -> bool:
        return self.status_errors == 0 and self.socket_errors == 0 and self.overrun == 0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    server: Server,
    url: str,
    requests_file: Path,
    script: Path,
    *,
    mode: str,
    seconds: int,
    connections: int,
    threads: int,
    cores: Cores,
    verbose: bool,
) -> Run:
    host = url.split("/", 3)[2]
    command = [
        "wrk", f"--threads={threads}", f"--connections={connections}",
        f"--duration={seconds}s", "--timeout=10s", "--latency", f"--script={script}",
        url, "--", str(requests_file), mode, host, str(threads),
    ]  # fmt: skip
    wrk_core = cores.wrk

    def pin() -> None:
        if wrk_core is not None:
            os.sched_setaffinity(0, {wrk_core})

    cpu_before = cpu_seconds(server.proc.pid)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False,
        preexec_fn=pin,
    )  # fmt: skip
    cpu_after = cpu_seconds(server.proc.pid)
    if verbose:
        sys.stderr.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}{done.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return Run(
        requests=raw["requests"], duration_us=raw["duration_us"],
        status_errors=raw["status_errors"],
        socket_errors=sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors",
                                           "timeouts")),
        p50_us=raw["p50_us"], p99_us=raw["p99_us"], max_us=raw["max_us"], overrun=raw["overrun"],
        server_cpu=None if cpu_before is None or cpu_after is None
        else (cpu_after - cpu_before) / (raw["duration_us"] / 1e6),
    )  # fmt: skip


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


# --- output -------------------------------------------------------------------------------


def emit(line: Mapping[str, Any]) -> None:
    print(json.dumps(line, separators=(",", ":")), flush=True)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def header(args: argparse.Namespace, backend: str, cores: Cores) -> dict[str, Any]:
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    return {
        "bench": BENCH,
        "figure": "header",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "pinning": cores.describe(),
        "wrk": wrk_version(),
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "fastapi": _version("fastapi"),
        "sqlalchemy": _version("sqlalchemy"),
        "http_message_signatures": _version("http-message-signatures"),
        "event_loop": "uvloop" if _importable("uvloop") else "asyncio",
        "http_parser": "httptools" if _importable("httptools") else "h11",
        "backend": backend,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "threads": args.threads,
        "profiled": bool(args.profile),
    }


def figure(name: str, run: Run, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "bench": BENCH,
        "figure": name,
        "rps": round(run.ok_rps, 1),
        "p50_ms": round(run.p50_us / 1000, 2),
        "p99_ms": round(run.p99_us / 1000, 2),
        "max_ms": round(run.max_us / 1000, 2),
        "requests": run.requests,
        "server_cpu": None if run.server_cpu is None else round(run.server_cpu, 2),
        "backend": backend,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": args.connections,
        "profiled": bool(args.profile),
    }


# --- the benchmark ------------------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path, backend: Backend, cores: Cores) -> int:
    import httpx

    signer = asyncio.run(_prepare(work, backend))
    script = work / "replay.lua"
    script.write_text(LUA)
    extra = ["--data-dir", str(work), "--db-url", backend.db_url]
    if backend.schema:
        extra += ["--db-schema", backend.schema]
    if args.profile:
        extra += ["--profile", str(Path(args.profile).resolve())]
    servers: list[Server] = []
    try:
        relay = Server("relay", cores, work / "relay.log", extra)
        servers.append(relay)
        bare = Server("bare", cores, work / "bare.log")
        servers.append(bare)
        path = f"/v1/vaults/{signer.vault}/whoami"
        relay_url, bare_url = relay.base + path, bare.base + path
        check_signer(signer, relay_url)
        # One request by sealbox's own client signer, to see the relay accepts it.
        with httpx.Client() as http:
            request = http.build_request("GET", relay_url)
            from sealbox._relay.httpsig import sign_request

            sign_request(request, key=signer.key, key_id=signer.key_id)
            response = http.send(request)
        if response.status_code != 200 or response.json().get("role") != "approver":
            raise RuntimeError(f"the relay refused a signed request: {response.text}")

        bare_file = work / "bare.txt"
        write_requests(bare_file, signer, bare_url, 1000)
        common: dict[str, Any] = {
            "connections": args.connections, "threads": args.threads, "cores": cores,
            "verbose": args.verbose, "script": script,
        }  # fmt: skip

        def relay_round(seconds: int, count: int) -> Run:
            file = work / "relay.txt"
            write_requests(file, signer, relay_url, count)
            return run_wrk(relay, relay_url, file, mode="once", seconds=seconds, **common)

        def bare_round(seconds: int) -> Run:
            return run_wrk(bare, bare_url, bare_file, mode="cycle", seconds=seconds, **common)

        # Warm-up (also sizes the request files: the best rate seen, times 1.5).
        warm = relay_round(1, min(args.max_requests, 5000))
        bare_round(1)
        rate = warm.ok_rps
        relay_runs: list[Run] = []
        bare_runs: list[Run] = []
        for _ in range(args.rounds):
            count = min(args.max_requests, math.ceil(rate * args.seconds * 1.5) + 1000)
            run = relay_round(args.seconds, count)
            if run.overrun:  # the file ran out: not counted; the next file is larger
                sys.stderr.write(f"relay round ran out of signed requests ({count}); not counted\n")
            relay_runs.append(run)
            rate = max(rate, run.ok_rps * (2 if run.overrun else 1))
            bare_runs.append(bare_round(args.seconds))

        # A person's session: the same whoami with a bearer token (a token lookup,
        # no signature, no write), beside bare Starlette answering the same JSON.
        with httpx.Client() as http:
            check = http.get(relay_url, headers={"authorization": f"Bearer {signer.access_token}"})
        if check.status_code != 200 or check.json().get("via") != "bearer":
            raise RuntimeError(f"the relay refused the bearer token: {check.text}")
        bearer_file = work / "bearer.txt"
        bearer_file.write_text(f"authorization\tBearer {signer.access_token}\n" * 1000)
        plain_url = bare.base + f"/v1/vaults/{signer.vault}/plain"
        run_wrk(relay, relay_url, bearer_file, mode="cycle", seconds=1, **common)  # warm-up
        bearer_runs: list[Run] = []
        plain_runs: list[Run] = []
        for _ in range(args.rounds):
            bearer_runs.append(run_wrk(relay, relay_url, bearer_file, mode="cycle",
                                       seconds=args.seconds, **common))  # fmt: skip
            plain_runs.append(run_wrk(bare, plain_url, bearer_file, mode="cycle",
                                      seconds=args.seconds, **common))  # fmt: skip
    finally:
        for server in servers:
            server.stop()

    for name, runs in (("relay", relay_runs), ("bare", bare_runs),
                       ("relay_bearer", bearer_runs), ("bare_plain", plain_runs)):  # fmt: skip
        bad = [r for r in runs if not r.clean]
        for r in bad:
            sys.stderr.write(
                f"{name}: a round had {r.status_errors} non-2xx responses, {r.socket_errors} "
                f"socket errors and {r.overrun} repeated requests; it is not counted\n"
            )
        if len(bad) == len(runs):
            log = (work / f"{name.split('_')[0]}.log").read_text(errors="replace")
            sys.stderr.write(f"{name}: no clean round, no figure; its log ends:\n{log[-3000:]}\n")
            return 1
    best_relay = max((r for r in relay_runs if r.clean), key=lambda r: r.ok_rps)
    best_bare = max((r for r in bare_runs if r.clean), key=lambda r: r.ok_rps)
    emit(figure("relay", best_relay, backend.name, args))
    emit(figure("bare", best_bare, backend.name, args))
    ratio = best_relay.ok_rps / best_bare.ok_rps
    emit(
        {
            "bench": BENCH, "figure": "ratio", "ratio": round(ratio, 3),
            "relay_rps": round(best_relay.ok_rps, 1), "bare_rps": round(best_bare.ok_rps, 1),
            "goal": GOAL, "meets_goal": ratio >= GOAL, "backend": backend.name,
            "profiled": bool(args.profile),
        }
    )  # fmt: skip
    best_bearer = max((r for r in bearer_runs if r.clean), key=lambda r: r.ok_rps)
    best_plain = max((r for r in plain_runs if r.clean), key=lambda r: r.ok_rps)
    emit(figure("relay_bearer", best_bearer, backend.name, args))
    emit(figure("bare_plain", best_plain, backend.name, args))
    bearer_ratio = best_bearer.ok_rps / best_plain.ok_rps
    emit(
        {
            "bench": BENCH, "figure": "bearer_ratio", "ratio": round(bearer_ratio, 3),
            "relay_rps": round(best_bearer.ok_rps, 1), "bare_rps": round(best_plain.ok_rps, 1),
            "goal": GOAL, "meets_goal": bearer_ratio >= GOAL, "backend": backend.name,
            "profiled": bool(args.profile),
        }
    )  # fmt: skip
    if args.profile:
        out = io.StringIO()
        stats = pstats.Stats(str(Path(args.profile).resolve()), stream=out)
        stats.sort_stats("cumulative").print_stats(40)
        sys.stderr.write(out.getvalue())
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=positive_int, default=5,
        help="seconds of each timed wrk run (whole seconds; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=positive_int, default=2,
        help="timed runs per server, alternating relay and bare (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--connections", type=positive_int, default=32,
        help="wrk's open connections, for both servers (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="wrk threads (default: %(default)s)"
    )
    parser.add_argument(
        "--db", default=None, metavar="URL",
        help="PostgreSQL server URL (postgresql://…) to run the relay on, in a throwaway "
        "schema; default: SQLite in a temporary directory",
    )  # fmt: skip
    parser.add_argument(
        "--max-requests", type=positive_int, default=300_000,
        help="most pre-signed requests written for one relay run (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--profile", metavar="FILE", help="run the relay under cProfile")
    parser.add_argument("--verbose", action="store_true", help="echo wrk's reports on stderr")
    # Child-process mode: one server.
    parser.add_argument("--serve", choices=("relay", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--db-schema", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)

    if shutil.which("wrk") is None:
        sys.stderr.write(WRK_INSTALL + "\n")
        return 2
    cores = pick_cores()
    with tempfile.TemporaryDirectory(prefix="sealbox-bench-") as tmp:
        work = Path(tmp)
        with backend_for(args.db, work) as backend:
            emit(header(args, backend.name, cores))
            return measure(args, work, backend, cores)


if __name__ == "__main__":
    sys.exit(main())
