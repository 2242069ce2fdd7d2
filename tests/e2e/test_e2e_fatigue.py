"""Against approval fatigue, end to end: `sealbox up` with low limits, the CLI on both sides.

The person's reads are denied twice in a row by the automated approver's
rules, which locks the person's client out: its next read is refused at once,
saying an approver must clear it.  `sealbox approver requesters list` shows
the lockout, `unlock` clears it, `limits` holds the client to one request a
minute (the read after the next is refused over the limit) and `--default`
drops that again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loop_support import APPROVE_ALL, Deployment, outputs

from sealbox.protocol import ids

SECRET = "fatigue-test-value-3c9e"
REF = "sealbox://shop/prod/db/password"
RULES = APPROVE_ALL.replace(
    '[[rule]]\nname = "reads"',
    '[[rule]]\nname = "no"\ndecision = "deny"\npurpose = "^no "\nreason = "not this one"\n\n'
    '[[rule]]\nname = "reads"',
)


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path, "--lockout-denials", "2", "--prompts-per-minute", "30")
    try:
        yield deployment
    finally:
        deployment.close()


def requesters(d: Deployment, *args: str) -> tuple[int, str, str]:
    done = d.run_as(d.approver_config, "approver", "requesters", *args)
    return done.returncode, done.stdout, done.stderr


def test_lockout_unlock_and_limits_from_the_command_line(d: Deployment) -> None:
    bot = d.serve(RULES)
    try:
        stored = d.store("shop/prod/db", {"password": SECRET})
        assert stored.returncode == 0, outputs(stored)
        for _ in range(2):
            denied = d.cli("read", REF, "--purpose", "no thanks")
            assert denied.returncode == 3, outputs(denied)

        locked = d.cli("read", REF, "--purpose", "a real reason")
        assert locked.returncode == 1, outputs(locked)
        assert "locked out after repeated denials" in locked.stderr
        assert "sealbox approver requesters unlock" in locked.stderr
        assert SECRET not in outputs(locked)

        rc, out, err = requesters(d, "list")
        assert rc == 0, err
        assert "The relay's limits: 30 new requests a minute and 20 waiting per client" in out
        assert "locked out after 2 denials in a row" in out
        assert f"{d.client_id}  bo@laptop (human): LOCKED OUT" in out
        assert "denials in a row: 2; in the last hour: 3 requests, 2 denied" in out
        assert "Counts are the relay's own (not signed by anyone)." in out

        rc, out, err = requesters(d, "unlock", d.client_id)
        assert rc == 0, err
        assert f"{d.client_id}  bo@laptop (human): may ask" in out
        rc, out, _ = requesters(d, "unlock", d.client_id)
        assert rc == 0
        assert out.startswith("It was not locked out: nothing changed.\n")

        rc, out, err = requesters(d, "limits", d.client_id, "--per-minute", "1")
        assert rc == 0, err
        assert "limits: 1 (its own) new requests a minute, 20 waiting" in out
        # Three requests were made within the minute: over its own limit of 1 already.
        over = d.cli("read", REF, "--purpose", "a real reason")
        assert over.returncode == 1, outputs(over)
        assert "this client made 3 requests in the last 60 seconds; it may make 1" in over.stderr

        rc, out, err = requesters(d, "limits", d.client_id, "--default")
        assert rc == 0, err
        assert "limits: 30 new requests a minute, 20 waiting" in out
        read = d.cli("read", REF, "--purpose", "a real reason")
        assert read.returncode == 0, outputs(read)
        assert read.stdout == SECRET + "\n"
    finally:
        bot.stop()


def test_bad_usage_exits_2_and_asks_nothing(d: Deployment) -> None:
    for args in (("limits", d.client_id), ("limits", d.client_id, "--default", "--pending", "3"),
                 ("limits", d.client_id, "--per-minute", "0")):  # fmt: skip
        rc, out, err = requesters(d, *args)
        assert rc == 2, out + err
    rc, _, err = requesters(d, "unlock", "cli_nobody")
    assert rc == 2
    assert "CLIENT is a client's id" in err
    nobody = ids.new_id(ids.CLIENT)
    rc, _, err = requesters(d, "unlock", nobody)
    assert rc == 1
    assert f"no client {nobody}" in err
