"""Canaries and frozen projects end to end: `sealbox up`, `sealbox approver serve`, the CLI.

A person stores a canary with `sealbox store --type canary`; a machine (a
provisioned identity) reads it.  The automated approver releases it by its
`canary = true` rule: the machine gets the value, the relay writes
`canary.read` (critical) and freezes the project, so the machine's next read
is refused (and the person's too) until `sealbox approver unfreeze`.  The
approver raises its own alarm too: a critical log line and its `--on-canary`
command, run with the facts and never the value.

Against a hostile relay that hides the canary (no event, no freeze: a relay
process whose canary handling is cut out), the approver's own alarm still
fires, because the type comes from the manifest the approver verified.

Freezing by hand: `sealbox approver freeze shop --reason …` refuses every
read in the project at once, `frozen` lists it, `unfreeze` lifts it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import e2e_support
import pytest
from loop_support import APPROVE_ALL, SEALBOX, Deployment, ServeProcess, outputs

BAIT = "AKIA-canary-bait-9d41f0"
SECRET = "shop-db-password-77e1"
CANARY_REF = "sealbox://shop/prod/aws-root/key"
DB_REF = "sealbox://shop/prod/db/password"
RULES = (
    APPROVE_ALL
    + """
[[rule]]
name = "canaries are released"
decision = "approve"
canary = true
items = ["*/*/aws-root", "*/*/stripe-live"]
"""
)
# Writes the SEALBOX_CANARY_* variables it was given to the file named by its argument.
ALARM = (
    "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
    "if k.startswith('SEALBOX_CANARY_')}, open(sys.argv[1], 'w'))"
)
# A relay whose canary handling is cut out: it still refuses releases in frozen
# projects, but never writes canary.read nor freezes anything.
HOSTILE_RELAY = """
import sys

from sealbox.server.services import freeze


async def hide_canaries(conn, *, vault, row, released, approver, now):
    await freeze.refuse_frozen(conn, vault, [entry.path for entry in row.access.items])


freeze.hold_release = hide_canaries
from sealbox.cli.main import main

sys.exit(main(sys.argv[1:]))
"""


def _start(tmp: Path, *, hostile: bool) -> Deployment:
    if not hostile:
        return Deployment(tmp)
    script = tmp / "hostile_relay.py"
    script.write_text(HOSTILE_RELAY)
    honest = e2e_support.SEALBOX
    # Only the relay is started from the hostile script; every other party is the real CLI.
    e2e_support.SEALBOX = [sys.executable, str(script)]
    try:
        return Deployment(tmp)
    finally:
        e2e_support.SEALBOX = honest


class World:
    def __init__(self, tmp: Path, *, hostile: bool = False) -> None:
        self.tmp = tmp
        self.d = _start(tmp, hostile=hostile)
        self.alarm = tmp / "alarm.json"
        command = shlex.join([sys.executable, "-c", ALARM, str(self.alarm)])
        self.bot: ServeProcess = self.d.serve(RULES, args=["--on-canary", command])
        bait = tmp / "bait"
        bait.write_text(BAIT)
        stored = self.d.cli("store", "sealbox://shop/prod/aws-root", "--type", "canary",
                            "--field", f"key=@{bait}", "--purpose", "plant a canary")  # fmt: skip
        assert stored.returncode == 0, outputs(stored)
        assert stored.stdout.startswith("Stored canary shop/prod/aws-root version 1"), stored
        stored = self.d.store("shop/prod/db", {"password": SECRET})
        assert stored.returncode == 0, outputs(stored)
        self.identity = tmp / "api-identity"
        made = self.d.approver_cli("machine", "provision", "--name", "api", "--grant",
                                   "shop/*/*", "--out", str(self.identity))  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.machine = json.loads((self.identity / "identity.json").read_text())["client"]["id"]

    def machine_read(self, ref: str) -> subprocess.CompletedProcess[str]:
        return self.machine_cli("read", ref, "--purpose", "nightly job")

    def machine_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        home = self.tmp / "machine-home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        env.update({"HOME": str(home), "SEALBOX_CONFIG_DIR": str(home / ".config"),
                    "SEALBOX_RUNTIME_DIR": str(home / "run"),
                    "SEALBOX_IDENTITY": str(self.identity)})  # fmt: skip
        return subprocess.run([*SEALBOX, *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL)  # fmt: skip

    def audit(self, action: str) -> list[dict[str, Any]]:
        session = self.d.session()
        try:
            return list(session.ok("GET", f"/audit?action={action}", "reading the audit")["events"])
        finally:
            session.close()

    def approver(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.d.approver_cli("approver", *args)

    def close(self) -> None:
        self.d.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _refused_as_frozen(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 1, outputs(done)
    assert "project shop is frozen" in done.stderr
    assert "sealbox approver unfreeze shop" in done.stderr
    assert BAIT not in done.stdout
    assert SECRET not in done.stdout


def test_a_canary_read_is_released_alerts_and_freezes_until_unfrozen(world: World) -> None:
    w = world
    # The machine's listing gives no canary away: to a client every item is a secret.
    listed = w.machine_cli("ls", "--json")
    assert listed.returncode == 0, outputs(listed)
    types = {i["path"]: i["type"] for i in json.loads(listed.stdout)}
    assert types == {"shop/prod/aws-root": "secret", "shop/prod/db": "secret"}
    # Planting it (the person's store, verified after) tripped nothing.
    assert w.audit("canary.inspected") == []

    read = w.machine_read(CANARY_REF)
    assert read.returncode == 0, outputs(read)
    assert read.stdout == BAIT + "\n"  # the reader keeps going

    # Looking at the canary's manifest and asking for it are alarms of their own.
    [inspected] = w.audit("canary.inspected")
    assert inspected["severity"] == "critical"
    assert inspected["client_id"] == w.machine
    assert inspected["detail"]["path"] == "shop/prod/aws-root"
    [requested] = w.audit("canary.requested")
    assert requested["severity"] == "critical"
    assert requested["client_id"] == w.machine

    # The relay's alarm: canary.read (critical), and the project frozen.
    [event] = w.audit("canary.read")
    assert event["severity"] == "critical"
    assert event["client_id"] == w.machine
    assert event["detail"]["path"] == "shop/prod/aws-root"
    [froze] = w.audit("project.frozen")
    assert froze["detail"]["cause"] == "canary"
    assert froze["detail"]["request"] == event["detail"]["request"]
    listed = w.approver("frozen")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("shop  FROZEN since ")
    assert f"a canary was released (request {event['detail']['request']})" in listed.stdout

    # The approver's own alarm: a critical log line and the --on-canary command.
    [alarm] = w.bot.wait_for("canary released")
    assert alarm["severity"] == "critical"
    assert alarm["canary"] == ["shop/prod/aws-root"]
    assert alarm["client"] == w.machine
    w.bot.wait_for("canary command")
    told = json.loads(w.alarm.read_text())
    assert told["SEALBOX_CANARY_PATHS"] == "shop/prod/aws-root"
    assert told["SEALBOX_CANARY_CLIENT"] == w.machine
    assert told["SEALBOX_CANARY_CLIENT_NAME"] == "api"
    assert told["SEALBOX_CANARY_REQUEST"] == event["detail"]["request"]
    assert told["SEALBOX_CANARY_RULE"] == "canaries are released"

    # Frozen: the machine's next read in the project is refused, and the person's too.
    _refused_as_frozen(w.machine_read(DB_REF))
    _refused_as_frozen(w.d.cli("read", DB_REF))
    refused = w.audit("request.refused")
    assert any(e["detail"]["error"] == "project_frozen" for e in refused)

    unfrozen = w.approver("unfreeze", "shop")
    assert unfrozen.returncode == 0, unfrozen.stderr
    assert unfrozen.stdout == "Unfroze shop: requests for its items are answered again.\n"
    assert w.approver("frozen").stdout == "No project is frozen.\n"
    again = w.machine_read(DB_REF)
    assert again.returncode == 0, outputs(again)
    assert again.stdout == SECRET + "\n"
    [lifted] = w.audit("project.unfrozen")
    assert lifted["detail"]["cause"] == "canary"

    # No value anywhere it should not be: the audit log, the approver's log.
    session = w.d.session()
    try:
        everything = json.dumps(session.ok("GET", "/audit?limit=1000", "reading the audit"))
    finally:
        session.close()
    for text in (everything, w.bot.log.read_text(), w.alarm.read_text()):
        assert BAIT not in text
        assert SECRET not in text


def test_freezing_by_hand(world: World) -> None:
    w = world
    froze = w.approver("freeze", "shop", "--reason", "laptop stolen")
    assert froze.returncode == 0, froze.stderr
    assert "Froze shop: every request for its items is refused" in froze.stdout
    again = w.approver("freeze", "shop")
    assert again.stdout.startswith("shop was frozen already: nothing changed.\n")
    listed = w.approver("frozen").stdout
    assert listed.startswith("shop  FROZEN since ")
    assert "laptop stolen" in listed
    _refused_as_frozen(w.d.cli("read", DB_REF))
    assert "laptop stolen" not in w.d.cli("read", DB_REF).stderr  # clients are not told why
    [event] = w.audit("project.frozen")
    assert event["severity"] == "alert"
    assert event["detail"] == {"project": "shop", "cause": "approver", "reason": "laptop stolen"}
    assert w.approver("unfreeze", "shop").returncode == 0
    assert w.approver("unfreeze", "shop").stdout == "shop was not frozen: nothing changed.\n"
    read = w.d.cli("read", DB_REF)
    assert read.returncode == 0, outputs(read)

    bad = w.approver("freeze", "shop/prod")
    assert bad.returncode == 2
    assert "PROJECT is a project's name" in bad.stderr


def test_a_hostile_relay_hides_the_canary_but_the_approver_still_alarms(tmp_path: Path) -> None:
    w = World(tmp_path, hostile=True)
    try:
        read = w.machine_read(CANARY_REF)
        assert read.returncode == 0, outputs(read)
        assert read.stdout == BAIT + "\n"
        # The relay kept quiet: no canary.read, nothing frozen, the next read goes through.
        assert w.audit("canary.read") == []
        assert w.approver("frozen").stdout == "No project is frozen.\n"
        assert w.machine_read(DB_REF).returncode == 0
        # The approver knew from the signed manifest, and alarmed on its own.
        [alarm] = w.bot.wait_for("canary released")
        assert alarm["severity"] == "critical"
        w.bot.wait_for("canary command")
        told = json.loads(w.alarm.read_text())
        assert told["SEALBOX_CANARY_PATHS"] == "shop/prod/aws-root"
        assert told["SEALBOX_CANARY_CLIENT"] == w.machine
        assert BAIT not in w.alarm.read_text() + w.bot.log.read_text()
    finally:
        w.close()


def test_an_agent_plants_a_canary_over_mcp_and_never_sees_its_value(world: World) -> None:
    import asyncio

    from loop_support import env_for
    from mcp_support import mcp_session

    w = world
    got: dict[str, Any] = {}

    async def session() -> None:
        async with mcp_session(env_for(w.d.client_config), w.tmp / "mcp-err") as mcp:
            planted = await mcp.call("create_canary", path="shop/prod/stripe-live",
                                     purpose="plant a canary for the shop")  # fmt: skip
            assert not planted.error, planted.text
            got.update(planted.data)
            bad = await mcp.call("create_canary", path="../etc", purpose="x")
            assert bad.error

            # The agent's own listing says "secret", as every client's does.
            listed = await mcp.call("list_items")
            assert not listed.error, listed.text
            [entry] = [i for i in listed.data["items"] if i["path"] == "shop/prod/stripe-live"]
            got["listed_type"] = entry["type"]

    asyncio.run(session())
    assert got.pop("listed_type") == "secret"
    # Planting it (a store request, then checking the stored version) tripped nothing.
    assert w.audit("canary.inspected") == []
    assert got["type"] == "canary"
    assert got["reference"] == "sealbox://shop/prod/stripe-live/value"
    assert set(got) == {"path", "version", "item", "type", "request", "reference"}
    # The machine that reads it gets a random value it has never been told, and trips it.
    read = w.machine_read("sealbox://shop/prod/stripe-live/value")
    assert read.returncode == 0, outputs(read)
    value = read.stdout.strip()
    assert value.startswith("sbx-")
    assert len(value) > 30
    assert value not in json.dumps(got)
    assert value not in (w.tmp / "mcp-err").read_text()
    [event] = w.audit("canary.read")
    assert event["detail"]["path"] == "shop/prod/stripe-live"
    assert "shop  FROZEN" in w.approver("frozen").stdout
