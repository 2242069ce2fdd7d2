"""Teams end to end: a person invited with each role, logged in, approved, and held to the role.

Real processes: `sealbox up`, `sealbox approver init`, `sealbox approver invite`,
`sealbox login --invite`, the item commands and `sealbox member ...`.  The test
plays the approver's device for answering (as test_e2e_login.py does): it loads
the key file `approver init` wrote, checks what the relay lists, and signs.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from test_e2e_login import PASSPHRASE, Login, _cli, _env, _pending, _signed
from test_e2e_up import SEALBOX, Relay

from sealbox._relay.httpsig import sign_request
from sealbox.approver import keystore
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.members import invite_scopes
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import VerifyKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import deny
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo
from sealbox.protocol.store import (
    StoreUpload,
    sign_manifest,
    store_as_approver,
    verify_store,
)

DAY = 86400
ROLES = ("viewer", "writer", "machine-admin", "policy-admin")


def _directory(http: httpx.Client, keys: ApproverKeys) -> dirs.Directory:
    links = http.get(f"/v1/vaults/{keys.vault}/directory").json()["links"]
    return dirs.verify_directory(links, pinned=keys.fingerprint)


def _send(http: httpx.Client, keys: ApproverKeys, method: str, url: str, **kw: Any) -> Any:
    request = http.build_request(method, url, **kw)
    sign_request(request, key=keys.sig, key_id=keys.record.id)
    return http.send(request)


def _store_direct(http: httpx.Client, keys: ApproverKeys, path: str) -> None:
    direct = store_as_approver(
        directory=_directory(http, keys), approver=keys.record.id, key=keys.sig,
        item=ids.new_id(ids.ITEM), path=path, version=1, prev=None,
        values={"password": b"hunter2-" + path.encode()}, approvers=[keys.record.id],
        threshold=1, now=int(time.time()),
    )  # fmt: skip
    body = {
        "manifest": direct.manifest,
        "ciphertexts": {f: b64u_encode(c) for f, c in direct.ciphertexts.items()},
        "wraps": {a: {f: b64u_encode(w) for f, w in fs.items()} for a, fs in direct.wraps.items()},
    }  # fmt: skip
    response = _send(http, keys, "POST", f"/v1/vaults/{keys.vault}/items", json=body)
    assert response.status_code == 201, response.text


def _approve_invited(http: httpx.Client, keys: ApproverKeys, entry: dict[str, Any]) -> None:
    """Certify an invited login with exactly the role the relay lists for it."""
    scopes = invite_scopes(entry)
    assert scopes is not None
    client = ClientInfo(id=entry["client_id"], kind="human", name=entry["client_name"],
                        sig_pk=VerifyKey.from_text(entry["sig_pk"]))  # fmt: skip
    now = int(time.time())
    certificate = issue_certificate(
        _directory(http, keys), issuer=keys.record.id, key=keys.sig, client=client,
        scopes=scopes, constraints=ClientConstraints(not_after=now + 30 * DAY), now=now,
    )  # fmt: skip
    url = f"/v1/vaults/{keys.vault}/device-requests/{entry['user_code']}/approve"
    assert _signed(http, keys, "POST", url, json={"certificate": certificate})["state"] == (
        "approved"
    )


def _waiting(http: httpx.Client, keys: ApproverKeys, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [r for r in _signed(http, keys, "GET", f"/v1/vaults/{keys.vault}/approvals")
                 ["requests"] if r["kind"] == kind]  # fmt: skip
        if found:
            return dict(found[0])
        time.sleep(0.2)
    raise AssertionError(f"no {kind} request arrived")


def _sign_store(http: httpx.Client, keys: ApproverKeys, entry: dict[str, Any]) -> None:
    upload = StoreUpload(
        statement=entry["statement"],
        ciphertexts={f: b64u_decode(c) for f, c in entry["ciphertexts"].items()},
        wraps={a: {f: b64u_decode(w) for f, w in fs.items()} for a, fs in entry["wraps"].items()},
    )  # fmt: skip
    directory = _directory(http, keys)
    now = int(time.time())
    verified = verify_store(
        upload, directory=directory, approver=keys.record.id, hpke_key=keys.hpke,
        certificate=entry["certificate"], now=now, prev_manifest=entry["prev_manifest"],
        enrollment=entry["enrollment"],
    )  # fmt: skip
    manifest = sign_manifest(verified, directory=directory, approver=keys.record.id,
                             key=keys.sig, now=now)  # fmt: skip
    url = f"/v1/vaults/{keys.vault}/store-requests/{entry['id']}/manifest"
    assert _send(http, keys, "POST", url, json={"manifest": manifest}).status_code == 200


def _deny(http: httpx.Client, keys: ApproverKeys, entry: dict[str, Any]) -> None:
    token = deny("sha256:" + entry["id"], directory=_directory(http, keys),
                 approver=keys.record.id, key=keys.sig, reason="members read through releases",
                 now=int(time.time()))  # fmt: skip
    url = f"/v1/vaults/{keys.vault}/{entry['kind']}-requests/{entry['id']}/deny"
    assert _send(http, keys, "POST", url, json={"deny": token}).status_code == 200


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SEALBOX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env=_env(config),
    )  # fmt: skip


def _bearer(config: Path, profile: str) -> tuple[str, str]:
    saved = json.loads((config / "profiles" / f"{profile}.json").read_text())
    return saved["client"]["id"], saved["access_token"]


def test_a_member_invited_with_each_role_is_held_to_it(tmp_path: Path) -> None:
    approver_config, people = tmp_path / "approver", tmp_path / "people"
    relay = Relay(tmp_path / "relay")
    try:
        init = _cli(approver_config, "approver", "init", "--server", relay.url,
                    "--setup-token", relay.setup_token() or "")  # fmt: skip
        assert init.returncode == 0, init.stderr
        vault = httpx.get(f"{relay.url}/v1/vault").json()["vault"]
        keys = keystore.load(approver_config / "approvers" / f"{vault}.json", PASSPHRASE)
        http = httpx.Client(base_url=relay.url, timeout=30)
        _store_direct(http, keys, "shop/prod/db")
        _store_direct(http, keys, "blog/prod/db")

        # An unknown invite is refused before anything waits for an approver.
        bogus = _cli(people, "login", "--server", relay.url, "--invite", "sbx_inv_" + "x" * 43)
        assert bogus.returncode == 1, bogus.stdout + bogus.stderr
        assert "invite code is unknown" in bogus.stderr

        members: dict[str, str] = {}
        for role in ROLES:
            invited = _cli(approver_config, "approver", "invite", "--project", "shop",
                           "--role", role, "--expires", "1h")  # fmt: skip
            assert invited.returncode == 0, invited.stderr
            code = re.search(r"--invite (sbx_inv_\S+)", invited.stdout)
            assert code, invited.stdout
            login = Login(relay, people, "--invite", code.group(1), "--profile", role)
            user_code = login.wait_for(r"User code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
            login.wait_for(rf"Invited as:\s+{role} of project shop")
            entry = _pending(http, keys, user_code)
            assert (entry["project"], entry["role"]) == ("shop", role)
            _approve_invited(http, keys, entry)
            rc, out, err = login.finish()
            assert rc == 0, out + err
            assert f"role:shop:{role}" in out
            members[role] = entry["client_id"]
            # The code worked once: a second login with it is refused at once, whether the
            # code comes on the command line, on standard input or in the environment (one
            # way per role: logins started from one address are rate limited).
            how = {"writer": "stdin", "machine-admin": "env"}.get(role, "argv")
            again = subprocess.run(
                [*SEALBOX, "login", "--server", relay.url, "--profile", f"{role}-again",
                 *{"argv": ["--invite", code.group(1)], "stdin": ["--invite", "-"]}.get(how, [])],
                input=code.group(1) + "\n" if how == "stdin" else None,
                stdin=None if how == "stdin" else subprocess.DEVNULL,
                env={**_env(people), **({"SEALBOX_INVITE": code.group(1)} if how == "env"
                                       else {})},
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert again.returncode == 1, (how, again.stdout, again.stderr)
            assert "already used" in again.stderr, how

        for role in ROLES:
            # Every role sees the project's items and their history, and no other project's.
            listed = _cli(people, "ls", "--json", "--profile", role)
            assert listed.returncode == 0, listed.stderr
            paths = {i["path"] for i in json.loads(listed.stdout)}
            assert "shop/prod/db" in paths
            assert paths <= {"shop/prod/db", "shop/dev/api"}  # what the writer stored
            history = _cli(people, "history", "sealbox://shop/prod/db", "--profile", role)
            assert history.returncode == 0, history.stderr
            other = _cli(people, "history", "sealbox://blog/prod/db", "--profile", role)
            assert other.returncode != 0

            # Policies of the project: policy admins only, never another project's.
            client_id, token = _bearer(people, role)
            auth = {"authorization": f"Bearer {token}"}
            body = {"pattern": "shop/prod/*", "approvers": [keys.record.id], "threshold": 1}
            put = http.put(f"/v1/vaults/{vault}/policies", json=body, headers=auth)
            if role == "policy-admin":
                assert put.status_code == 200, put.text
            else:
                assert (put.status_code, put.json()["error"]) == (403, "role_required")
                assert put.json()["hint"]
            blog = http.put(f"/v1/vaults/{vault}/policies", headers=auth,
                            json={**body, "pattern": "blog/prod/*"})  # fmt: skip
            assert (blog.status_code, blog.json()["error"]) == (403, "role_required")
            # The same with `sealbox policy`, as the member's own login.
            setting = _cli(people, "policy", "set", "shop/dev/*", "--approvers", keys.record.id,
                           "--profile", role)  # fmt: skip
            if role == "policy-admin":
                assert setting.returncode == 0, setting.stderr
                shown = _cli(people, "policy", "list", "--profile", role)
                assert "shop/dev/*  1 of " in shown.stdout, shown.stdout
                removed = _cli(people, "policy", "remove", "shop/dev/*", "--profile", role)
                assert removed.returncode == 0, removed.stderr
            else:
                assert setting.returncode != 0
                assert "policy-admin role in project shop" in setting.stderr
            listed_policies = _cli(people, "policy", "list", "--profile", role)
            assert listed_policies.returncode == 0, listed_policies.stderr
            assert "blog/" not in listed_policies.stdout

            # Machines: a machine admin makes bootstrap tokens for the project, with its login.
            token = _cli(people, "machine", "token", "create", "--name", "api", "--grant",
                         "shop/prod/*", "--profile", role)  # fmt: skip
            if role == "machine-admin":
                assert token.returncode == 0, token.stderr
                assert re.search(
                    r"SEALBOX_BOOTSTRAP_TOKEN=sbx_bt_\S+ sealbox machine register "
                    rf"--server {relay.url}",
                    token.stdout,
                ), token.stdout
            else:
                assert token.returncode != 0
                assert "machine-admin role in project shop" in token.stderr
            other_project = _cli(people, "machine", "token", "create", "--name", "blog",
                                 "--grant", "blog/prod/*", "--profile", role)  # fmt: skip
            assert other_project.returncode != 0
            assert "machine-admin role in project blog" in other_project.stderr

            # Storing: a writer's store waits for an approver's manifest; others are refused.
            value = tmp_path / "value"
            value.write_text("s3cret")
            if role == "writer":
                proc = _start(people, "store", "sealbox://shop/dev/api", "--field",
                              f"token=@{value}", "--profile", role)  # fmt: skip
                _sign_store(http, keys, _waiting(http, keys, "store"))
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, out + err
            else:
                refused = _cli(people, "store", "sealbox://shop/dev/api", "--field",
                               f"token=@{value}", "--profile", role)  # fmt: skip
                assert refused.returncode != 0
                assert "writer role in project shop" in refused.stderr
            elsewhere = _cli(people, "store", "sealbox://blog/dev/api", "--field",
                             f"token=@{value}", "--profile", role)  # fmt: skip
            assert elsewhere.returncode != 0

            # Reading: a viewer may not even ask; the others ask, and only a release reads.
            if role == "viewer":
                read = _cli(people, "read", "sealbox://shop/prod/db/password", "--profile", role)
                assert read.returncode != 0
                assert "role in project shop" in read.stderr
                assert "hunter2" not in read.stdout
            else:
                proc = _start(people, "read", "sealbox://shop/prod/db/password", "--profile", role)
                _deny(http, keys, _waiting(http, keys, "access"))
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 3, out + err  # denied
                assert "hunter2" not in out
            assert client_id == members[role]

        # The refusals were audited (throttled per sender and error), the members as actors.
        events = _signed(http, keys, "GET", f"/v1/vaults/{vault}/audit",
                         params={"action": "request.refused"})["events"]  # fmt: skip
        refused = {e["actor"] for e in events if e["detail"]["error"] == "role_required"}
        assert refused
        assert refused <= set(members.values())

        # The approver lists the members from their verified certificates.
        listed = _cli(approver_config, "member", "list")
        assert listed.returncode == 0, listed.stderr
        for role, client_id in members.items():
            assert re.search(rf"{client_id} .*shop: {role}", listed.stdout), listed.stdout

        # A role change holds at once: the writer becomes a viewer and can no longer store.
        writer = members["writer"]
        changed = _cli(approver_config, "member", "set-role", writer, "--project", "shop",
                       "--role", "viewer")  # fmt: skip
        assert changed.returncode == 0, changed.stderr
        value = tmp_path / "value"
        refused = _cli(people, "store", "sealbox://shop/dev/api", "--field", f"token=@{value}",
                       "--profile", "writer")  # fmt: skip
        assert refused.returncode != 0
        assert "writer role in project shop" in refused.stderr

        # Revoking the last role disables the client: its session ends now.
        revoked = _cli(approver_config, "member", "revoke", members["viewer"])
        assert revoked.returncode == 0, revoked.stderr
        assert "disabled" in revoked.stdout
        gone = _cli(people, "whoami", "--profile", "viewer")
        assert gone.returncode == 6, gone.stdout + gone.stderr
        listed = _cli(approver_config, "member", "list")
        assert members["viewer"] not in listed.stdout
        assert re.search(rf"{writer} .*shop: viewer", listed.stdout), listed.stdout
        http.close()
    finally:
        relay.stop()


def test_sealbox_approve_shows_the_invited_role_and_certifies_exactly_it(tmp_path: Path) -> None:
    """The person's `sealbox login --invite` and the approver's `sealbox approve`, both typed."""
    from loop_support import Deployment, env_for
    from test_e2e_terminal import CONFIRM, Started

    d = Deployment(tmp_path)
    started = Started()
    try:
        invited = d.approver_cli("approver", "invite", "--project", "shop", "--role",
                                 "policy-admin")  # fmt: skip
        assert invited.returncode == 0, invited.stderr
        code = re.search(r"--invite (sbx_inv_\S+)", invited.stdout)
        assert code, invited.stdout
        login = started.terminal(["login", "--server", d.url, "--name", "ana@desk", "--invite",
                                  code.group(1)], env_for(tmp_path / "ana"))  # fmt: skip
        user_code = login.match(r"User code:\s+([A-Z]{4}-[A-Z]{4})\r\n").group(1)
        client = login.match(r"Client id:\s+(cli_\w+)\r\n").group(1)
        login.expect("Invited as:             policy-admin of project shop")

        approve, _ = started.approve(d)
        approve.expect(f"=== LOGIN {user_code} ")
        approve.expect("Type the user code to approve, 'no' to deny, Enter to skip: ")
        shown = approve.since(f"=== LOGIN {user_code} ")
        assert ("  invited as:   policy-admin of project shop (scopes items:shop/*/* "
                "read role:shop:policy-admin)") in shown  # fmt: skip
        approve.type(user_code)
        # No grant is asked for: a member's project is its grant, held to its role.
        approve.expect(CONFIRM)
        assert "Items this person may ask for" not in approve.since(f"=== LOGIN {user_code} ")
        approve.type(PASSPHRASE)
        approve.expect(f"Login {user_code} approved: {client} certified as policy-admin of shop.")
        assert login.finish() == 0
        assert "role:shop:policy-admin" in login.since("Logged in as")
        assert approve.stop() == 0
        listed = d.approver_cli("member", "list")
        assert re.search(rf"{client}  ana@desk  shop: policy-admin", listed.stdout), listed.stdout
    finally:
        started.end()
        d.close()
