"""Every policy axis end to end: `sealbox up`, `sealbox approver policy`, the person's CLI and
`sealbox approver serve` (two of them for the co-signer), each a real process.

Time windows are computed from the current time (one that excludes now, one that
includes it); networks are tested through two small TCP forwarders whose
connections to the relay leave from 127.0.0.2 and 127.0.0.3, so the relay sees
those as the CLI's address.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from loop_support import APPROVE_ALL, PASSPHRASE, SEALBOX, Deployment, env_for, outputs
from test_e2e_hostile_proxy import APPROVAL, HostileProxy, _point_at
from test_e2e_terminal import ANSWER, CONFIRM, Started, request_block, started

__all__ = ["started"]  # the fixture, shared by name

from sealbox.protocol.policies import sign_policy
from sealbox.protocol.policy_rules import DAYS, parse_window
from sealbox.protocol.statements import PolicyStatement

ALLOWED, REFUSED = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.close()


@contextlib.contextmanager
def forwarder(port: int, source: str) -> Iterator[int]:
    """A TCP forwarder on 127.0.0.1 whose connections to the relay leave from ``source``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    opened: list[socket.socket] = []
    pumps: list[threading.Thread] = []

    def pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                inbound, _ = listener.accept()
            except TimeoutError:
                continue
            outbound = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
            opened.extend((inbound, outbound))
            for a, b in ((inbound, outbound), (outbound, inbound)):
                pumps.append(threading.Thread(target=pump, args=(a, b), daemon=True))
                pumps[-1].start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for running in pumps:
            running.join(5)


def via(d: Deployment, name: str, port: int) -> Path:
    """A second logged-in person whose profile reaches the relay through a forwarder."""
    config = d.tmp / name
    d.login(config)
    profile = config / "profiles" / "default.json"
    document = json.loads(profile.read_text())
    document["server"] = f"http://127.0.0.1:{port}"
    profile.write_text(json.dumps(document))
    return config


def policy(d: Deployment, pattern: str, *args: str, approvers: str | None = None) -> str:
    done = d.approver_cli("approver", "policy", pattern, "--approvers",
                          approvers or d.keys.record.id, *args)  # fmt: skip
    assert done.returncode == 0, outputs(done)
    return done.stdout


def read(d: Deployment, ref: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return d.run_as(config or d.client_config, "read", ref, "--purpose", "policy axes test")


def audit(d: Deployment, action: str) -> list[dict[str, Any]]:
    session = d.session()
    try:
        return list(session.ok("GET", f"/audit?action={action}", "reading the log")["events"])
    finally:
        session.close()


#: What the CLI says for each axis's refusal (the relay's error codes are checked in the log).
SAYS = {
    "policy_outside_hours": "accepts requests only within",
    "policy_rate_exceeded": "may be asked for at most",
    "policy_network_not_allowed": "accepts requests only from its networks",
    "item_destroyed": "was destroyed under its policy",
}


def refused(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode == 1, outputs(done)
    assert SAYS[code] in done.stderr, outputs(done)
    assert "value-of-" not in outputs(done)


def test_every_policy_axis_against_real_processes(d: Deployment) -> None:
    cosigner_config, cosigner = d.add_approver("cosigner")
    me = d.keys.record.id
    bot = d.serve(APPROVE_ALL)
    for path in ("shop/prod/db", "shop/dev/db", "shop/cs/db", "shop/tmp/db", "shop/rot/db",
                 "shop/net/db"):  # fmt: skip
        stored = d.store(path, {"password": f"value-of-{path}"})
        assert stored.returncode == 0, outputs(stored)

    # --- time windows: one that excludes now refuses before anyone is asked ----------------
    today = datetime.now(UTC).weekday()
    others = ",".join(day for i, day in enumerate(DAYS) if i != today)
    shown = policy(d, "shop/prod/*", "--hours", f"{others} 00:00-24:00 UTC")
    assert "signed by this approver" in shown
    assert "Asked for only within:" in shown
    asked_before = len(bot.decisions())
    refused(read(d, "sealbox://shop/prod/db/password"), "policy_outside_hours")
    assert len(bot.decisions()) == asked_before  # the approver was never asked
    # A malformed window is a usage error, nothing sent.
    bad = d.approver_cli("approver", "policy", "shop/prod/*", "--approvers", me, "--hours",
                         "mon-fri 9-17 UTC")  # fmt: skip
    assert bad.returncode == 2, outputs(bad)
    assert "not a time window" in bad.stderr
    policy(d, "shop/prod/*", "--hours", f"{others} 00:00-24:00 UTC",
           "--hours", f"{DAYS[today]} 00:00-24:00 UTC")  # fmt: skip
    done = read(d, "sealbox://shop/prod/db/password")
    assert done.returncode == 0, outputs(done)
    assert done.stdout.strip() == "value-of-shop/prod/db"
    # The automated approver verified the signed policy and logged which one applied.
    [entry] = [e for e in bot.decisions() if e.get("kind") == "access"
               and any(p.get("path") == "shop/prod/db" for p in e.get("policies", ()))]  # fmt: skip
    [applied] = entry["policies"]
    assert (applied["pattern"], applied["signed_by"]) == ("shop/prod/*", me)

    # --- read-rate cap -----------------------------------------------------------------------
    policy(d, "shop/dev/*", "--max-reads", "2/h")
    for _ in range(2):
        done = read(d, "sealbox://shop/dev/db/password")
        assert done.returncode == 0, outputs(done)
    refused(read(d, "sealbox://shop/dev/db/password"), "policy_rate_exceeded")

    # --- co-sign: the first approver's release is not enough ----------------------------------
    policy(d, "shop/cs/*", "--threshold", "1", "--cosigner", cosigner.record.id,
           approvers=f"{me},{cosigner.record.id}")  # fmt: skip
    released = len(bot.wait_for("approved"))
    waiting = subprocess.Popen(
        [*SEALBOX, "read", "sealbox://shop/cs/db/password", "--purpose", "co-signed read"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_for(d.client_config), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        bot.wait_for("approved", released + 1)
        time.sleep(1.5)
        assert waiting.poll() is None  # still waiting for the co-signer
        second = d.serve(APPROVE_ALL, config=cosigner_config)
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, out + err
    assert out.strip() == "value-of-shop/cs/db"
    second.stop()

    # --- rotate after N releases --------------------------------------------------------------
    policy(d, "shop/rot/*", "--rotate-after", "2")
    for _ in range(3):
        done = read(d, "sealbox://shop/rot/db/password")
        assert done.returncode == 0, outputs(done)
    listed = d.cli("ls", "shop/rot")
    assert "(rotation due)" in listed.stdout, outputs(listed)
    history = d.cli("history", "sealbox://shop/rot/db")
    assert "rotation due" in history.stdout, outputs(history)
    [event] = audit(d, "item.rotation_due")
    assert event["severity"] == "alert"
    stored = d.store("shop/rot/db", {"password": "rotated"})
    assert stored.returncode == 0, outputs(stored)
    assert "(rotation due)" not in d.cli("ls", "shop/rot").stdout

    # --- networks, per item: the relay sees the forwarders' source addresses ------------------
    policy(d, "shop/net/db", "--cidr", ALLOWED)
    with forwarder(d.relay.port, ALLOWED) as inside, forwarder(d.relay.port, REFUSED) as away:
        home, far = via(d, "home", inside), via(d, "far", away)
        refused(read(d, "sealbox://shop/net/db/password", far), "policy_network_not_allowed")
        done = read(d, "sealbox://shop/net/db/password", home)
        assert done.returncode == 0, outputs(done)
        assert done.stdout.strip() == "value-of-shop/net/db"

    # --- destruction: refused from the date on, then deleted by the relay's housekeeping --------
    at = int(time.time()) + 4
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    shown = policy(d, "shop/tmp/*", "--destroy-at", when)
    assert "Destroyed at" in shown
    done = read(d, "sealbox://shop/tmp/db/password")
    assert done.returncode == 0, outputs(done)
    time.sleep(max(0.0, at - time.time()) + 0.5)
    refused(read(d, "sealbox://shop/tmp/db/password"), "item_destroyed")
    deadline = time.monotonic() + 30
    while "shop/tmp/db" in d.cli("ls").stdout:
        assert time.monotonic() < deadline, "housekeeping did not destroy the item"
        time.sleep(0.5)
    [destroyed] = audit(d, "item.destroyed")
    assert destroyed["detail"]["path"] == "shop/tmp/db"
    refused(read(d, "sealbox://shop/tmp/db/password"), "item_destroyed")

    # Every refusal above was audited, naming its axis.
    errors = {e["detail"]["error"] for e in audit(d, "request.refused")}
    assert {"policy_outside_hours", "policy_rate_exceeded", "policy_network_not_allowed",
            "item_destroyed"} <= errors  # fmt: skip


def test_sealbox_approve_shows_the_signed_policy_as_verified(
    d: Deployment, started: Started
) -> None:
    bot = d.serve(APPROVE_ALL)
    stored = d.store("shop/prod/db", {"password": "value-of-shop/prod/db"})
    assert stored.returncode == 0, outputs(stored)
    bot.stop()
    window = f"{DAYS[datetime.now(UTC).weekday()]} 00:00-24:00 UTC"
    policy(d, "shop/prod/*", "--hours", window, "--rotate-after", "7")
    reader = started.person(d, "read", "sealbox://shop/prod/db/password", "--purpose", "look")
    approve, _ = started.approve(d)
    approve.expect(ANSWER)
    _, verified, reported = request_block(approve, "ACCESS REQUEST")
    me = d.keys.record.id
    assert (f"  policy:   shop/prod/db: shop/prod/* (signed by {me}): 1 of 1, hours {window}, "
            "rotate after 7\n") in verified, verified  # fmt: skip
    assert "policy" not in reported
    approve.type("yes")
    approve.expect(CONFIRM)
    approve.type(PASSPHRASE)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out.strip() == "value-of-shop/prod/db"


def test_the_automated_approver_refuses_what_a_hostile_relay_let_through(d: Deployment) -> None:
    bot = d.serve(APPROVE_ALL)
    stored = d.store("shop/prod/db", {"password": "value-of-shop/prod/db"})
    assert stored.returncode == 0, outputs(stored)
    bot.stop()
    today = datetime.now(UTC).weekday()
    policy(d, "shop/prod/*", "--hours", f"{DAYS[today]} 00:00-24:00 UTC")
    # The relay (through this proxy) serves another policy the approver did sign, one whose
    # hours exclude now: as if it had let through a request its policy forbids.
    others = parse_window(
        ",".join(day for i, day in enumerate(DAYS) if i != today) + " 00:00-24:00 UTC"
    ).text()
    closed = sign_policy(PolicyStatement(
        vault=d.vault, approver=d.keys.record.id, pattern="shop/prod/*",
        approvers=(d.keys.record.id,), threshold=1, expiry_seconds=300, max_cache_seconds=0,
        store_needs_approval=True, cidrs=(), hours=(others,), max_reads=None, cosigner=None,
        destroy_at=None, rotate_after=None, at=int(time.time()),
    ), d.keys.sig)  # fmt: skip

    def swap(entry: dict[str, Any]) -> dict[str, Any]:
        served = entry.get("policies") or {}
        return {
            **entry,
            "policies": {
                p: {**v, "statements": [], "statement": closed} for p, v in served.items()
            },
        }

    def tamper(method: str, path: str, status: int, body: Any) -> Any:
        if method != "GET" or status != 200 or not isinstance(body, dict):
            return body
        if re.fullmatch(r"/v1/vaults/[^/]+/approvals", path):
            return {**body, "requests": [swap(e) for e in body.get("requests", [])]}
        if re.fullmatch(APPROVAL, path):
            return swap(body)
        return body

    proxy = HostileProxy(d.url)
    try:
        proxy.tamper = tamper
        _point_at(d.key_file, proxy.url)
        hostile = d.serve(APPROVE_ALL)
        done = read(d, "sealbox://shop/prod/db/password")
        [entry] = hostile.wait_for("unverifiable")
        assert entry["error"] == "policy_outside_hours", entry
        assert entry["answer"] == "refused"
        assert done.returncode != 0, outputs(done)
        assert "policy_outside_hours" in done.stderr, outputs(done)
        assert "value-of-" not in outputs(done)
        hostile.stop()
    finally:
        _point_at(d.key_file, d.url)
        proxy.close()
