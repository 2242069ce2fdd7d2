"""The release loop with real processes: `sealbox up`, `sealbox approver serve`, the CLI.

store → read → run → inject; any-of-N with two approvers; a 2-of-3 quorum;
field selection; denial; expiry; cancel; the local cache agent's hit and
flush.  Every secret value is checked to appear only where it belongs.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from e2e_support import SEALBOX
from loop_support import APPROVE_ALL, Deployment, ServeProcess, env_for, outputs

PASSWORD = "s3cr3t-Pa55word/with+chars&more"
USER = "app_reader"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("loop"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def bot(d: Deployment) -> Iterator[ServeProcess]:
    rules = APPROVE_ALL.replace(
        '[[rule]]\nname = "reads"',
        '[[rule]]\nname = "freeze"\ndecision = "deny"\npurpose = "^during the freeze"\n'
        'reason = "no releases during the freeze"\n\n[[rule]]\nname = "manual"\n'
        'decision = "approve"\nitems = ["manual/*/*"]\nrate = "1/day"\n\n'
        '[[rule]]\nname = "reads"\nitems = ["shop/*/*"]',
    )
    serve = d.serve(rules)
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def stored(d: Deployment, bot: ServeProcess) -> str:
    done = d.store("shop/prod/db", {"password": PASSWORD, "user": USER})
    assert done.returncode == 0, outputs(done)
    assert "version 1" in done.stdout
    assert PASSWORD not in outputs(done)
    return "shop/prod/db"


def test_store_read_get_ls_history(d: Deployment, stored: str, bot: ServeProcess) -> None:
    read = d.cli("read", f"sealbox://{stored}/password")
    assert read.returncode == 0, outputs(read)
    assert read.stdout == PASSWORD + "\n"
    assert "Waiting for approval" in read.stderr
    assert PASSWORD not in read.stderr

    plain = d.cli("read", "-n", f"sealbox://{stored}/user")
    assert plain.stdout == USER

    # Field selection: only what was asked for is released (and shown to the approver).
    got = d.cli("get", f"sealbox://{stored}", "--fields", "user", "--json")
    assert got.returncode == 0, outputs(got)
    assert json.loads(got.stdout) == {"path": stored, "version": 1, "fields": {"user": USER}}
    asked = [e for e in bot.decisions() if e.get("purpose") == f"get {stored}"]
    assert asked[-1]["items"] == [{"path": stored, "version": 1, "fields": ["user"]}]

    everything = d.cli("get", stored, "--json")
    assert json.loads(everything.stdout)["fields"] == {"password": PASSWORD, "user": USER}

    # A reference without a field names one only if the item has one field, and a
    # field that does not exist is named; both are refused before anything is asked,
    # so no approver spends an approval on them.
    decided = len(bot.decisions())
    vague = d.cli("read", f"sealbox://{stored}")
    assert vague.returncode == 2
    assert "has 2 fields (password, user); name the one you want" in vague.stderr
    assert f"sealbox://{stored}/password" in vague.stderr
    assert PASSWORD not in outputs(vague)
    typo = d.cli("read", f"sealbox://{stored}/pasword")
    assert typo.returncode == 2
    assert "has no field 'pasword'; its fields are: password, user" in typo.stderr
    assert "bug in sealbox" not in typo.stderr
    assert "conforming" not in typo.stderr
    mistyped = d.cli("history", f"sealbx://{stored}")
    assert mistyped.returncode == 2
    assert f"Did you mean sealbox://{stored}?" in mistyped.stderr
    assert "conforming" not in mistyped.stderr
    missing = d.cli("history", "shop/prod/nothing-here")
    assert missing.returncode == 1
    assert "there is no item at shop/prod/nothing-here" in missing.stderr
    assert "sealbox ls" in missing.stderr
    assert "bug in sealbox" not in missing.stderr
    time.sleep(0.5)
    assert len(bot.decisions()) == decided

    listed = d.cli("ls", "--json")
    assert {"path": stored, "latest_version": 1}.items() <= json.loads(listed.stdout)[0].items()
    assert PASSWORD not in listed.stdout

    # A second version; history verifies every manifest.
    again = d.store(stored, {"password": PASSWORD + "-2", "user": USER})
    assert again.returncode == 0, outputs(again)
    history = d.cli("history", stored, "--json")
    versions = json.loads(history.stdout)
    assert [v["version"] for v in versions] == [1, 2]
    assert all(v["signed_by"] == d.keys.record.id for v in versions)
    latest = d.cli("read", f"sealbox://{stored}/password")
    assert latest.stdout == PASSWORD + "-2\n"

    # The approver's decision log names paths and fields, never values.
    log = (bot.log).read_text()
    assert PASSWORD not in log
    assert USER not in log


def test_values_from_argv_are_refused(d: Deployment, bot: ServeProcess) -> None:
    done = d.cli("store", "shop/prod/x", "--field", "token=hunter2")
    assert done.returncode == 2
    assert "command line" in done.stderr
    listed = d.cli("ls", "shop/prod/x", "--json")
    assert json.loads(listed.stdout) == []


def test_run_masks_values_and_their_encodings(d: Deployment, stored: str, tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(f"# app settings\nDB_USER=sealbox://{stored}/user\nPLAIN=hello\n")
    script = (
        'echo "raw=$DB_PASSWORD"; echo "user=$DB_USER"; echo "plain=$PLAIN";'
        'printf %s "$DB_PASSWORD" | base64 -w0; echo;'
        'printf %s "$DB_PASSWORD" | od -An -tx1 | tr -d " \\n"; echo;'
        'python3 -c "import os,urllib.parse as u;'
        "print(u.quote(os.environ['DB_PASSWORD'],safe=''))\";"
        'printf "u:%s" "$DB_PASSWORD" | base64 -w0; echo;'
        'echo "to stderr $DB_PASSWORD" >&2; exit 7'
    )
    done = d.cli("run", "--env-file", str(env_file), "--env",
                 f"DB_PASSWORD=sealbox://{stored}/password", "--", "sh", "-c", script)  # fmt: skip
    assert done.returncode == 7, outputs(done)  # the command's own exit status
    value = PASSWORD + "-2"
    everything = outputs(done)
    for form in (value, base64.b64encode(value.encode()).decode(), value.encode().hex(),
                 quote(value, safe="")):  # fmt: skip
        assert form not in everything
    # base64 of "u:" + value: the value's part of the encoding is masked.
    assert base64.b64encode(b"u:" + value.encode()).decode() not in everything
    assert "raw=<concealed by sealbox>" in done.stdout
    assert f"user={USER}" not in done.stdout  # a released value, masked too
    assert "plain=hello" in done.stdout
    assert "to stderr <concealed by sealbox>" in done.stderr
    # One approval for the whole task: both references in one request.
    assert "2 secret(s)" in done.stderr

    unmasked = d.cli("run", "--no-masking", "--env", f"V=sealbox://{stored}/user", "--",
                     "sh", "-c", 'echo "$V"')  # fmt: skip
    assert unmasked.stdout.strip() == USER


def test_inject_writes_0600(d: Deployment, stored: str, tmp_path: Path) -> None:
    template = tmp_path / "config.tmpl"
    template.write_text(
        f"user: {{{{ sealbox://{stored}/user }}}}\n"
        f"password: {{{{sealbox://{stored}/password}}}}\nother: {{{{ x }}}}\n"
    )
    out = tmp_path / "config.yml"
    out.write_text("old")
    out.chmod(0o644)
    done = d.cli("inject", "-i", str(template), "-o", str(out))
    assert done.returncode == 0, outputs(done)
    assert out.read_text() == f"user: {USER}\npassword: {PASSWORD}-2\nother: {{{{ x }}}}\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert PASSWORD not in outputs(done)


def test_denial_exits_3_with_the_signed_reason(d: Deployment, stored: str) -> None:
    done = d.cli("read", f"sealbox://{stored}/password", "--purpose", "during the freeze, please")
    assert done.returncode == 3, outputs(done)
    assert "no releases during the freeze" in done.stderr
    assert "signed by approver" in done.stderr
    assert PASSWORD not in outputs(done)


def test_any_of_n_second_approver_releases(d: Deployment, bot: ServeProcess) -> None:
    config, _ = d.add_approver("ci-approver")
    # Items stored now are sealed to both approvers (the default policy: every approver,
    # 1-of-N).  The first approver's rules leave solo/* for a person; the second releases.
    done = d.store("solo/prod/token", {"token": "tok-any-of-n-123"})
    assert done.returncode == 0, outputs(done)
    history = json.loads(d.cli("history", "solo/prod/token", "--json").stdout)
    assert len(history[0]["holders"]) == 2
    assert history[0]["threshold"] == 1
    second = d.serve(APPROVE_ALL, config=config)
    try:
        read = d.cli("read", "sealbox://solo/prod/token/token")
        assert read.returncode == 0, outputs(read)
        assert read.stdout == "tok-any-of-n-123\n"
        assert second.wait_for("approved")[-1]["items"][0]["path"] == "solo/prod/token"
        assert bot.wait_for("left for a person")
    finally:
        second.stop()


def test_two_of_three_quorum(d: Deployment, bot: ServeProcess, tmp_path: Path) -> None:
    third_config, third = d.add_approver("quorum-3")
    second_config = d.tmp / "approver-ci-approver"
    second = json.loads((second_config / "approvers" / f"{d.vault}.json").read_text())
    ids = [d.keys.record.id, second["approver"]["id"], third.record.id]
    policy = d.approver_cli("approver", "policy", "vault/*/*", "--approvers", ",".join(ids),
                            "--threshold", "2")  # fmt: skip
    assert policy.returncode == 0, outputs(policy)
    stored = d.store("vault/prod/root", {"key": "root-key-2-of-3"})
    assert stored.returncode == 0, outputs(stored)
    history = json.loads(d.cli("history", "vault/prod/root", "--json").stdout)
    assert history[0]["threshold"] == 2
    assert len(history[0]["holders"]) == 3

    rules = '[[rule]]\nname = "quorum"\ndecision = "approve"\nitems = ["vault/*/*"]\n'
    one = d.serve(rules, config=third_config)
    reader = subprocess.Popen(
        [*SEALBOX, "read", "sealbox://vault/prod/root/key"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env_for(d.client_config), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        one.wait_for("approved")
        time.sleep(1.0)
        assert reader.poll() is None  # one release of two: still waiting
        two = d.serve(rules, config=second_config)
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert out == b"root-key-2-of-3\n"
        assert b"root-key" not in err
        two.wait_for("approved")
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_unanswered_request_expires_and_cancel(d: Deployment, bot: ServeProcess) -> None:
    policy = d.approver_cli("approver", "policy", "manual/*/*", "--approvers", d.keys.record.id,
                            "--expiry", "10")  # fmt: skip
    assert policy.returncode == 0, outputs(policy)
    # Stored directly through the SDK-free CLI path needs an approval: the rule "stores" gives it.
    assert d.store("manual/prod/key", {"k": "manual-value-1"}).returncode == 0
    # The "manual" rule approves once a day: its rate is spent on the first request ...
    first = d.cli("read", "sealbox://manual/prod/key/k")
    assert first.returncode == 0, outputs(first)
    assert first.stdout == "manual-value-1\n"
    # ... so the next one is left for a person, and expires after the policy's 10 s.
    started = time.monotonic()
    expired = d.cli("read", "sealbox://manual/prod/key/k", timeout=60)
    assert expired.returncode == 4, outputs(expired)
    assert "expired" in expired.stderr
    assert time.monotonic() - started >= 9
    assert "manual-value" not in outputs(expired)
    assert bot.wait_for("left for a person")

    # Ctrl-C while waiting withdraws the request: exit 130, and it is cancelled at the relay.
    reader = subprocess.Popen(
        [*SEALBOX, "read", "sealbox://manual/prod/key/k"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env_for(d.client_config), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    session = d.session()
    try:
        while not [r for r in session.ok("GET", "/approvals", "listing")["requests"]
                   if r["kind"] == "access"]:  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.1)
        reader.send_signal(signal.SIGINT)
        _, err = reader.communicate(timeout=30)
        assert reader.returncode == 130, err
        assert b"withdrawn" in err
        events = session.ok("GET", "/audit?action=access.cancelled", "audit")["events"]
        assert events
        assert events[-1]["client_id"] == d.client_id
        assert not [r for r in session.ok("GET", "/approvals", "listing")["requests"]
                    if r["kind"] == "access"]  # fmt: skip
    finally:
        session.close()
        if reader.poll() is None:
            reader.kill()


def test_cache_hit_and_flush(d: Deployment, stored: str, bot: ServeProcess) -> None:
    policy = d.approver_cli("approver", "policy", "shop/*/*", "--approvers", d.keys.record.id,
                            "--max-cache", "600")  # fmt: skip
    assert policy.returncode == 0, outputs(policy)
    start = d.cli("cache", "start")
    assert start.returncode == 0, outputs(start)
    socket_file = d.client_config / "run" / "cache-default.sock"
    assert stat.S_IMODE(socket_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket_file.parent.stat().st_mode) == 0o700
    try:
        approved = len(bot.wait_for("approved"))
        first = d.cli("read", "--cache", "600", f"sealbox://{stored}/user")
        assert first.stdout == USER + "\n"
        bot.wait_for("approved", approved + 1)
        hit = d.cli("read", "--cache", "600", f"sealbox://{stored}/user")
        assert hit.returncode == 0
        assert hit.stdout == USER + "\n"
        assert "Waiting for approval" not in hit.stderr  # no request, no approval
        time.sleep(0.5)
        assert len(bot.wait_for("approved")) == approved + 1
        status = d.cli("cache", "status")
        assert f"sealbox://{stored}/user" in status.stdout
        assert USER not in status.stdout

        # The hit reaches the relay's audit (the agent reports in batches).
        session = d.session()
        try:
            deadline = time.monotonic() + 20
            while not session.ok("GET", "/audit?action=access.cache_hit", "audit")["events"]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            session.close()

        flushed = d.cli("cache", "flush")
        assert "Flushed 1 value" in flushed.stdout
        after = d.cli("read", "--cache", "600", f"sealbox://{stored}/user")
        assert "Waiting for approval" in after.stderr
        bot.wait_for("approved", approved + 2)
    finally:
        stop = d.cli("cache", "stop")
        assert stop.returncode == 0, outputs(stop)
    assert not socket_file.exists()


def test_not_logged_in_and_bad_reference(d: Deployment, tmp_path: Path) -> None:
    nobody = d.run_as(tmp_path / "nobody", "read", "sealbox://shop/prod/db/password")
    assert nobody.returncode == 6
    assert "sealbox login" in nobody.stderr
    bad = d.cli("read", "sealbox://only/two")
    assert bad.returncode == 2
    assert os.environ.get("SEALBOX_PROFILE") is None


def test_remove_approver_reseals_or_refuses(d: Deployment) -> None:
    directory = d.session()
    try:
        members = directory.directory(fresh=True).approvers
    finally:
        directory.close()
    second = next(a for a in members.values() if a.name == "ci-approver")
    third = next(a for a in members.values() if a.name == "quorum-3")

    # solo/prod/token is 1-of-2 (first, second): the first approver re-seals it for itself.
    # vault/prod/root is 2-of-3: without the second, two holders remain; still readable.
    removed = d.approver_cli("approver", "remove", second.id, "--yes")
    assert removed.returncode == 0, outputs(removed)
    assert "solo/prod/token v1 (1-of-N): reseal" in removed.stdout
    assert "vault/prod/root v1 (2-of-N): warn" in removed.stdout
    assert "re-sealed solo/prod/token as version 2 for 1 holder(s)" in removed.stdout
    history = json.loads(d.cli("history", "solo/prod/token", "--json").stdout)
    assert [v["holders"] for v in history] == [[*sorted([d.keys.record.id, second.id])],
                                              [d.keys.record.id]]  # fmt: skip
    listed = d.approver_cli("approver", "list")
    assert second.id not in listed.stdout
    assert "tok-any-of-n" not in outputs(removed)

    # The re-sealed version opens: an approver that holds it releases it.
    temporary = d.serve(APPROVE_ALL)
    try:
        read = d.cli("read", "sealbox://solo/prod/token/token")
        assert read.stdout == "tok-any-of-n-123\n", outputs(read)
    finally:
        temporary.stop()

    # Removing the third would leave vault/prod/root with 1 holder of the 2 it needs: refused.
    refused = d.approver_cli("approver", "remove", third.id, "--yes")
    assert refused.returncode == 1
    assert "fewer holders than their threshold" in refused.stderr
    assert third.id in d.approver_cli("approver", "list").stdout
