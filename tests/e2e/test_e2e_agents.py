"""An agent end to end, with real processes: a person creates it, an approver certifies it in
`sealbox approve`, and it reads through approval with its own profile.

The person runs `sealbox agent create --save`; the approver's terminal
(`sealbox approve` in a pseudo-terminal) shows the agent's name, who asked,
its scopes and items and its key's safety code, which must be the one the
person's terminal printed.  The agent profile is then used only when named
(`SEALBOX_PROFILE` / `--profile`): its read waits for an approver and gets the
value.  Disabling the agent refuses its next call at once.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from loop_support import APPROVE_ALL, PASSPHRASE, SEALBOX, Deployment, env_for
from test_e2e_terminal import ANSWER, CONFIRM, Started

SECRET = "agent-visible-db-password-41c7"
AGENT_PROMPT = "Approve this agent? Type 'yes' to approve, 'no' to deny, Enter to skip: "


@pytest.fixture
def started() -> Iterator[Started]:
    procs = Started()
    try:
        yield procs
    finally:
        procs.end()


def _wait_for(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _read_line(proc: subprocess.Popen[str], pattern: str, seen: list[str]) -> re.Match[str]:
    """Read the process's stdout until ``pattern`` shows (lines kept in ``seen``)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"never printed {pattern!r}:\n{''.join(seen)}")


def test_an_agent_is_created_approved_and_reads_through_approval(
    tmp_path: Path, started: Started
) -> None:
    d = Deployment(tmp_path)
    try:
        bot = d.serve(APPROVE_ALL)
        try:
            stored = d.store("shop/prod/db", {"password": SECRET})
        finally:
            bot.stop()
        assert stored.returncode == 0, stored.stderr

        # Refused before anything is asked: the name `default`, a bad scope.
        default = d.cli("agent", "create", "--name", "x", "--profile", "default")
        assert default.returncode == 2
        assert "may not be called 'default'" in default.stderr
        bad = d.cli("agent", "create", "--name", "x", "--scopes", "admin")
        assert bad.returncode == 2

        # The person asks; the approver sees who asked, what for, and the key's safety code.
        person = started.person(d, "agent", "create", "--name", "Deploy Bot", "--items",
                                "shop/prod/*", "--save")  # fmt: skip
        shown: list[str] = []
        client = _read_line(person, r"Client id:\s+(cli_\w+)", shown).group(1)
        key_code = _read_line(person, r"Agent key safety code:\s+(\S.*\S)", shown).group(1)
        term, _ = started.approve(d)
        term.expect("=== NEW AGENT ")
        term.expect(AGENT_PROMPT)
        block = term.since("=== NEW AGENT ")
        assert f"  agent:        Deploy Bot (agent, {client})\n" in block
        assert f"  asked by:     bo@laptop ({d.client_id})\n" in block
        assert "  scopes:       read\n" in block
        assert "  items:        shop/prod/*\n" in block
        assert f"  safety code:  {key_code}\n" in block
        term.type("yes")
        term.expect("Items this agent may ask for [shop/prod/*, or 'none']: ")
        term.type("")
        term.expect(CONFIRM)
        term.type(PASSPHRASE)
        term.expect(f"Agent {client} approved, granted shop/prod/*.")
        rc, out, err = _wait_for(person)
        assert rc == 0, "".join(shown) + out + err
        assert "Saved as profile 'deploy-bot'" in out

        path = d.client_config / "profiles" / "deploy-bot.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = json.loads(path.read_text())
        assert saved["auth"] == "agent"
        assert saved["client"]["id"] == client
        assert saved["client_sk"] not in "".join(shown) + out + err  # the key is never printed

        # The person's own session is untouched: without a profile named, it is still them.
        who = d.cli("whoami")
        assert who.returncode == 0, who.stderr
        assert d.client_id in who.stdout

        # An agent cannot make agents: its profile is not a person's login.
        child = d.cli("agent", "create", "--name", "Child", "--as", "deploy-bot")
        assert child.returncode == 6, child.stderr
        assert "needs a person's login" in child.stderr

        # A second agent of the same name is refused before anything is asked.
        again = d.cli("agent", "create", "--name", "Deploy Bot")
        assert again.returncode == 2
        assert "exists already" in again.stderr

        # The agent reads with its own profile: it waits for an approver, then gets the value.
        reader = subprocess.Popen(
            [*SEALBOX, "read", "sealbox://shop/prod/db/password", "--purpose", "deploy"],
            env=env_for(d.client_config, SEALBOX_PROFILE="deploy-bot"), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.procs.append(reader)
        term.expect("=== ACCESS REQUEST ")
        term.expect(ANSWER)
        request = term.since("=== ACCESS REQUEST ")
        assert f"  who:      Deploy Bot (agent, {client})\n" in request
        assert "shop/prod/db v1: password" in request
        term.type("yes")
        term.expect(CONFIRM)
        term.type(PASSPHRASE)
        rc, out, err = _wait_for(reader)
        assert rc == 0, out + err
        assert out.strip() == SECRET

        # whoami with the agent profile checks its certificate as an agent's.
        agent_who = d.cli("whoami", "--profile", "deploy-bot")
        assert agent_who.returncode == 0, agent_who.stderr
        assert re.search(r"kind:\s+agent", agent_who.stdout)
        assert client in agent_who.stdout

        # Disabled by an approver: the agent's next call is refused at once.
        off = d.approver_cli("agent", "disable", "deploy-bot")
        assert off.returncode == 0, off.stderr
        assert "token(s) revoked" in off.stdout
        began = time.monotonic()
        refused = d.run_as(d.client_config, "read", "sealbox://shop/prod/db/password",
                           "--profile", "deploy-bot", timeout=60)  # fmt: skip
        assert refused.returncode == 6, refused.stdout + refused.stderr
        assert "disabled or revoked" in refused.stderr
        assert time.monotonic() - began < 20
        listed = d.approver_cli("agent", "list")
        assert re.search(rf"Deploy Bot\s+{client}\s+disabled", listed.stdout), listed.stdout

        # Revoked: for good, it cannot be enabled again.
        gone = d.approver_cli("agent", "revoke", client)
        assert gone.returncode == 0, gone.stderr
        assert "revoked for good" in gone.stdout
        back = d.approver_cli("agent", "enable", "Deploy Bot")
        assert back.returncode == 1
        assert "revoked for good" in back.stderr
        listed = d.approver_cli("agent", "list")
        assert re.search(rf"Deploy Bot\s+{client}\s+revoked\s+no", listed.stdout), listed.stdout
        # Its profile is deleted like a person's.
        out_ = d.cli("logout", "--profile", "deploy-bot")
        assert out_.returncode == 0, out_.stderr
        assert not path.exists()
        assert term.stop() == 0
    finally:
        d.close()


def test_a_denied_agent_ends_the_create_and_json_prints_the_credentials(
    tmp_path: Path, started: Started
) -> None:
    d = Deployment(tmp_path)
    try:
        denied = started.person(d, "agent", "create", "--name", "CI Bot", "--json")
        shown: list[str] = []
        term, _ = started.approve(d)
        term.expect(AGENT_PROMPT)
        term.type("no")
        term.expect("denied.")
        rc, out, err = _wait_for(denied)
        assert rc == 1, out + err
        assert "denied this agent" in err
        assert out == ""  # nothing printed for a CI store
        del shown

        made = started.person(d, "agent", "create", "--name", "CI Bot", "--json",
                              "--client-secret", "--scopes", "read,write")  # fmt: skip
        term.expect(AGENT_PROMPT)
        term.type("yes")
        term.expect("Items this agent may ask for [*/*/*, or 'none']: ")
        term.type("shop/ci/*")
        term.expect(CONFIRM)
        term.type(PASSPHRASE)
        rc, out, err = _wait_for(made)
        assert rc == 0, out + err
        creds = json.loads(out)
        assert creds["client_secret"].startswith("sbx_cs_")
        assert creds["private_key"]
        assert creds["token_endpoint"] == f"{d.url}/oauth/token"
        assert creds["fingerprint"] == d.keys.fingerprint
        assert creds["private_key"] not in err
        assert not (d.client_config / "profiles" / "ci-bot.json").exists()

        # A CI job with only these credentials and a standard JOSE library gets tokens,
        # by private_key_jwt and by the client secret; a copied assertion works once.
        now = int(time.time())
        signed = pyjwt.encode(
            {"iss": creds["client_id"], "sub": creds["client_id"], "aud": creds["token_endpoint"],
             "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)},
            creds["private_key_pem"], algorithm="EdDSA",
        )  # fmt: skip
        form = {
            "grant_type": "client_credentials",
            "client_assertion": signed,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }
        with httpx.Client(base_url=d.url) as http:
            by_key = http.post("/oauth/token", data=form)
            assert by_key.status_code == 200, by_key.text
            assert "refresh_token" not in by_key.json()
            again = http.post("/oauth/token", data=form)
            assert again.status_code == 401
            assert again.json()["error"] == "invalid_client"
            by_secret = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                                  auth=(creds["client_id"], creds["client_secret"]))  # fmt: skip
            assert by_secret.status_code == 200, by_secret.text
            who = http.get(
                f"/v1/vaults/{d.vault}/whoami",
                headers={"authorization": f"Bearer {by_secret.json()['access_token']}"},
            )
            assert who.json()["client_kind"] == "agent"
        assert term.stop() == 0
    finally:
        d.close()
