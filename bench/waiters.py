"""Many long-poll waiters on one relay process: its memory, and how fast they wake.

Run as ``python bench/waiters.py [--waiters N] [--db postgresql://…]``.  This is a
benchmark, not a test: it asserts no speed or size.  It prints one header line,
then one JSON line per figure on stdout.

What runs: one real relay process (``create_app`` under uvicorn, the settings of
``sealbox up``; SQLite in a temporary directory, or a throwaway schema of the
PostgreSQL server given by ``--db``).  ``N`` waiters (default 10,000) each hold
the real long-poll endpoint ``GET /v1/vaults/{vault}/access-requests/{id}?wait=60``
open on its own loopback connection, authenticated with a bearer access token of
one human client (one token row read per request; the token, the client and its
certificate are made as the OAuth and client routes make them).  The ``N``
access requests are rows inserted directly in the database (state
``pending``): creating them through ``POST /access-requests`` would need ``N``
signed access statements and runs into the per-client pending cap, and is not
what is measured here.

The relay's per-caller rate limit is raised out of reach (all waiters are one
client); the limiter still runs on every request.  The waiters connect at most
``--in-flight`` at a time (sent, not yet subscribed), so that a sudden flood of
10,000 requests does not queue for the relay's database pool longer than its
30 s checkout timeout (which it does, with 500s, if they all come at once).  A
waiter whose 60 s wait runs out before its release polls again, as a client
does (``polled_again`` counts them).

Releases go through a bench-only route that this script mounts on the relay app
in the relay process (it is not in the product): ``POST /_bench/release``
moves each given request from ``pending`` to ``released`` with the product's
own compare-and-set (``store.requests.transition``) and wakes its channel with
``wake_owner``, as the release service does (the new status rides in the
wake-up), in one write transaction: the tail of ``services.access.release``
after its checks of the release.  The waiter then does what it does for a real
release: answers with the status its wake-up carries, reading nothing.

The figures:

``memory``
    Resident set size (``VmRSS``) of the relay process idle (after a warm-up
    request) and with all ``N`` waiters subscribed, its peak (``VmHWM``), and
    the difference per waiter.  Goal: at most 300 MB with ``N`` waiters.
``wake_single``
    ``--sample`` waiters released one at a time, each in its own transaction,
    the next only once the previous waiter has its answer, while all the others
    still wait: the latency of one approval reaching its client.  Goal: p99 at
    most 50 ms.
``wake_burst``
    All the remaining waiters released back to back, ``--batch`` per
    transaction: a thundering herd.  Its p99 is about the time to drain the
    herd (``drain_s``), which grows with ``N``; the line says so and judges it
    against the same 50 ms goal.

Wake-up latency is from the moment the release transaction has committed (and,
on SQLite, handed its wakes to the hub; on PostgreSQL the wake travels by
NOTIFY to the relay's one LISTEN connection), stamped by the relay with
``time.monotonic()``, to the moment the waiter's client has read the whole
response, stamped the same way: ``CLOCK_MONOTONIC`` is one clock for every
process of a Linux machine.  The client is this script, with raw asyncio
streams (one connection per waiter, HTTP/1.1).  The relay runs on one core and
this script on another when there are two usable cores.  ``RLIMIT_NOFILE`` is
raised to its hard limit in both processes.  Everything is on loopback and
bounded in time: the waiters must all be subscribed within ``--ramp-timeout``
seconds (90), and every later wait has a timeout; 10,000 waiters take about
75 s on a small two-core machine, most of it the ramp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import relay_throughput as rt  # the sibling benchmark: servers, vault setup

BENCH = "waiters"
HOST = rt.HOST
WAIT_SECONDS = 60
GOAL_RSS_MB = 300
GOAL_P99_MS = 50


# --- the relay process, with the bench-only release route --------------------------------


def serve(args: argparse.Namespace) -> int:
    """Child process: the relay app plus ``/_bench/release`` and ``/_bench/stats``."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from sealbox.protocol.state import Event, State
    from sealbox.server.services.access import wake_owner
    from sealbox.server.store.requests import get, transition

    raise_nofile()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    app = rt._relay_app(Path(args.data_dir), args.db_url, args.db_schema)
    relay = app.state.relay

    async def release(request: Request) -> JSONResponse:
        body = await request.json()
        vault, ids = body["vault"], body["ids"]
        now = relay.now()
        async with relay.tx() as tx:
            for request_id in ids:
                state = await transition(
                    tx.conn, vault, request_id, "access", State.PENDING,
                    Event.THRESHOLD_REACHED, now,
                )  # fmt: skip
                row = await get(tx.conn, vault, request_id)
                if state is None or row is None:
                    raise RuntimeError(f"request {request_id} was not pending")
                # As the release service does: the wake-up carries the new status.
                wake_owner(tx, row, state, approvals=1)
        return JSONResponse({"released": len(ids), "at": time.monotonic()})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse({"subscribers": relay.hub.subscriber_count()})

    # Plain Starlette routes, outside the API (no schema, no dependencies).
    app.add_route("/_bench/release", release, methods=["POST"], include_in_schema=False)
    app.add_route("/_bench/stats", stats, methods=["GET"], include_in_schema=False)
    uvicorn.Server(rt._uvicorn_config(app, args.port)).run()
    return 0


def raise_nofile() -> tuple[int, int]:
    """Raise this process's open-file limit to its hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- the world: a client with a bearer token, and N pending access requests ---------------


@dataclass(frozen=True)
class World:
    vault: str
    token: str
    request_ids: tuple[str, ...]
    """The warm-up request first, then one per waiter."""


async def _populate(work: Path, backend: rt.Backend, signer: rt.Signer, count: int) -> World:
    from sealbox.crypto.keys import SigningKey
    from sealbox.protocol import ids
    from sealbox.protocol.certificates import issue_certificate
    from sealbox.protocol.state import State
    from sealbox.protocol.statements import ClientConstraints, ClientInfo
    from sealbox.server.atrest import load_master_key
    from sealbox.server.config import Settings
    from sealbox.server.relay import Relay
    from sealbox.server.services.login import issue_tokens
    from sealbox.server.store import engine as db
    from sealbox.server.store.tables import clients, requests

    settings = Settings(data_dir=work, db_url=backend.db_url, db_schema=backend.schema)
    engine = db.make_engine(backend.db_url, schema=backend.schema)
    try:
        relay = Relay(settings=settings, engine=engine, master_key=load_master_key(work))
        now = relay.now()
        async with relay.read() as conn:
            directory = await relay.directories.load(conn, signer.vault)
        info = ClientInfo(id=ids.new_id(ids.CLIENT), kind="human", name="bench waiter",
                          sig_pk=SigningKey.generate().verify_key())  # fmt: skip
        not_after = now + 3600
        certificate = issue_certificate(
            directory, issuer=signer.key_id, key=signer.key, client=info, scopes=["read"],
            constraints=ClientConstraints(not_after=not_after), now=now,
        )  # fmt: skip
        request_ids = tuple(secrets.token_hex(32) for _ in range(count + 1))
        async with relay.tx() as tx:
            await tx.conn.execute(
                clients.insert().values(
                    vault_id=signer.vault, id=info.id, kind=info.kind, name=info.name,
                    sig_pk=info.sig_pk.to_text(), certificate=certificate, enrollment=None,
                    disabled=False, created_at=now,
                )
            )  # fmt: skip
            issued = await issue_tokens(
                tx.conn, vault=signer.vault, client_id=info.id, now=now, not_after=not_after
            )
            rows = [
                {"vault_id": signer.vault, "id": rid, "kind": "access", "client_id": info.id,
                 "statement": "bench: inserted directly, never parsed by the long poll",
                 "detail": {"items": [], "approvers": [signer.key_id], "cache_until_max": now},
                 "state": State.PENDING.value, "threshold": 1, "source_ip": HOST,
                 "created_at": now, "expires_at": now + 900, "updated_at": now}
                for rid in request_ids
            ]  # fmt: skip
            for start in range(0, len(rows), 1000):
                await tx.conn.execute(requests.insert(), rows[start : start + 1000])
        return World(signer.vault, issued.access_token, request_ids)
    finally:
        await engine.dispose()


# --- the client: raw asyncio HTTP/1.1 -----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    request_id: str
    received_at: float
    status: int
    state: str | None
    polls: int
    """Long polls made, the last included (more than one if a 60 s wait ran out)."""


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of process ``pid``, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def http(
    port: int, method: str, path: str, *, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """One request on its own connection; (status, parsed JSON body)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(_request_bytes(port, method, path, token=token, body=body))
        await writer.drain()
        status, payload = await _read_response(reader)
        return status, json.loads(payload)
    finally:
        writer.close()


def _request_bytes(
    port: int, method: str, path: str, *, token: str | None = None, body: Any = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    length = None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    payload = await reader.readexactly(length) if length is not None else await reader.read()
    return status, payload


async def waiter(port: int, token: str, vault: str, request_id: str) -> Answer:
    """Long-poll until the request leaves ``pending``, polling again as a client does."""
    path = f"/v1/vaults/{vault}/access-requests/{request_id}?wait={WAIT_SECONDS}"
    polls = 0
    while True:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(_request_bytes(port, "GET", path, token=token))
            await writer.drain()
            status, payload = await _read_response(reader)
            received = time.monotonic()
        finally:
            writer.close()
        polls += 1
        state = json.loads(payload).get("state") if status == 200 else None
        if state != "pending":
            return Answer(request_id, received, status, state, polls)


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    if len(ordered) == 1:
        only = round(ordered[0], 2)
        return {"p50_ms": only, "p99_ms": only, "max_ms": only}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(ordered[-1], 2),
    }


# --- the benchmark ------------------------------------------------------------------------


def emit(line: Mapping[str, Any]) -> None:
    print(json.dumps(line, separators=(",", ":")), flush=True)


async def drive(
    args: argparse.Namespace, server: rt.Server, world: World, backend: str
) -> int:  # fmt: skip
    port, pid = server.port, server.proc.pid
    warm, *ids = world.request_ids
    base = f"/v1/vaults/{world.vault}/access-requests"

    # Warm-up: one long poll that returns at once, one release, one stats call.
    status, body = await http(port, "GET", f"{base}/{warm}?wait=0", token=world.token)
    if status != 200 or body.get("state") != "pending":
        raise RuntimeError(f"the long-poll endpoint answered {status}: {body}")
    await release(port, world.vault, [warm])
    await http(port, "GET", "/_bench/stats")
    await asyncio.sleep(0.5)
    rss_idle, _ = rss_kb(pid)

    # Ramp: every waiter connected and subscribed, at most --in-flight of them on their
    # way (sent, not yet subscribed) at once, so none waits long for a pooled connection.
    started = time.monotonic()
    tasks: dict[str, asyncio.Task[Answer]] = {}
    queued = iter(ids)
    while True:
        _, stats = await http(port, "GET", "/_bench/stats")
        subscribed = stats["subscribers"]
        if len(tasks) == len(ids) and subscribed >= len(ids):
            break
        failed = [t for t in tasks.values() if t.done()]
        if failed:
            answer = failed[0].result()
            raise RuntimeError(
                f"{len(failed)} waiter(s) returned before any release, e.g. {answer.status} "
                f"{answer.state!r}"
            )
        if time.monotonic() - started > args.ramp_timeout:
            raise RuntimeError(
                f"only {subscribed} of {len(ids)} waiters subscribed within {args.ramp_timeout} s"
            )
        room = min(args.in_flight - (len(tasks) - subscribed), len(ids) - len(tasks))
        for rid in itertools.islice(queued, max(room, 0)):
            tasks[rid] = asyncio.create_task(waiter(port, world.token, world.vault, rid))
        await asyncio.sleep(0.01)
    ramp = time.monotonic() - started
    await asyncio.sleep(0.5)  # the last ones finish their first read
    rss_waiting, hwm = rss_kb(pid)
    emit(
        {
            "bench": BENCH, "figure": "memory", "waiters": len(ids),
            "rss_mb_idle": round(rss_idle / 1024, 1),
            "rss_mb_waiting": round(rss_waiting / 1024, 1),
            "rss_mb_peak": round(hwm / 1024, 1),
            "kb_per_waiter": round((rss_waiting - rss_idle) / len(ids), 2),
            "ramp_s": round(ramp, 2), "ramp_per_s": round(len(ids) / ramp, 1),
            "goal_rss_mb": GOAL_RSS_MB,
            "meets_goal": rss_waiting / 1024 <= GOAL_RSS_MB, "backend": backend,
        }
    )  # fmt: skip

    # One at a time, with everyone else still waiting.
    sample, rest = ids[: args.sample], ids[args.sample :]
    single: list[float] = []
    for rid in sample:
        body = await release(port, world.vault, [rid])
        answer = await asyncio.wait_for(tasks[rid], timeout=30)
        check(answer)
        single.append((answer.received_at - body["at"]) * 1000)
    line = {"bench": BENCH, "figure": "wake_single", "released": len(single),
            "still_waiting": len(rest), **percentiles(single)}  # fmt: skip
    emit(judged(line, backend))

    # The herd: everyone else, back to back.
    if rest:
        released_at: dict[str, float] = {}
        herd_start = time.monotonic()
        for start in range(0, len(rest), args.batch):
            chunk = rest[start : start + args.batch]
            body = await release(port, world.vault, chunk)
            released_at.update(dict.fromkeys(chunk, body["at"]))
        answers = await asyncio.wait_for(
            asyncio.gather(*(tasks[rid] for rid in rest)), timeout=WAIT_SECONDS
        )
        drain = max(a.received_at for a in answers) - herd_start
        burst = []
        for answer in answers:
            check(answer)
            burst.append((answer.received_at - released_at[answer.request_id]) * 1000)
        line = {"bench": BENCH, "figure": "wake_burst", "released": len(burst),
                "batch": args.batch, **percentiles(burst), "drain_s": round(drain, 2),
                "polled_again": sum(a.polls > 1 for a in answers)}  # fmt: skip
        emit(judged(line, backend))
    return 0


async def release(port: int, vault: str, ids: Sequence[str]) -> dict[str, Any]:
    status, body = await http(port, "POST", "/_bench/release", body={"vault": vault, "ids": ids})
    if status != 200:
        raise RuntimeError(f"the bench release route answered {status}: {body}")
    return dict(body)


def judged(line: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """A wake-up figure with the goal it is judged against."""
    return {**line, "goal_p99_ms": GOAL_P99_MS, "meets_goal": line["p99_ms"] <= GOAL_P99_MS,
            "backend": backend}  # fmt: skip


def check(answer: Answer) -> None:
    if answer.status != 200 or answer.state != "released":
        raise RuntimeError(
            f"waiter of {answer.request_id} got {answer.status} {answer.state!r}, not released"
        )


def header(args: argparse.Namespace, backend: str, cores: rt.Cores, nofile: int) -> dict[str, Any]:
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = None
    return {
        "bench": BENCH,
        "figure": "header",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "pinning": cores.describe().replace("wrk", "the waiters' client (this script)"),
        "uvicorn": rt._version("uvicorn"),
        "fastapi": rt._version("fastapi"),
        "event_loop": "uvloop" if rt._importable("uvloop") else "asyncio",
        "http_parser": "httptools" if rt._importable("httptools") else "h11",
        "backend": backend,
        "waiters": args.waiters,
        "sample": min(args.sample, args.waiters),
        "batch": args.batch,
        "nofile_limit": nofile,
        "endpoint": "GET /v1/vaults/{vault}/access-requests/{id}?wait=60 (bearer token)",
        "requests": "pending rows inserted directly in the database",
        "release": "bench-only POST /_bench/release mounted by this script: compare-and-set "
        "pending->released + tx.wake(request channel), one transaction per call",
    }


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--waiters", type=positive_int, default=10_000,
        help="concurrent long-poll waiters (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--sample", type=positive_int, default=200,
        help="waiters released one at a time (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--batch", type=positive_int, default=500,
        help="waiters released per transaction in the herd (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--ramp-timeout", type=positive_int, default=90,
        help="seconds allowed for all waiters to connect and subscribe (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--in-flight", type=positive_int, default=128,
        help="waiters sent but not yet subscribed, at most, while they connect "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--db", default=None, metavar="URL",
                        help="PostgreSQL server URL (postgresql://…) to run the relay on, in a "
                        "throwaway schema; default: SQLite in a temporary directory")  # fmt: skip
    parser.add_argument("--serve", choices=("relay",), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--db-schema", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)

    soft, _ = raise_nofile()
    needed = args.waiters + 200
    if soft < needed:
        sys.stderr.write(
            f"{args.waiters} waiters need about {needed} open files, but this process may open "
            f"only {soft} (ulimit -Hn). Raise the hard limit or use fewer --waiters.\n"
        )
        return 2
    cores = rt.pick_cores()
    with tempfile.TemporaryDirectory(prefix="sealbox-bench-") as tmp:
        work = Path(tmp)
        with rt.backend_for(args.db, work) as backend:
            emit(header(args, backend.name, cores, soft))
            signer = asyncio.run(rt._prepare(work, backend))
            world = asyncio.run(_populate(work, backend, signer, args.waiters))
            extra = ["--data-dir", str(work), "--db-url", backend.db_url]
            if backend.schema:
                extra += ["--db-schema", backend.schema]
            server = rt.Server("relay", cores, work / "relay.log", extra, script=__file__)
            try:
                if cores.wrk is not None:
                    os.sched_setaffinity(0, {cores.wrk})
                return asyncio.run(drive(args, server, world, backend.name))
            except Exception:
                sys.stderr.write("relay log (end):\n" + server.log_text()[-3000:] + "\n")
                raise
            finally:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())
