"""Checkpoints between the browser core and Python: one signs, the other verifies.

The browser approver signs checkpoints in JavaScript (``web/static/sealbox/audit.js``)
and the relay and the CLI verify them in Python, and the other way round; both
hold them against the same event hashes (``tests/vectors/sealbox/audit.json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sealbox.crypto.keys import SigningKey
from sealbox.protocol import audit as au
from sealbox.protocol import directory as dirs
from sealbox.protocol.statements import CheckpointStatement, sign_statement

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "js" / "interop" / "checkpoint.mjs"
VECTORS = ROOT / "tests" / "vectors" / "sealbox"
FLOW = json.loads((VECTORS / "flow.json").read_text())["world"]
AUDIT = json.loads((VECTORS / "audit.json").read_text())


def _node(*args: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the browser core cannot be checked")
    done = subprocess.run([node, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _directory() -> dirs.Directory:
    return dirs.verify_directory(
        FLOW["directory"]["links"], pinned=FLOW["directory"]["fingerprint"]
    )


def _events() -> list[au.AuditEvent]:
    return [au.AuditEvent.from_json(c["event"]) for c in AUDIT["chain"]]


def test_a_checkpoint_signed_in_the_browser_core_verifies_in_python() -> None:
    case = AUDIT["chain"][3]
    token = _node("sign", str(case["event"]["seq"]), case["hash"])["token"]
    statement = au.verify_checkpoint(token, _directory())
    assert statement.head == case["head"]
    assert au.verify_log(_events(), checkpoints=[statement]).checkpoints == (statement,)
    forged = _node("sign", "4", AUDIT["chain"][0]["hash"])["token"]
    with pytest.raises(au.AuditBroken, match="differs from the checkpoint") as info:
        au.verify_log(_events(), checkpoints=[au.verify_checkpoint(forged, _directory())])
    assert info.value.seq == 4


def test_a_checkpoint_signed_in_python_verifies_in_the_browser_core() -> None:
    approver = FLOW["approvers"][1]
    key = SigningKey._from_seed(bytes.fromhex(approver["sig_seed"]))
    record_id = approver["record"]["id"]

    def signed(seq: int, hash_: str) -> str:
        statement = CheckpointStatement(vault=FLOW["vault"], approver=record_id, seq=seq,
                                        head=au.head_digest(hash_), at=FLOW["now"])  # fmt: skip
        return sign_statement(statement, key, record_id)

    last = AUDIT["chain"][-1]
    assert _node("verify", signed(5, last["hash"])) == {
        "ok": True, "seq": 5, "head": {"seq": 5, "hash": last["hash"]},
    }  # fmt: skip
    assert _node("verify", signed(9, last["hash"])) == {"ok": False, "code": "audit_broken",
                                                        "seq": 9}  # fmt: skip
    assert _node("verify", signed(2, last["hash"]))["seq"] == 2
