"""A machine identity (``SEALBOX_IDENTITY``) used by the real CLI against a real relay.

An approver certifies a machine key for ``shop/dev/*`` and registers it; the
identity is written as the provisioning tools write it, and a process with a
fresh HOME and config directory reads with it: every request signed with the
machine's key, no token anywhere.  The certificate's signed item scope holds
even though the relay's grant covers every environment (stage isolation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loop_support import Deployment, ServeProcess, env_for, outputs

from sealbox.client import identity as identities
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo

DEV_VALUE = "dev-pw-3Jf9q"
PROD_VALUE = "prod-pw-never-to-a-dev-machine"

MACHINE_READS = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "machines read"
client_kinds = ["machine"]
decision = "approve"
"""


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("identity"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def bot(d: Deployment) -> Iterator[ServeProcess]:
    serve = d.serve(MACHINE_READS)
    for path, value in (("shop/dev/db", DEV_VALUE), ("shop/prod/db", PROD_VALUE)):
        stored = d.store(path, {"password": value})
        assert stored.returncode == 0, outputs(stored)
    yield serve
    serve.stop()


def _machine(d: Deployment, key: SigningKey, *, items: str) -> identities.Identity:
    """Certify and register a machine key as `sealbox machine provision` does."""
    session = d.session()
    try:
        directory = session.directory(fresh=True)
        now = int(time.time())
        client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="machine", name="api-dev",
                            sig_pk=key.verify_key())  # fmt: skip
        cert = issue_certificate(
            directory, issuer=session.id, key=d.keys.sig, client=client,
            scopes=["read", f"items:{items}"], constraints=ClientConstraints(not_after=now + 3600),
            now=now,
        )  # fmt: skip
        session.ok("POST", "/clients", "registering", json_body={"certificate": cert})
        # A grant wider than the certificate: the signed scope must still hold.
        session.ok("POST", f"/clients/{client.id}/grants", "granting",
                   json_body={"pattern": "shop/*/*"})  # fmt: skip
    finally:
        session.close()
    return identities.Identity(
        server=d.url, vault=d.vault, fingerprint=d.keys.fingerprint, head=directory.head,
        client_id=client.id, client_name=client.name, kind="machine", key=key, certificate=cert,
    )  # fmt: skip


def _as_machine(d: Deployment, where: Path, home: Path, *args: str) -> tuple[int, str, str]:
    done = d.run_as(home, *args, SEALBOX_IDENTITY=str(where), HOME=str(home))
    return done.returncode, done.stdout, outputs(done)


def test_a_provisioned_directory_identity_reads_from_a_fresh_home(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    key = SigningKey.generate()
    machine = _machine(d, key, items="shop/dev/*")
    where = tmp_path / "identity"
    identities.save_dir(where, machine)
    assert (where / "client.key").stat().st_mode & 0o777 == 0o600
    assert where.stat().st_mode & 0o777 == 0o700

    ref = "sealbox://shop/dev/db/password"
    rc, stdout, out = _as_machine(d, where, tmp_path / "home", "read", ref, "--purpose", "api")
    assert rc == 0, out
    assert stdout == DEV_VALUE + "\n"
    [decision] = [x for x in bot.decisions() if x.get("client") == machine.client_id]
    assert decision["outcome"] == "approved"


def test_the_certificates_item_scope_holds_whatever_the_grants_say(
    d: Deployment, bot: ServeProcess, tmp_path: Path
) -> None:
    machine = _machine(d, SigningKey.generate(), items="shop/dev/*")
    where = tmp_path / "identity.json"
    identities.save_file(where, machine)
    before = len(bot.decisions())

    rc, _, out = _as_machine(d, where, tmp_path / "home", "read", "sealbox://shop/prod/db/password")
    assert rc == 1, out
    # The relay hides what the scope does not cover, as it hides what no grant covers.
    assert "there is no item at shop/prod/db" in out
    assert PROD_VALUE not in out
    assert len(bot.decisions()) == before  # refused by the relay: no approver was even asked


def test_an_identity_whose_key_others_may_read_is_refused(d: Deployment, tmp_path: Path) -> None:
    machine = _machine(d, SigningKey.generate(), items="shop/dev/*")
    where = tmp_path / "identity"
    identities.save_dir(where, machine)
    (where / "client.key").chmod(0o644)
    rc, _, out = _as_machine(d, where, tmp_path / "home", "ls")
    assert rc == 2, out
    assert "must be readable by its owner only" in out
    assert machine.key.to_text() not in out


def test_the_relay_never_holds_the_machines_private_key(d: Deployment, tmp_path: Path) -> None:
    key = SigningKey.generate()
    machine = _machine(d, key, items="shop/dev/*")
    identities.save_dir(tmp_path / "identity", machine)
    rc, _, out = _as_machine(d, tmp_path / "identity", tmp_path / "home", "ls")
    assert rc == 0, out
    assert "shop/dev/db" in out
    assert "shop/prod/db" not in out
    secret = key.to_text().split(":", 1)[1]
    for file in (d.tmp / "relay").rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file
    assert secret not in d.relay.output


def test_an_explicit_profile_wins_over_the_identity(d: Deployment, tmp_path: Path) -> None:
    machine = _machine(d, SigningKey.generate(), items="shop/dev/*")
    identities.save_dir(tmp_path / "identity", machine)
    env = env_for(d.client_config, SEALBOX_IDENTITY=str(tmp_path / "identity"))
    done = d.run_as(d.client_config, "ls", "--profile", "default", **{
        k: v for k, v in env.items() if k == "SEALBOX_IDENTITY"
    })  # fmt: skip
    assert done.returncode == 0, outputs(done)
    assert "shop/prod/db" in done.stdout  # the person's grant, not the machine's scope


def test_whoami_checks_the_identity_with_the_relay_and_a_disabled_one_is_told(
    d: Deployment, tmp_path: Path
) -> None:
    machine = _machine(d, SigningKey.generate(), items="shop/dev/*")
    where = tmp_path / "identity"
    identities.save_dir(where, machine)
    rc, stdout, out = _as_machine(d, where, tmp_path / "home", "whoami")
    assert rc == 0, out
    assert f"client:       {machine.client_id} (api-dev)" in stdout
    assert "kind:         machine" in stdout
    assert "scopes:       items:shop/dev/*, read" in stdout
    assert machine.key.to_text() not in out

    session = d.session()
    try:
        session.ok("POST", f"/clients/{machine.client_id}/disable", "disabling")
    finally:
        session.close()
    rc, _, out = _as_machine(d, where, tmp_path / "home", "whoami")
    assert rc == 6, out
    assert "the relay no longer accepts this machine" in out
