"""Restart durability of a real `sealbox up`, on SQLite and on PostgreSQL.

Everything goes over HTTP with the real protocol: an approver sets the vault
up, registers a machine client and grants it, stores an item; the client asks
for it.  The relay is stopped (Ctrl-C) and started again on the same port and
data; the pending request is still there, the approver releases it, and the
client opens the stored value.  Replays of what was sent before the restart
(an access statement's jti, a signed HTTP request's nonce) are still refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import PG_URL, ApproverKeys, ClientKeys, RelayProcess, pg_schema, signed

from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import ItemMaterial, build_access, open_release, release, verify_access
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import AccessItem, ClientConstraints, ClientInfo, RequestContext
from sealbox.protocol.store import store_as_approver

SECRET = {"password": b"correct horse battery staple", "user": b"app"}
PATH = "app/prod/db"
CONTEXT = RequestContext(host="ci-7.example.com", user="deploy", argv=("deploy.sh",))


@pytest.fixture(params=["sqlite", "postgres"])
def db_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """`sealbox up` options: SQLite in the data directory, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield []
        return
    with pg_schema() as schema:
        assert PG_URL  # pg_schema has skipped (or failed, in CI) without it
        yield ["--db", PG_URL, "--db-schema", schema]


def _send(
    http: httpx.Client, method: str, url: str, *, by: ApproverKeys | ClientKeys, body: Any = None
) -> httpx.Response:
    return http.send(signed(http, method, url, by=by, body=body))


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json().get("error"))


def _b64(blobs: Any) -> dict[str, Any]:
    return {
        "ciphertexts": {f: b64u_encode(c) for f, c in blobs.ciphertexts.items()},
        "wraps": {a: {f: b64u_encode(w) for f, w in fs.items()} for a, fs in blobs.wraps.items()},
    }


def test_pending_request_survives_a_restart(tmp_path: Path, db_args: list[str]) -> None:
    data_dir = tmp_path / "relay-data"
    approver, machine = ApproverKeys(), ClientKeys()
    first = RelayProcess(data_dir, *db_args)
    try:
        with httpx.Client(base_url=first.url) as http:
            vault = http.get("/v1/vault").json()["vault"]
            base = f"/v1/vaults/{vault}"
            now = int(time.time())
            link0 = dirs.genesis_link(vault, approver.record, approver.sig, now=now)
            setup = http.post(f"{base}/setup",
                              json={"setup_token": first.setup_token(), "link": link0})  # fmt: skip
            assert setup.status_code == 201, setup.text
            directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))

            # The approver certifies and registers a machine, and grants it the project.
            info = ClientInfo(id=machine.id, kind="machine", name="ci runner",
                              sig_pk=machine.sig.verify_key())  # fmt: skip
            certificate = issue_certificate(
                directory, issuer=approver.id, key=approver.sig, client=info, scopes=["read"],
                constraints=ClientConstraints(not_after=now + 86400), now=now,
            )  # fmt: skip
            register = signed(http, "POST", f"{base}/clients", by=approver,
                              body={"certificate": certificate})  # fmt: skip
            registered = http.send(register)
            assert registered.status_code == 201, registered.text
            assert registered.json()["id"] == machine.id
            grant = _send(http, "POST", f"{base}/clients/{machine.id}/grants", by=approver,
                          body={"pattern": "app/*/*"})  # fmt: skip
            assert grant.status_code == 201, grant.text

            # The approver stores an item directly.
            item = ids.new_id(ids.ITEM)
            direct = store_as_approver(
                directory=directory, approver=approver.id, key=approver.sig, item=item,
                path=PATH, version=1, prev=None, values=SECRET, approvers=[approver.id],
                threshold=1, now=now,
            )  # fmt: skip
            stored = _send(http, "POST", f"{base}/items", by=approver,
                           body={"manifest": direct.manifest, **_b64(direct)})  # fmt: skip
            assert stored.status_code == 201, stored.text

            # The machine asks for the password.
            access = build_access(
                client=machine.id, key=machine.sig, vault=vault,
                items=[AccessItem(item=item, path=PATH, version=None, fields=("password",))],
                purpose="run the nightly migration", context=CONTEXT, now=now, ttl=300,
            )  # fmt: skip
            ask = signed(http, "POST", f"{base}/access-requests", by=machine,
                         body={"statement": access.token})  # fmt: skip
            created = http.send(ask)
            assert created.status_code == 201, created.text
            request_id = created.json()["id"]
            assert created.json()["state"] == "pending"
    finally:
        output = first.stop()
    assert first.returncode == 0, output
    assert "sealbox relay stopped." in output

    # Same port and data: signatures cover the target URI, so old requests stay replayable.
    second = RelayProcess(data_dir, *db_args, port=first.port)
    try:
        assert second.setup_token() is None
        with httpx.Client(base_url=second.url) as http:
            status = _send(http, "GET", f"{base}/access-requests/{request_id}", by=machine)
            assert status.status_code == 200, status.text
            assert status.json()["state"] == "pending"

            # Replays of what was sent before the restart are refused after it.
            assert _error(http.send(ask)) == (401, "signature_replayed")
            assert _error(http.send(register)) == (401, "signature_replayed")
            again = _send(http, "POST", f"{base}/access-requests", by=machine,
                          body={"statement": access.token})  # fmt: skip
            assert _error(again) == (409, "replay")

            # The machine long-polls while the approver releases: it wakes at once.
            def wait_for_answer() -> tuple[httpx.Response, float]:
                with httpx.Client(base_url=second.url, timeout=30) as waiter:
                    url = f"{base}/access-requests/{request_id}?wait=20"
                    response = waiter.send(signed(waiter, "GET", url, by=machine))
                    return response, time.monotonic()

            with ThreadPoolExecutor(max_workers=1) as pool:
                started = time.monotonic()
                waiting = pool.submit(wait_for_answer)
                time.sleep(0.5)
                assert not waiting.done()

                # The approver checks what it is asked for, as served, and releases.
                listed = _send(http, "GET", f"{base}/approvals", by=approver)
                assert listed.status_code == 200, listed.text
                [entry] = [r for r in listed.json()["requests"] if r["id"] == request_id]
                now = int(time.time())
                verified = verify_access(entry["statement"], directory=directory,
                                         certificate=entry["certificate"], now=now,
                                         enrollment=entry["enrollment"])  # fmt: skip
                assert verified.statement.jti == access.statement.jti
                materials = {
                    i: ItemMaterial(manifest=m["manifest"],
                                    wraps={f: b64u_decode(w) for f, w in m["wraps"].items()})
                    for i, m in entry["items"].items()
                }  # fmt: skip
                token = release(verified, materials=materials, directory=directory,
                                approver=approver.id, hpke_key=approver.hpke, key=approver.sig,
                                now=now)  # fmt: skip
                released = _send(http, "POST", f"{base}/access-requests/{request_id}/release",
                                 by=approver, body={"release": token})  # fmt: skip
                assert released.status_code == 200, released.text
                assert released.json()["state"] == "released"

                answer, woke = waiting.result(timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["state"] == "released"
            assert woke - started < 5, f"the long poll took {woke - started:.1f}s"

            # The machine takes delivery and opens the value it stored before the restart.
            envelope = f"{base}/access-requests/{request_id}/envelope"
            delivered = _send(http, "POST", envelope, by=machine)
            assert delivered.status_code == 200, delivered.text
            body = delivered.json()
            opened = open_release(
                access, releases=body["releases"], manifests=body["manifests"],
                ciphertexts={i: {f: b64u_decode(c) for f, c in fs.items()}
                             for i, fs in body["ciphertexts"].items()},
                directory=directory,
            )  # fmt: skip
            assert opened.values == {item: {"password": SECRET["password"]}}
            assert opened.paths == {item: PATH}
            twice = _send(http, "POST", envelope, by=machine)
            assert _error(twice) == (410, "already_delivered")
    finally:
        output = second.stop()
    assert second.returncode == 0, output
    assert "sealbox relay stopped." in output


def test_ctrl_c_closes_the_database_cleanly(tmp_path: Path, db_args: list[str]) -> None:
    relay = RelayProcess(tmp_path / "relay-data", *db_args)
    output = relay.stop()
    assert relay.returncode == 0, output
    assert "sealbox relay stopped." in output
    assert "Traceback" not in output, output
