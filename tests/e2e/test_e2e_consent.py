"""Per-action consent end to end, with real processes: a real relay, `sealbox consent request`,
the terminal approver (in a pseudo-terminal) and the automated approver, then `sealbox consent
verify` offline and an independent JOSE library on the consent token.

The terminal shows the action, the verified details (as the client signed them, escape
sequences made harmless) and who asked; what only the relay says is shown apart.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loop_support import PASSPHRASE, Deployment, env_for
from test_e2e_terminal import CONFIRM, Started, request_block

from sealbox.crypto.encoding import b64u_encode
from sealbox.protocol import directory as dirs
from sealbox.protocol.consent import format_head

CONSENT = "Consent? Type 'yes' to consent, 'no' to refuse, Enter to skip: "
PLAN = {"service": "api", "image": "api:1.4.2", "replicas": 3, "note": "evil\x1b[2Jnote"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(tmp_path_factory.mktemp("consent"))
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def started() -> Iterator[Started]:
    procs = Started()
    try:
        yield procs
    finally:
        procs.end()


def _plan(tmp: Path, plan: dict[str, object] = PLAN, name: str = "plan.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(plan))
    return path


def _verify(
    d: Deployment, grant: Path | str, plan: Path, *more: str, **kw: str
) -> subprocess.CompletedProcess[str]:
    args = {"action": "deploy", "client": d.client_id, "vault": d.keys.fingerprint,
            "details": f"@{plan}", **kw}  # fmt: skip
    return d.run_as(
        d.tmp / "third-party", "consent", "verify", str(grant), "--action", args["action"],
        "--details", args["details"], "--client", args["client"], "--vault", args["vault"],
        *more,
    )  # fmt: skip


def test_terminal_consent_then_offline_verify(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    plan = _plan(tmp_path)
    grant = tmp_path / "grant.json"
    asker = started.person(
        d, "consent", "request", "--action", "deploy", "--details", f"@{plan}",
        "--purpose", "release 1.4.2", "--ttl", "120", "--out", str(grant),
    )  # fmt: skip
    approve, _ = started.approve(d)
    approve.expect("=== CONSENT REQUEST ")
    approve.expect(CONSENT)
    rid, verified, reported = request_block(approve, "CONSENT REQUEST")
    assert f"  who:      bo@laptop (human, {d.client_id})\n" in verified
    assert f"certified by laptop ({d.keys.record.id})" in verified
    assert "  action:   deploy\n" in verified
    assert "  purpose:  release 1.4.2\n" in verified
    assert '    "image": "api:1.4.2",\n' in verified
    assert '    "replicas": 3,\n' in verified
    # The escape in the details is shown as text (JSON-escaped), never sent to the terminal.
    assert "\x1b[2J" not in approve.screen
    assert '"note": "evil\\u001b[2Jnote"' in verified
    assert "valid for 120 s once given" in verified
    assert "127.0.0.1" not in verified
    assert "source IP: 127.0.0.1" in reported
    assert asker.poll() is None, "the request did not wait for the approver"

    approve.type("yes")
    approve.expect(CONFIRM)
    approve.type(PASSPHRASE)
    approve.expect(f"Consented to deploy for bo@laptop ({rid}).")
    out, err = asker.communicate(timeout=60)
    assert asker.returncode == 0, err
    assert out == ""
    assert f"request {rid}" in err
    assert stat.S_IMODE(grant.stat().st_mode) == 0o600
    bundle = json.loads(grant.read_text())
    assert set(bundle) == {"format", "consent", "directory"}

    valid = _verify(d, grant, plan)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(f"valid: deploy for {d.client_id}, consented by approver "
                                   f"{d.keys.record.id}")  # fmt: skip

    # Replays fail offline, each with its reason and exit 5.
    other_plan = _plan(tmp_path, {**PLAN, "replicas": 30}, "other.json")
    cases = [
        (_verify(d, grant, other_plan), "other action parameters"),
        (_verify(d, grant, plan, action="rollback"), "another action or client"),
        (_verify(d, grant, plan, client="cli_" + "a" * 26), "another action or client"),
        (_verify(d, grant, plan, vault="sha256:" + "A" * 43), "pinned vault fingerprint"),
    ]
    for done, reason in cases:
        assert done.returncode == 5, done.stderr
        assert "INVALID" in done.stderr
        assert reason in done.stderr
    tampered = tmp_path / "tampered.json"
    token = bundle["consent"]
    tampered.write_text(json.dumps({**bundle, "consent": token[:-4] + "AAAA"}))
    assert _verify(d, tampered, plan).returncode == 5
    junk = tmp_path / "junk.json"
    junk.write_text("not json")
    assert _verify(d, junk, plan).returncode == 5

    # An independent JOSE library verifies the consent with the approver's public key as a
    # JWK (OKP, Ed25519), taken from the directory the bundle carries.
    directory = dirs.verify_directory(bundle["directory"], pinned=d.keys.fingerprint)
    raw = directory.approver(d.keys.record.id).sig_pk.raw
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}
    import warnings

    from joserfc import jws as jose_jws
    from joserfc.errors import SecurityWarning
    from joserfc.jwk import OKPKey

    with warnings.catch_warnings():
        # joserfc flags "EdDSA" as deprecated by RFC 9864; sealbox uses the RFC 8037 name.
        warnings.simplefilter("ignore", SecurityWarning)
        compact = jose_jws.deserialize_compact(token, OKPKey.import_key(jwk),
                                               algorithms=["EdDSA"])  # fmt: skip
    assert compact.headers()["typ"] == "sealbox.consent.v1"
    claims = json.loads(compact.payload)
    assert (claims["action"], claims["client"]) == ("deploy", d.client_id)
    assert claims["exp"] - claims["at"] == 120
    assert approve.stop() == 0


def test_terminal_no_refuses_and_the_asker_exits_3(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    plan = _plan(tmp_path)
    asker = started.person(d, "consent", "request", "--action", "deploy", "--details",
                           f"@{plan}")  # fmt: skip
    approve, _ = started.approve(d, "--unlock-for", "10m")
    approve.expect("=== CONSENT REQUEST ")
    approve.expect(CONSENT)
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("no deploys on Friday")
    approve.expect("Refused consent request ")
    out, err = asker.communicate(timeout=60)
    assert asker.returncode == 3, err
    assert out == ""
    assert "no deploys on Friday" in err
    assert approve.stop() == 0


def _pending_consents(d: Deployment) -> list[dict[str, Any]]:
    session = d.session()
    try:
        return list(session.ok("GET", "/consent-approvals",
                               "listing")["consent_requests"])  # fmt: skip
    finally:
        session.close()


def test_terminal_shows_the_relays_count_of_the_requesters_recent_requests_apart(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    """How often this requester asked lately: the relay's count, shown as not verified."""
    d = shared
    plan = _plan(tmp_path)
    approve, _ = started.approve(d, "--unlock-for", "10m")
    first = started.person(d, "consent", "request", "--action", "deploy", "--details",
                           f"@{plan}")  # fmt: skip
    approve.expect("=== CONSENT REQUEST ")
    approve.expect(CONSENT)
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("asked too often")
    approve.expect("Refused consent request ")
    first.communicate(timeout=60)
    asker = started.person(d, "consent", "request", "--action", "deploy", "--details",
                           f"@{plan}", "--purpose", "once more")  # fmt: skip
    approve.expect("=== CONSENT REQUEST ")
    approve.expect(CONSENT)
    rid, verified, reported = request_block(approve, "CONSENT REQUEST")
    listed = [e for e in _pending_consents(d) if e["id"].startswith(rid)]
    assert len(listed) == 1
    recent = listed[0]["reported_by_server"]["recent"]
    assert recent["requests"] >= 2
    assert recent["denials"] >= 1
    assert recent["locked"] is False
    line = (f"  this requester: {recent['requests']} requests in the last hour, "
            f"{recent['denials']} denied\n")  # fmt: skip
    # Under what only the relay says, never among the verified facts.
    assert line in reported
    assert "this requester" not in verified
    assert re.search(r"Reported by server \(not verified\):\n  source IP: 127\.0\.0\.1\n"
                     r"  this requester: ", reported)  # fmt: skip
    approve.type("no")
    approve.expect("Reason (shown to the requester): ")
    approve.type("still no")
    approve.expect("Refused consent request ")
    _, err = asker.communicate(timeout=60)
    assert asker.returncode == 3, err
    assert approve.stop() == 0


CONSENT_RULES = """
[[rule]]
name = "bo deploys"
decision = "approve"
kind = "consent"
actions = ["deploy"]
clients = ["{client}"]
"""


def test_automated_approver_consents_only_where_a_rule_says(
    shared: Deployment, started: Started, tmp_path: Path
) -> None:
    d = shared
    plan = _plan(tmp_path)
    bot = d.serve(CONSENT_RULES.format(client=d.client_id))
    try:
        done = d.cli("consent", "request", "--action", "deploy", "--details", f"@{plan}")
        assert done.returncode == 0, done.stderr
        grant = tmp_path / "grant.json"
        grant.write_text(done.stdout)
        assert _verify(d, grant, plan).returncode == 0
        [decided] = bot.wait_for("approved")
        assert (decided["kind"], decided["action"], decided["rule"]) == (
            "consent", "deploy", "bo deploys",
        )  # fmt: skip
        # Another action: no rule names it, so it is left for a person (never consented).
        asker = started.person(d, "consent", "request", "--action", "rollback", "--details",
                               f"@{plan}")  # fmt: skip
        [left] = bot.wait_for("left for a person")
        assert left["action"] == "rollback"
        assert asker.poll() is None
    finally:
        bot.stop()
    started.end()  # Ctrl-C: the request is withdrawn
    assert asker.returncode == 130


def test_bad_details_are_refused_before_anything_is_asked(
    shared: Deployment, tmp_path: Path
) -> None:
    d = shared
    for details, why in (("[1, 2]", "JSON object"), ("{not json", "not JSON"),
                         ('{"ratio": 0.5}', "canonical JSON")):  # fmt: skip
        done = d.cli("consent", "request", "--action", "deploy", "--details", details)
        assert done.returncode == 2, done.stderr
        assert why in done.stderr
    huge = _plan(tmp_path, {"blob": "x" * 9000}, "huge.json")
    done = d.cli("consent", "request", "--action", "deploy", "--details", f"@{huge}")
    assert done.returncode == 2, done.stderr
    # What two JSON readers could read differently is refused, by `request` and by `verify`:
    # a key given twice, NaN and Infinity.
    grant = tmp_path / "no-grant.json"
    grant.write_text("{}")
    for details, why in (('{"replicas": 3, "replicas": 30}', "'replicas' twice"),
                         ('{"ratio": NaN}', "NaN"), ('{"n": Infinity}', "Infinity"),
                         ('{"a": {"b": 1, "b": 2}}', "'b' twice")):  # fmt: skip
        asked = d.cli("consent", "request", "--action", "deploy", "--details", details)
        checked = _verify(d, grant, _plan(tmp_path, {}, "unused.json"), details=details)
        for done in (asked, checked):
            assert done.returncode == 2, done.stderr
            assert why in done.stderr


SDK_SCRIPT = """
import asyncio, json, sys
import sealbox
from sealbox.client.consent import verify_grant
from sealbox.errors import BindingMismatch

plan = json.loads(sys.argv[1])

async def main():
    async with sealbox.AsyncClient() as vault:
        grant = await vault.request_consent("deploy", plan, purpose="sdk", ttl=60)
    consent = verify_grant(grant.bundle_json(), fingerprint=grant.fingerprint, action="deploy",
                           details=plan, client=grant.client)
    try:
        verify_grant(grant, fingerprint=grant.fingerprint, action="deploy",
                     details={**plan, "replicas": 9}, client=grant.client)
    except BindingMismatch:
        other = "refused"
    with sealbox.Client() as vault:
        again = vault.request_consent("deploy", plan, ttl=30)
    print(json.dumps({"approver": consent.approver, "ttl": consent.exp - consent.at,
                      "other": other, "again": again.expires_at - again.at,
                      "request": grant.request}))

asyncio.run(main())
"""


def test_the_sdk_asks_and_verifies_both_blocking_and_async(shared: Deployment) -> None:
    d = shared
    bot = d.serve(CONSENT_RULES.format(client=d.client_id))
    try:
        done = subprocess.run(
            [sys.executable, "-c", SDK_SCRIPT, json.dumps({"service": "api", "replicas": 3})],
            capture_output=True, text=True, timeout=120, check=False,
            env=env_for(d.client_config), stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        bot.stop()
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got == {"approver": d.keys.record.id, "ttl": 60, "other": "refused", "again": 30,
                   "request": got["request"]}  # fmt: skip


def _head_printed(done: subprocess.CompletedProcess[str]) -> str:
    [line] = [x for x in done.stdout.splitlines() if x.startswith("directory head: ")]
    return line.split()[2]


def test_a_removed_approvers_consent_fails_against_the_relay_or_a_known_head(
    tmp_path: Path,
) -> None:
    # Its own deployment: an approver is added, consents, and is removed (its key stolen, say).
    from sealbox.approver import admin

    d = Deployment(tmp_path / "deployment")
    try:
        config, keys = d.add_approver("ci-bot")
        plan = _plan(tmp_path)
        bot = d.serve(CONSENT_RULES.format(client=d.client_id), config=config)
        try:
            done = d.cli("consent", "request", "--action", "deploy", "--details", f"@{plan}")
        finally:
            bot.stop()
        assert done.returncode == 0, done.stderr
        grant = tmp_path / "grant.json"
        grant.write_text(done.stdout)
        assert json.loads(done.stdout)["consent"]
        offline = _verify(d, grant, plan)
        assert offline.returncode == 0, offline.stderr
        assert f"consented by approver {keys.record.id}" in offline.stdout
        assert "(the bundle's directory)" in offline.stdout
        known = _head_printed(offline)
        online = _verify(d, grant, plan, "--relay", d.url)
        assert online.returncode == 0, online.stderr
        assert "(the relay's current directory)" in online.stdout
        assert _head_printed(online) == known

        session = d.session()
        try:
            admin.remove_approver(session, admin.plan_removal(session, keys.record.id))
        finally:
            session.close()
        links = httpx.get(f"{d.url}/v1/vaults/{d.vault}/directory").json()["links"]
        newest = format_head(dirs.verify_directory(links, pinned=d.keys.fingerprint).head)

        # Offline, the bundle alone cannot show the removal (the documented limit)...
        assert _verify(d, grant, plan).returncode == 0
        assert _verify(d, grant, plan, "--head", known).returncode == 0
        # ...the vault's current directory does, and so does a newer head known already.
        for more, why in (
            (("--relay", d.url), "not a current approver"),
            (("--head", newest), "directory_rollback"),
            (("--relay", d.url, "--head", newest), "not a current approver"),
        ):
            refused = _verify(d, grant, plan, *more)
            assert refused.returncode == 5, (more, refused.stdout, refused.stderr)
            assert "INVALID" in refused.stderr
            assert why in refused.stderr
        # A head with another link at its place: a forked chain.
        forked = f"{known.split(':', 1)[0]}:" + newest.split(":", 1)[1]
        refused = _verify(d, grant, plan, "--head", forked)
        assert refused.returncode == 5, refused.stderr
        assert "directory_fork" in refused.stderr
        # Bad input: a malformed head is a usage error; a relay that cannot be reached, 1.
        assert _verify(d, grant, plan, "--head", "latest").returncode == 2
        gone = _verify(d, grant, plan, "--relay", "http://127.0.0.1:9")
        assert gone.returncode == 1, gone.stderr
    finally:
        d.close()
