"""Audit integrity end to end: a real relay, `sealbox approver serve` signing checkpoints on a
short schedule, a person's approver CLI (`sealbox audit checkpoint|verify|tail|export`), and
a tampering proxy playing a hostile relay.

Honest: the automated approver signs checkpoints every second; a person signs
one on demand; `verify` passes from the relay and from an export (written
0600); `tail` shows new events as they come, with their severity; `export
--format csv` is the relay's CSV.

Tampered files: a deleted, changed, reordered or inserted event, a log cut
short before a checkpoint, and two exports that fork all exit 5 with
``INVALID:`` naming the seq.  A hostile relay (the proxy): serving a log
truncated behind a checkpoint or behind the head the CLI verified before,
or an edited event, fails `verify` the same way; and the automated approver
refuses to sign a head that does not link to its last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import SEALBOX
from loop_support import APPROVE_ALL, Deployment, ServeProcess, env_for, outputs
from test_e2e_hostile_proxy import HostileProxy, _point_at

from sealbox.protocol.audit import event_hash

SECRET = "audit-test-value-71f3"
REF = "sealbox://shop/prod/db/password"


class CheckpointingServe(ServeProcess):
    """`sealbox approver serve` with ``--checkpoint-every`` (the base class starts it without)."""

    def __init__(self, config: Path, rules: str, log: Path, every: str) -> None:
        self.rules = config / "rules.toml"
        self.rules.write_text(rules)
        self.log = log
        self.proc = subprocess.Popen(
            [*SEALBOX, "approver", "serve", "--rules", str(self.rules), "--log", str(log),
             "--checkpoint-every", every],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_for(config),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.stderr = ""
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr += line
                if "Listening for requests" in line:
                    ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(60):
            self.stop()
            raise AssertionError(f"approver serve did not start:\n{self.stderr}")


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("audit"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def person(d: Deployment) -> Path:
    """A second approver device (a person's), with its own config directory."""
    config, _ = d.add_approver("desk")
    return config


def audit(d: Deployment, config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return d.run_as(config, "audit", *args, **env)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def rehash_from(rows: list[str], index: int) -> list[str]:
    """Recompute each event's link and hash from ``rows[index]`` on (a careful forger)."""
    out = rows[:index]
    prev = json.loads(out[-1])["hash"]
    for row in rows[index:]:
        event = json.loads(row)
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(prev, event)
        out.append(json.dumps(event))
    return out


def test_honest_checkpoints_verify_tail_and_export(d: Deployment, person: Path) -> None:
    bot = CheckpointingServe(d.approver_config, APPROVE_ALL, d.tmp / "bot.jsonl", "1")
    d.serves.append(bot)
    stored = d.store("shop/prod/db", {"password": SECRET})
    assert stored.returncode == 0, outputs(stored)
    signed = bot.wait_for("signed")
    assert signed[0]["event"] == "checkpoint"
    assert signed[0]["seq"] > 1

    done = audit(d, person, "checkpoint")
    assert done.returncode == 0, outputs(done)
    assert "signed and filed" in done.stdout
    # Remembered beside the key file, where `approver serve` with that key keeps it: one
    # memory for both signers (not the config directory's, which `audit verify` keeps).
    kept = json.loads((person / "approvers" / f"{d.vault}.audit" / f"{d.vault}.json").read_text())
    assert f"checkpoint at event {kept['seq']} ({kept['hash']})" in done.stdout
    assert not (person / "audit").exists()

    done = audit(d, person, "verify")
    assert done.returncode == 0, outputs(done)
    assert done.stdout.startswith("valid: ")
    assert "checkpoints: " in done.stdout
    assert " verified; the latest at event" in done.stdout

    # Tail: from now on, one readable line an event with its severity.
    tail = subprocess.Popen(
        [*SEALBOX, "audit", "tail", "--action", "access.*"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env_for(person), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert tail.stderr is not None
        assert "Following the audit log" in tail.stderr.readline()
        read = d.cli("read", REF, "--purpose", "audit tail test")
        assert read.returncode == 0, outputs(read)
        assert read.stdout == SECRET + "\n"
        assert tail.stdout is not None
        got = [tail.stdout.readline() for _ in range(2)]
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(20)
        for pipe in (tail.stdout, tail.stderr):
            if pipe is not None:
                pipe.close()
    assert tail.returncode == 0
    assert "INFO" in got[0]
    assert "access.requested" in got[0]
    assert "access." in got[1]
    assert SECRET not in "".join(got)

    out = d.tmp / "log.jsonl"
    done = audit(d, person, "export", "--out", str(out))
    assert done.returncode == 0, outputs(done)
    assert out.stat().st_mode & 0o777 == 0o600
    header = json.loads(lines(out)[0])
    assert header["format"] == "sealbox.audit-export.v1"
    assert header["complete"] is True
    assert len(header["checkpoints"]) >= 2
    assert SECRET not in out.read_text()
    done = audit(d, person, "verify", str(out), "--against", str(out))
    assert done.returncode == 0, outputs(done)
    assert "no fork" in done.stdout

    csv_out = d.tmp / "log.csv"
    done = audit(d, person, "export", "--format", "csv", "--severity", "notice", "--out",
                 str(csv_out))  # fmt: skip
    assert done.returncode == 0, outputs(done)
    assert lines(csv_out)[0] == ("seq,at,actor,action,severity,client_id,item_id,source_ip,"
                                 "detail,prev_hash,hash")  # fmt: skip
    assert all(",info," not in row for row in lines(csv_out)[1:])

    # A filtered JSON-lines export is no chain: verify says so (usage), not "valid".
    filtered = d.tmp / "filtered.jsonl"
    assert (
        audit(d, person, "export", "--action", "access.*", "--out", str(filtered)).returncode == 0
    )
    done = audit(d, person, "verify", str(filtered))
    assert done.returncode == 2, outputs(done)
    assert "filtered" in done.stderr


def test_tampered_exports_fail_naming_the_seq(d: Deployment, person: Path) -> None:
    out = d.tmp / "base.jsonl"
    assert audit(d, person, "export", "--out", str(out)).returncode == 0
    rows = lines(out)
    header, events = rows[0], rows[1:]
    checkpoints = json.loads(header)["checkpoints"]
    assert checkpoints
    n = len(events)
    assert n > 8
    # A third party: its own config directory (nothing remembered), the pinned fingerprint.
    auditor = d.tmp / "auditor"
    pin = ("--vault", d.keys.fingerprint)

    def verify(path: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return d.run_as(auditor, "audit", "verify", str(path), *pin, *more)

    assert verify(out).returncode == 0

    def changed(row: str, **edit: Any) -> str:
        return json.dumps(json.loads(row) | edit)

    cases = {
        "deleted": ([header, *events[:4], *events[5:]], "INVALID: event 5 is missing"),
        "changed": ([header, *events[:4], changed(events[4], actor="apv_nobody"),
                     *events[5:]], "INVALID: event 5 was changed"),
        "reordered": ([header, *events[:4], events[5], events[4], *events[6:]],
                      "INVALID: event 5 is missing"),
        "inserted": ([header, *events[:4], changed(events[4], seq=5, action="x"),
                      *events[4:]], "INVALID: event 5 was changed"),
        "rewritten": ([header, *rehash_from([*events[:4], changed(events[4], actor="apv_forged"),
                                             *events[5:]], 4)], "differs from the checkpoint"),
    }  # fmt: skip
    first_cp = min(json.loads(row)["detail"]["seq"] for row in events
                   if json.loads(row)["action"] == "audit.checkpoint")  # fmt: skip
    cases["truncated"] = ([header, *events[: first_cp - 1]],
                          f"INVALID: event {first_cp} is missing")  # fmt: skip
    for name, (tampered, message) in cases.items():
        done = verify(write(d.tmp / f"{name}.jsonl", tampered))
        assert done.returncode == 5, (name, outputs(done))
        assert message in done.stderr, (name, done.stderr)

    # A fork: after the last checkpoint, another history (consistent on its own).
    last = n - 1
    fork = write(d.tmp / "fork.jsonl",
                 [header, *rehash_from([*events[:last], changed(events[last], actor="apv_x")],
                                       last)])  # fmt: skip
    done = d.run_as(d.tmp / "auditor-2", "audit", "verify", str(fork), *pin)
    assert done.returncode == 0, outputs(done)  # alone, nothing contradicts it
    done = d.run_as(d.tmp / "auditor-3", "audit", "verify", str(out), *pin, "--against", str(fork))
    assert done.returncode == 5, outputs(done)
    assert f"INVALID: event {n} differs between" in done.stderr
    # The auditor that verified the original remembers its head: the fork fails alone too.
    done = verify(fork)
    assert done.returncode == 5, outputs(done)
    assert f"event {n} differs from the head verified before" in done.stderr
    # Another vault's fingerprint pinned: the directory does not verify.
    done = d.run_as(auditor, "audit", "verify", str(out), "--vault", "sha256:" + "A" * 43)
    assert done.returncode == 5, outputs(done)
    assert "pinned vault fingerprint" in done.stderr
    # Usage: no such file, not an export, a bad --head.
    assert verify(d.tmp / "missing.jsonl").returncode == 2
    assert verify(write(d.tmp / "junk.jsonl", ["{oops"])).returncode == 2
    assert verify(out, "--head", "nope").returncode == 2


def _relay_log(tamper: Any) -> Any:
    """A proxy hook that rewrites the events of every audit page with ``tamper``."""

    def hook(method: str, path: str, status: int, body: Any) -> Any:
        if method == "GET" and path.endswith("/audit") and isinstance(body, dict):
            body["events"] = tamper(body["events"])
        return body

    return hook


def test_a_hostile_relay_is_caught(d: Deployment, person: Path) -> None:
    proxy = HostileProxy(d.url)
    key = person / "approvers" / f"{d.vault}.json"
    original = json.loads(key.read_text())["server"]
    _point_at(key, proxy.url)
    state = person / "audit"
    try:
        done = audit(d, person, "verify")
        assert done.returncode == 0, outputs(done)
        remembered = json.loads((state / f"{d.vault}.json").read_text())["seq"]
        assert (state / f"{d.vault}.json").stat().st_mode & 0o777 == 0o600

        # Truncated behind the head this CLI verified (checkpoints withheld as well).
        cut = remembered - 2
        proxy.tamper = lambda m, p, s, b: (
            {**b, "checkpoints": []} if p.endswith("/checkpoints") and m == "GET" else
            _relay_log(lambda events: [e for e in events if e["seq"] <= cut])(m, p, s, b)
        )  # fmt: skip
        done = audit(d, person, "verify")
        assert done.returncode == 5, outputs(done)
        assert f"INVALID: event {remembered} is missing" in done.stderr
        assert "verified before" in done.stderr

        # Truncated behind a checkpoint, on a device that remembers nothing.
        for file in state.iterdir():
            file.unlink()
        proxy.tamper = None
        checkpoints = json.loads(audit(d, person, "export").stdout.splitlines()[0])["checkpoints"]
        assert checkpoints
        proxy.tamper = _relay_log(lambda events: [e for e in events if e["seq"] <= 3])
        done = audit(d, person, "verify")
        assert done.returncode == 5, outputs(done)
        assert "(the log was truncated)" in done.stderr
        assert "checkpoint signed by approver" in done.stderr

        # An edited event.
        def edit(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e | {"actor": "relay"} if e["seq"] == 2 else e for e in events]

        proxy.tamper = _relay_log(edit)
        done = audit(d, person, "verify")
        assert done.returncode == 5, outputs(done)
        assert "INVALID: event 2 was changed" in done.stderr
        proxy.tamper = None
        done = audit(d, person, "verify")
        assert done.returncode == 0, outputs(done)
    finally:
        proxy.close()
        _point_at(key, original)


def test_the_automated_approver_signs_no_head_it_cannot_link(d: Deployment) -> None:
    proxy = HostileProxy(d.url)
    config, keys = d.add_approver("bot2")
    key = config / "approvers" / f"{d.vault}.json"
    _point_at(key, proxy.url)
    bot = CheckpointingServe(config, APPROVE_ALL, d.tmp / "bot2.jsonl", "0.5")
    d.serves.append(bot)
    try:
        first = bot.wait_for("signed")[0]["seq"]
        # Rounds that find only checkpoints filed since sign nothing (no ping-pong between
        # two automated approvers).
        bot.wait_for("nothing new")

        # Every event after its checkpoint served with another actor: the link holds, the
        # hashes do not.
        def rewrite(m: str, p: str, s: int, b: Any) -> Any:
            if m == "GET" and p.endswith("/audit") and isinstance(b, dict):
                b["events"] = [e | {"actor": "relay"} if e["seq"] > first else e
                               for e in b["events"]]  # fmt: skip
            return b

        def mine() -> list[int]:
            session = d.session()
            try:
                listed = session.ok("GET", "/audit/checkpoints", "listing")["checkpoints"]
            finally:
                session.close()
            return [c["seq"] for c in listed if c["approver"] == keys.record.id]

        proxy.tamper = rewrite
        time.sleep(1)  # a round signing what came before the tampering may still be under way
        before = mine()
        d.store("shop/prod/other", {"password": "x"})
        refused = bot.wait_for("refused")
        assert refused[0]["severity"] == "alert"
        assert "was changed" in refused[0]["reason"]
        assert mine() == before
        assert os.path.exists(config / "approvers" / f"{d.vault}.audit" / f"{d.vault}.json")
    finally:
        bot.stop()
        proxy.close()
