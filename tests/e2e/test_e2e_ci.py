"""CI runs end to end: a real relay, a real approver, runners that are real `sealbox` processes.

An approver makes an enrollment with `sealbox ci enrollment create`; a runner
with only the token (from SEALBOX_ENROLLMENT_TOKEN) runs `sealbox ci login`
and reads through the automated approver's rule for machines.  The
enrollment's max uses is reached (a clear 4xx, audited, nothing registered);
a broken constraint (source address, host name) is refused; revoking stops its
machines.  Each `sealbox ci snippet` is parsed as YAML and its shell steps run
as the CI provider would run them, with sealbox from this environment instead
of the install step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from loop_support import SEALBOX, Deployment, ServeProcess, env_for, outputs

from sealbox.client.enrollment import enrol
from sealbox.errors import RelayRefused
from sealbox.protocol.enrollment_token import parse_token

PASSWORD = "ci-Pw/9xQ&never-printed"
OTHER = "prod-Zz4/never-asked"
RULES = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "ci machines read ci items"
decision = "approve"
client_kinds = ["machine"]
items = ["shop/ci/*"]
"""
BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("ci"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def bot(d: Deployment) -> Iterator[ServeProcess]:
    serve = d.serve(RULES)
    for path, value in (("shop/ci/db", PASSWORD), ("shop/prod/db", OTHER)):
        stored = d.store(path, {"password": value})
        assert stored.returncode == 0, outputs(stored)
    yield serve
    serve.stop()


def _enrollment(d: Deployment, *args: str) -> dict[str, Any]:
    done = d.approver_cli("ci", "enrollment", "create", "--project", "shop",
                          "--items", "shop/ci/*", "--json", *args)  # fmt: skip
    assert done.returncode == 0, outputs(done)
    created: dict[str, Any] = json.loads(done.stdout)
    return created


def _approver_get(d: Deployment, path: str, key: str) -> list[dict[str, Any]]:
    session = d.session()
    try:
        return list(session.ok("GET", path, "reading")[key])
    finally:
        session.close()


def _clients(d: Deployment) -> list[dict[str, Any]]:
    return _approver_get(d, "/clients", "clients")


def _refusals(d: Deployment) -> list[dict[str, Any]]:
    return _approver_get(d, "/audit?action=enrollment.refused&limit=1000", "events")


def _login(d: Deployment, runner: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return d.run_as(runner, "ci", "login", "--out", str(runner / "identity"), *args,
                    SEALBOX_ENROLLMENT_TOKEN=token)  # fmt: skip


def test_a_runner_enrols_and_reads_through_the_rule_until_max_uses(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    created = _enrollment(d, "--max-uses", "2")
    token = created["token"]
    assert created["max_uses"] == 2
    runner = tmp_path / "runner-1"
    done = _login(d, runner, token)
    assert done.returncode == 0, outputs(done)
    identity = runner / "identity"
    assert done.stdout == f"export SEALBOX_IDENTITY={identity}\n"
    assert token not in outputs(done)
    assert (identity / "client.key").stat().st_mode & 0o077 == 0

    read = d.run_as(runner, "read", "sealbox://shop/ci/db/password",
                    SEALBOX_IDENTITY=str(identity))  # fmt: skip
    assert read.returncode == 0, outputs(read)
    assert read.stdout.rstrip("\n") == PASSWORD
    decided = bot.wait_for("approved")
    assert any(x.get("rule") == "ci machines read ci items" for x in decided), decided

    # Outside the enrollment's items: the relay does not even say whether it exists.
    outside = d.run_as(runner, "read", "sealbox://shop/prod/db/password",
                       SEALBOX_IDENTITY=str(identity))  # fmt: skip
    assert outside.returncode != 0
    assert "grants do not cover it" in outside.stderr, outputs(outside)
    assert OTHER not in outputs(outside)

    second = _login(d, tmp_path / "runner-2", token)
    assert second.returncode == 0, outputs(second)
    before = _clients(d)
    third = _login(d, tmp_path / "runner-3", token)
    assert third.returncode == 1, outputs(third)
    assert "all the 2 machines it may" in third.stderr
    assert "--max-uses" in third.stderr  # the hint
    assert _clients(d) == before
    assert not (tmp_path / "runner-3" / "identity").exists()
    assert [e["detail"]["error"] for e in _refusals(d)
            if e["detail"]["enrollment"] == created["id"]] == ["enrollment_exhausted"]  # fmt: skip

    # Revoked: the machines stop at once.
    revoked = d.approver_cli("ci", "enrollment", "revoke", created["id"])
    assert revoked.returncode == 0, outputs(revoked)
    assert "2 machine(s) disabled" in revoked.stdout
    again = d.run_as(runner, "read", "sealbox://shop/ci/db/password",
                     SEALBOX_IDENTITY=str(identity))  # fmt: skip
    assert again.returncode != 0
    assert PASSWORD not in outputs(again)
    listed = d.approver_cli("ci", "enrollment", "list", "--json")
    [entry] = [e for e in json.loads(listed.stdout)["enrollments"] if e["id"] == created["id"]]
    assert (entry["uses"], entry["machines"], entry["verified"]) == (2, 2, True)
    assert entry["revoked_at"] is not None
    # The token and its key reach neither the relay's output nor its audit log.
    delegation = parse_token(token).key.to_text()
    audit = json.dumps(_approver_get(d, "/audit?limit=1000", "events"))
    for secret in (token, delegation, delegation.split(":", 1)[1]):
        assert secret not in d.relay.output
        assert secret not in audit


def test_a_runner_outside_the_networks_or_host_names_is_refused(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    before = _clients(d)
    narrow = _enrollment(d, "--cidr", "127.0.0.3/32")
    token = parse_token(narrow["token"])
    # The runner's socket bound to 127.0.0.2; the enrollment allows 127.0.0.3 only.
    bound = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=bound) as http, pytest.raises(RelayRefused) as caught:
        enrol(token, http=http)
    assert (caught.value.status, caught.value.error) == (403, "source_not_allowed")
    # The CLI from this host's 127.0.0.1: the same.
    done = _login(d, tmp_path / "runner", narrow["token"])
    assert done.returncode == 1, outputs(done)
    assert "does not allow requests from this address" in done.stderr

    named = _enrollment(d, "--hostname", "runner-*")
    assert not socket.gethostname().lower().startswith("runner-")
    done = _login(d, tmp_path / "runner", named["token"])
    assert done.returncode == 1, outputs(done)
    assert "host name" in done.stderr
    assert _clients(d) == before
    refused = {e["detail"]["enrollment"]: e["detail"]["error"] for e in _refusals(d)}
    assert refused[narrow["id"]] == "source_not_allowed"
    assert refused[named["id"]] == "hostname_not_allowed"

    # From an allowed address, it works, and the machine is held there on every call.
    wide = parse_token(_enrollment(d, "--cidr", "127.0.0.2/32")["token"])
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as http:
        enrolled = enrol(wide, http=http)
    assert enrolled.client_id in {c["id"] for c in _clients(d)}


def test_the_token_is_taken_from_the_environment_only(d: Deployment, tmp_path: Path) -> None:
    done = d.run_as(tmp_path, "ci", "login")
    assert done.returncode == 2
    assert "SEALBOX_ENROLLMENT_TOKEN" in done.stderr
    bad = d.run_as(tmp_path, "ci", "login", SEALBOX_ENROLLMENT_TOKEN="sbx_enr_nope")
    assert bad.returncode == 2
    assert "enrollment token" in bad.stderr
    assert "sbx_enr_nope" not in bad.stderr


# --- the workflow snippets, run as the CI providers would -----------------------------------

SHA = hashlib.sha256(PASSWORD.encode()).hexdigest()
COMMAND = "sh -c 'printf %s \"$DB_PASSWORD\" | sha256sum'"
INSTALL = re.compile(r"^(pipx?|python3? -m pip) install sealbox$")


def _snippet(d: Deployment, provider: str) -> Any:
    done = d.cli("ci", "snippet", provider, "--env", "DB_PASSWORD=sealbox://shop/ci/db/password",
                 "--command", COMMAND)  # fmt: skip
    assert done.returncode == 0, outputs(done)
    return yaml.safe_load(done.stdout)


def _runner_env(config: Path, token: str, **extra: str) -> dict[str, str]:
    env = env_for(config, SEALBOX_ENROLLMENT_TOKEN=token, TMPDIR=str(config), **extra)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


def _sh(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    shell = shutil.which("bash") or "sh"
    return subprocess.run([shell, "-e", "-c", script], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, check=False)  # fmt: skip


def _script_steps(lines: list[str]) -> str:
    kept = [line for line in lines if not INSTALL.match(line)]
    assert len(kept) == len(lines) - 1, lines  # exactly the install step is replaced
    return "\n".join(kept)


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket"])
def test_each_snippet_runs_as_its_ci_provider_would(
    d: Deployment, bot: ServeProcess, tmp_path: Path, provider: str
) -> None:
    token = _enrollment(d, "--max-uses", "1")["token"]
    workflow = _snippet(d, provider)
    config = tmp_path / "runner"
    config.mkdir()
    if provider == "github":
        [job] = workflow["jobs"].values()
        github_env = tmp_path / "github_env"
        github_env.write_text("")
        env = _runner_env(config, "", GITHUB_ENV=str(github_env), RUNNER_TEMP=str(tmp_path))
        del env["SEALBOX_ENROLLMENT_TOKEN"]
        output = ""
        for step in job["steps"]:
            if "run" not in step or step.get("name") == "Install sealbox":
                continue
            step_env = dict(env)
            for name, value in (step.get("env") or {}).items():
                assert value == "${{ secrets." + name + " }}"
                step_env[name] = token
            for line in github_env.read_text().splitlines():
                name, _, value = line.partition("=")
                step_env[name] = value
            done = _sh(step["run"], step_env, tmp_path)
            assert done.returncode == 0, (step, outputs(done))
            output += done.stdout
    else:
        if provider == "gitlab":
            lines = workflow["deploy"]["script"]
        else:
            lines = workflow["pipelines"]["default"][0]["step"]["script"]
        done = _sh(_script_steps(lines), _runner_env(config, token), tmp_path)
        assert done.returncode == 0, outputs(done)
        output = done.stdout
        # A second run with the same token (max uses 1): the job fails at the login step,
        # before the command runs.
        again = _sh(_script_steps(lines), _runner_env(config, token), tmp_path)
        assert again.returncode != 0
        assert "all the 1 machines it may" in again.stderr
        assert SHA not in again.stdout
    assert SHA in output
    assert PASSWORD not in output
    assert token not in output


# --- a person approving a CI machine in the terminal ----------------------------------------


def test_the_terminal_approver_shows_who_enrolled_the_machine(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    """An item no rule covers waits for a person; `sealbox approve` shows the chain's end."""
    from test_e2e_terminal import ANSWER, Started, request_block

    stored = d.store("shop/manual/key", {"key": "manual-K3y/never-shown"})
    assert stored.returncode == 0, outputs(stored)
    created = _enrollment(d, "--items", "shop/manual/*")
    runner = tmp_path / "runner"
    assert _login(d, runner, created["token"]).returncode == 0
    started = Started()
    try:
        reader = subprocess.Popen(
            [*SEALBOX, "read", "sealbox://shop/manual/key/key"],
            env=env_for(runner, SEALBOX_IDENTITY=str(runner / "identity")), text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.procs.append(reader)
        approve, _ = started.approve(d, ask=False)
        approve.expect("=== ACCESS REQUEST ")
        approve.expect(ANSWER)
        _, verified, _ = request_block(approve, "ACCESS REQUEST")
        assert (f"enrolled by {created['id']} (approver laptop, {d.keys.record.id}); "
                "scopes items:shop/ci/*, items:shop/manual/*, read") in verified  # fmt: skip
        assert "(machine, cli_" in verified
        approve.type("yes")  # (the passphrase is in SEALBOX_PASSPHRASE here)
        approve.expect("Released ")
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert out.rstrip("\n") == "manual-K3y/never-shown"
    finally:
        started.end()


def test_create_prints_only_the_token_on_stdout_and_list_shows_it(d: Deployment) -> None:
    done = d.approver_cli("ci", "enrollment", "create", "--project", "shop", "--items",
                          "shop/ci/*", "--expires", "12h", "--cidr", "10.1.0.0/16")  # fmt: skip
    assert done.returncode == 0, outputs(done)
    [line] = done.stdout.splitlines()
    token = parse_token(line)
    assert token.server == d.url
    assert token.vault == d.vault
    assert token.fingerprint == d.keys.fingerprint
    assert "shown once" in done.stderr
    assert "networks 10.1.0.0/16" in done.stderr
    assert line not in done.stderr
    listed = d.approver_cli("ci", "enrollment", "list")
    assert listed.returncode == 0, outputs(listed)
    [row] = [x for x in listed.stdout.splitlines() if x.startswith(token.enrollment)]
    assert "active  uses 0/50  machines 0" in row
    assert "does not verify" not in row
    bad = d.approver_cli("ci", "enrollment", "create", "--project", "shop", "--items", "blog/x/*")
    assert bad.returncode == 2
    assert "outside the projects shop" in bad.stderr
    revoke = d.approver_cli("ci", "enrollment", "revoke", "enr_nope")
    assert revoke.returncode == 2, outputs(revoke)
