"""The network allowlist against a real `sealbox up`, from real source addresses.

Each caller's socket is bound to its own loopback address (127.0.0.2, .3, …),
so the relay sees a different peer for each; `sealbox approver network` is
run as a real command by an approver made with `sealbox approver init`.
The relay trusts one proxy address (127.0.0.4): a request from it says where
it came from in ``X-Forwarded-For``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import PG_URL, SEALBOX, RelayProcess, pg_schema

from sealbox._relay.httpsig import sign_request
from sealbox.approver import keystore
from sealbox.approver.keystore import ApproverKeys
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo

PASSPHRASE = "correct horse battery"
ALLOWED, REFUSED, PROXY = "127.0.0.2", "127.0.0.3", "127.0.0.4"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env.update({"SEALBOX_CONFIG_DIR": str(config), "SEALBOX_PASSPHRASE": PASSPHRASE})
    return subprocess.run(
        [*SEALBOX, *args], capture_output=True, text=True, timeout=120, check=False, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.contextmanager
def from_address(base: str, address: str) -> Iterator[httpx.Client]:
    """An HTTP client whose connections leave from ``address``."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base, transport=transport, timeout=30) as http:
        yield http


class Party:
    """A key holder: an approver or a client (machine, agent, person)."""

    def __init__(self, id_: str, key: SigningKey) -> None:
        self.id, self.key = id_, key


def _send(http: httpx.Client, method: str, url: str, by: Party, **kw: Any) -> httpx.Response:
    request = http.build_request(method, url, **kw)
    sign_request(request, key=by.key, key_id=by.id)
    return http.send(request)


def _garbage(http: httpx.Client, url: str, key_id: str) -> httpx.Response:
    """A request naming ``key_id`` whose signature verifies for no key at all."""
    request = http.build_request("GET", url)
    sign_request(request, key=SigningKey.generate(), key_id=key_id)
    request.headers["signature"] = "sealbox=:" + "A" * 86 + "==:"
    return http.send(request)


def _certify(
    http: httpx.Client, keys: ApproverKeys, kind: str, name: str, client_id: str | None = None,
    key: SigningKey | None = None,
) -> tuple[Party, str]:  # fmt: skip
    links = http.get(f"/v1/vaults/{keys.vault}/directory").json()["links"]
    directory = dirs.verify_directory(links, pinned=keys.fingerprint)
    key = key or SigningKey.generate()
    info = ClientInfo(id=client_id or ids.new_id(ids.CLIENT), kind=kind, name=name,
                      sig_pk=key.verify_key())  # fmt: skip
    now = int(time.time())
    certificate = issue_certificate(
        directory, issuer=keys.record.id, key=keys.sig, client=info, scopes=["read"],
        constraints=ClientConstraints(not_after=now + 86400), now=now,
    )  # fmt: skip
    return Party(info.id, key), certificate


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json().get("error"))


@pytest.fixture(params=["sqlite", "postgres"])
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RelayProcess]:
    with contextlib.ExitStack() as stack:
        database: list[str] = []
        if request.param == "postgres":
            schema = stack.enter_context(pg_schema("sbx_e2e_net"))
            assert PG_URL  # pg_schema has skipped (or failed, in CI) without it
            database = ["--db", PG_URL, "--db-schema", schema]
        process = RelayProcess(tmp_path / "relay", "--trusted-proxy", PROXY, *database)
        try:
            yield process
        finally:
            process.stop()


def test_allowlisted_and_refused_addresses_against_a_real_relay(
    relay: RelayProcess, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{relay.port}"
    assert f"trusted proxies {PROXY}/32" in relay.output
    config = tmp_path / "approver"
    init = _cli(config, "approver", "init", "--server", base,
                "--setup-token", relay.setup_token() or "")  # fmt: skip
    assert init.returncode == 0, init.stderr
    vault = httpx.get(f"{base}/v1/vault").json()["vault"]
    keys = keystore.load(config / "approvers" / f"{vault}.json", PASSPHRASE)
    approver = Party(keys.record.id, keys.sig)
    me = f"/v1/vaults/{vault}/whoami"

    with from_address(base, ALLOWED) as http:
        machine, cert = _certify(http, keys, "machine", "api-1")
        assert _send(http, "POST", f"/v1/vaults/{vault}/clients", approver,
                     json={"certificate": cert}).status_code == 201  # fmt: skip
        agent, cert = _certify(http, keys, "agent", "deploy-bot")
        assert _send(http, "POST", f"/v1/vaults/{vault}/clients", approver,
                     json={"certificate": cert}).status_code == 201  # fmt: skip

    # A person logs in from the address machines will be refused from.
    person_key = SigningKey.generate()
    person_id = ids.new_id(ids.CLIENT)
    with from_address(base, REFUSED) as http:
        started = http.post("/oauth/device_authorization", data={
            "vault": vault, "client_id": person_id, "client_name": "bo@laptop",
            "sig_pk": person_key.verify_key().to_text(),
        })  # fmt: skip
        assert started.status_code == 200, started.text
        _, cert = _certify(http, keys, "human", "bo@laptop", person_id, person_key)
        approved = _send(
            http, "POST", f"/v1/vaults/{vault}/device-requests/{started.json()['user_code']}"
            "/approve", approver, json={"certificate": cert},
        )  # fmt: skip
        assert approved.status_code == 200, approved.text
        token = http.post("/oauth/token", data={
            "grant_type": DEVICE_GRANT, "device_code": started.json()["device_code"],
            "client_id": person_id,
        })  # fmt: skip
        assert token.status_code == 200, token.text
    bearer = {"authorization": f"Bearer {token.json()['access_token']}"}
    person = Party(person_id, person_key)

    # Off by default: machines call from anywhere.
    with from_address(base, REFUSED) as http:
        assert _send(http, "GET", me, machine).status_code == 200

    allowed = _cli(config, "approver", "network", "allow", ALLOWED)
    assert allowed.returncode == 0, allowed.stderr
    assert "disabled" in allowed.stdout
    assert f"{ALLOWED}/32" in allowed.stdout
    enabled = _cli(config, "approver", "network", "enable")
    assert enabled.returncode == 0, enabled.stderr
    shown = _cli(config, "approver", "network", "show")
    assert shown.returncode == 0, shown.stderr
    assert "enabled" in shown.stdout
    assert f"  {ALLOWED}/32" in shown.stdout
    bad = _cli(config, "approver", "network", "allow", "127.0.0.9/8")
    assert bad.returncode == 1
    assert "host bits" in bad.stderr
    # A policy's networks, set from the CLI too.
    policy = _cli(config, "approver", "policy", "shop/prod/*", "--approvers", approver.id,
                  "--cidr", ALLOWED, "--cidr", "2001:db8::/32")  # fmt: skip
    assert policy.returncode == 0, policy.stderr
    assert f"only from: {ALLOWED}/32, 2001:db8::/32" in policy.stdout
    with from_address(base, REFUSED) as http:
        [stored] = _send(http, "GET", f"/v1/vaults/{vault}/policies", approver).json()["policies"]
    assert stored["cidrs"] == [f"{ALLOWED}/32", "2001:db8::/32"]

    with from_address(base, ALLOWED) as inside, from_address(base, REFUSED) as outside:
        assert _send(inside, "GET", me, machine).status_code == 200
        assert _send(inside, "GET", me, agent).status_code == 200
        for caller in (machine, agent):
            refused = _send(outside, "GET", me, caller)
            assert _error(refused) == (403, "network_not_allowed")
            assert REFUSED in refused.json()["message"]
            assert refused.json()["hint"]
        # Refused before the signature is looked at; from inside it is the signature that fails.
        assert _error(_garbage(outside, me, machine.id)) == (403, "network_not_allowed")
        assert _error(_garbage(inside, me, machine.id)) == (401, "signature_invalid")
        # People and approvers are not held to the allowlist.
        assert outside.get(me, headers=bearer).json()["client_kind"] == "human"
        assert _send(outside, "GET", me, person).status_code == 200
        assert _send(outside, "GET", me, approver).json()["role"] == "approver"

    # Forwarded addresses: believed from the trusted proxy only, right-most untrusted hop.
    def forwarded(peer: str, header: str) -> int:
        with from_address(base, peer) as http:
            request = http.build_request("GET", me, headers={"x-forwarded-for": header})
            sign_request(request, key=machine.key, key_id=machine.id)
            return http.send(request).status_code

    assert forwarded(PROXY, ALLOWED) == 200
    assert forwarded(REFUSED, ALLOWED) == 403  # not a trusted proxy: the header is ignored
    assert forwarded(PROXY, f"{ALLOWED}, {REFUSED}") == 403  # a spoofed left-most entry
    assert forwarded(PROXY, f"{REFUSED}, {ALLOWED}") == 200

    # Enabled and empty: every machine and agent is refused, from everywhere.
    removed = _cli(config, "approver", "network", "remove", ALLOWED)
    assert removed.returncode == 0, removed.stderr
    assert "ENABLED and empty" in removed.stdout
    with from_address(base, ALLOWED) as inside:
        for caller in (machine, agent):
            assert _error(_send(inside, "GET", me, caller)) == (403, "network_not_allowed")
        assert inside.get(me, headers=bearer).status_code == 200
    disabled = _cli(config, "approver", "network", "disable")
    assert disabled.returncode == 0, disabled.stderr
    with from_address(base, REFUSED) as outside:
        assert _send(outside, "GET", me, machine).status_code == 200

        # Every refusal is in the audit log, with the address the relay saw.
        events = _send(outside, "GET", f"/v1/vaults/{vault}/audit", approver,
                       params={"action": "auth.refused"}).json()["events"]  # fmt: skip
        changes = _send(outside, "GET", f"/v1/vaults/{vault}/audit", approver,
                        params={"action": "network.*"}).json()["events"]  # fmt: skip
    refused_from = {(e["source_ip"], e["detail"]["error"]) for e in events}
    assert (REFUSED, "network_not_allowed") in refused_from
    assert (ALLOWED, "network_not_allowed") in refused_from
    assert (ALLOWED, "signature_invalid") in refused_from
    assert [e["action"] for e in changes] == [
        "network.allowed", "network.enabled", "network.removed", "network.disabled",
    ]  # fmt: skip
