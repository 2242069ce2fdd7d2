"""Cross-checks between the Python protocol and the browser approver's ES modules.

Python builds a real world (fresh random keys: a directory, a certified client, stored
items, access requests) with :mod:`sealbox.protocol`; the browser modules, run in Node
through ``tests/js/interop/approver.mjs``, act as an approver holding a key handed to
them, and Python checks what they sign: releases open to the stored values, manifests,
links and certificates verify, tampered requests are refused with the right code.

Secret values are compared by digest and private keys go to Node on stdin only, so no
secret appears in test output, even when a test fails.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, b64u_encode, canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import SealboxError
from sealbox.protocol import access, directory, ids, store
from sealbox.protocol import certificates as certs
from sealbox.protocol.statements import (
    AccessItem,
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    EnrollmentConstraints,
    RequestContext,
)

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "js" / "interop" / "approver.mjs"
NODE = shutil.which("node")

# Node is required, not optional (as in test_js_modules.py): a skipped cross-check would
# look like a passing one while the two implementations drifted apart.

CONTEXT = RequestContext(
    host="build-7.example.com",
    user="ci",
    uid=1000,
    pid=4242,
    ppid=1,
    exe="/usr/bin/sealbox",
    exe_sha256="ab" * 32,
    argv=("sealbox", "run", "--", "psql"),
    cwd="/srv/app",
    agent_session=None,
)


def js(op: str, **request: Any) -> dict[str, Any]:
    """Run one op of the browser approver; its answer as JSON (never echoing the request)."""
    if NODE is None:
        pytest.fail("node is not installed: the browser approver cannot be cross-checked")
    done = subprocess.run(
        [NODE, str(SCRIPT)],
        input=json.dumps({"op": op, **request}).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"node failed on {op}: {done.stderr.decode(errors='replace')[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def fp(value: bytes) -> str:
    """What a test shows of a secret value: its digest."""
    return hashlib.sha256(value).hexdigest()


@dataclass
class Approver:
    record: ApproverRecord
    sig: SigningKey
    hpke: HpkePrivateKey

    @property
    def id(self) -> str:
        return self.record.id

    def secrets(self) -> dict[str, str]:
        return {"sig_sk": self.sig.to_text(), "hpke_sk": self.hpke.to_text()}


def new_approver(name: str, kind: str = "terminal") -> Approver:
    sig, hpke_key = SigningKey.generate(), HpkePrivateKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER),
        name=name,
        kind=kind,
        tier="device",
        hpke_pk=hpke_key.public_key(),
        sig_pk=sig.verify_key(),
    )
    return Approver(record, sig, hpke_key)


@dataclass
class World:
    now: int
    vault: str
    py: Approver
    """The approver Python plays."""
    web: Approver
    """The approver the browser modules play."""
    links: list[str]
    directory: directory.Directory
    client_key: SigningKey
    client: str
    certificate: str

    def js_directory(self) -> dict[str, Any]:
        return {"links": self.links, "pinned": self.directory.fingerprint}


@pytest.fixture
def world() -> World:
    now = int(time.time())
    vault = ids.new_id(ids.VAULT)
    py, web = new_approver("ops terminal"), new_approver("Ana's browser", "browser")
    links = [directory.genesis_link(vault, py.record, py.sig, now=now - 100)]
    d = directory.verify_directory(links, pinned=directory.vault_fingerprint(links[0]))
    links.append(
        directory.append_link(d, "add", web.record, signer=py.id, key=py.sig, now=now - 90)
    )
    d = directory.verify_directory(links, pinned=d.fingerprint)
    client_key = SigningKey.generate()
    client = ids.new_id(ids.CLIENT)
    certificate = certs.issue_certificate(
        d,
        issuer=py.id,
        key=py.sig,
        client=ClientInfo(
            id=client, kind="agent", name="ci runner", sig_pk=client_key.verify_key()
        ),
        scopes=["read", "write"],
        constraints=ClientConstraints(not_after=now + 3600, hostname="build-*.example.com"),
        now=now - 80,
    )
    return World(now, vault, py, web, links, d, client_key, client, certificate)


@dataclass
class Stored:
    item: str
    path: str
    manifest: str
    values: dict[str, bytes]
    ciphertexts: dict[str, bytes]
    wraps: dict[str, dict[str, bytes]]


def client_store(w: World, path: str, values: dict[str, bytes], threshold: int) -> Stored:
    """A client stores an item over both approvers; Python's approver signs the manifest."""
    item = ids.new_id(ids.ITEM)
    upload = store.build_store(
        client=w.client, key=w.client_key, directory=w.directory, item=item, path=path,
        version=1, prev=None, values=values, approvers=[w.py.id, w.web.id],
        threshold=threshold, purpose="initial setup", context=CONTEXT, now=w.now,
    )  # fmt: skip
    verified = store.verify_store(
        upload, directory=w.directory, approver=w.py.id, hpke_key=w.py.hpke,
        certificate=w.certificate, now=w.now,
    )  # fmt: skip
    manifest = store.sign_manifest(
        verified, directory=w.directory, approver=w.py.id, key=w.py.sig, now=w.now
    )
    return Stored(item, path, manifest, values, dict(upload.ciphertexts),
                  {a: dict(f) for a, f in upload.wraps.items()})  # fmt: skip


def ask(w: World, stored: list[Stored], *, purpose: str = "nightly job") -> access.AccessRequest:
    items = [AccessItem(s.item, s.path, None, tuple(sorted(s.values))) for s in stored]
    return access.build_access(
        client=w.client, key=w.client_key, vault=w.vault, items=items, purpose=purpose,
        context=CONTEXT, now=w.now,
    )  # fmt: skip


def entry(w: World, token: str, stored: list[Stored], approver: str) -> dict[str, Any]:
    """An /approvals entry for an access request, as the relay serves it to ``approver``."""
    request_id = jws.statement_hash(token).removeprefix("sha256:")
    return {
        "kind": "access",
        "id": request_id,
        "certificate": w.certificate,
        "statement": token,
        "items": {
            s.item: {
                "manifest": s.manifest,
                "wraps": {f: b64u_encode(b) for f, b in s.wraps[approver].items()},
            }
            for s in stored
        },
    }


def js_release(w: World, token: str, stored: list[Stored]) -> dict[str, Any]:
    return js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
              entry=entry(w, token, stored, w.web.id), now=w.now)  # fmt: skip


def open_values(w: World, req: access.AccessRequest, releases: list[str],
                stored: list[Stored]) -> dict[str, dict[str, str]]:  # fmt: skip
    out = access.open_release(
        req, releases=releases, manifests={s.item: s.manifest for s in stored},
        ciphertexts={s.item: s.ciphertexts for s in stored}, directory=w.directory,
    )  # fmt: skip
    return {i: {f: fp(v) for f, v in fv.items()} for i, fv in out.values.items()}


def expected(stored: list[Stored]) -> dict[str, dict[str, str]]:
    return {s.item: {f: fp(v) for f, v in s.values.items()} for s in stored}


# --- JS releases what Python stored -----------------------------------------------------------


def test_js_release_opens_in_python_one_of_two(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"user": b"app", "password": b"correct horse"}, 1)
    api = client_store(w, "app/prod/api", {"token": b"sk_live_" + bytes(range(40))}, 1)
    req = ask(w, [db, api])
    answer = js_release(w, req.token, [db, api])
    assert "error" not in answer, answer
    assert answer["purpose"] == "nightly job"
    assert answer["paths"] == ["app/prod/db", "app/prod/api"]
    assert open_values(w, req, [answer["release"]], [db, api]) == expected([db, api])


def test_js_and_python_releases_combine_two_of_two(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"password": b"battery staple"}, 2)
    req = ask(w, [db])
    verified = access.verify_access(req.token, directory=w.directory, certificate=w.certificate,
                                    now=w.now)  # fmt: skip
    py_release = access.release(
        verified, materials={db.item: access.ItemMaterial(db.manifest, db.wraps[w.py.id])},
        directory=w.directory, approver=w.py.id, hpke_key=w.py.hpke, key=w.py.sig, now=w.now,
    )  # fmt: skip
    answer = js_release(w, req.token, [db])
    assert "error" not in answer, answer
    with pytest.raises(SealboxError) as one_only:
        open_values(w, req, [py_release], [db])
    assert one_only.value.code == "threshold_not_met"
    assert open_values(w, req, [py_release, answer["release"]], [db]) == expected([db])


# --- JS refuses tampered requests ---------------------------------------------------------------


def test_js_verifies_an_enrolled_machines_chain_and_names_its_approver(world: World) -> None:
    """A CI machine's certificate is signed by an enrollment's delegation key: the browser
    verifies the chain to the approver who signed the enrollment, and names that approver."""
    w = world
    db = client_store(w, "shop/ci/db", {"password": b"correct horse"}, 1)
    delegation, enrollment_id = SigningKey.generate(), ids.new_id(ids.ENROLLMENT)
    statement = certs.issue_enrollment(
        w.directory, issuer=w.py.id, key=w.py.sig, enrollment_id=enrollment_id,
        delegation_key=delegation.verify_key(),
        constraints=EnrollmentConstraints(projects=("shop",), items=("shop/ci/*",), max_uses=5,
                                          not_after=w.now + 3600),
        now=w.now - 10,
    )  # fmt: skip
    enrollment = certs.verify_enrollment(statement, w.directory, now=w.now)
    machine_key, machine = SigningKey.generate(), ids.new_id(ids.CLIENT)
    certificate = certs.issue_machine_certificate(
        enrollment, delegation_key=delegation,
        client=ClientInfo(id=machine, kind="machine", name="ci run 7",
                          sig_pk=machine_key.verify_key()),
        scopes=["read"], constraints=ClientConstraints(not_after=w.now + 600), now=w.now - 5,
    )  # fmt: skip
    m = replace(w, client=machine, client_key=machine_key, certificate=certificate)
    req = ask(m, [db])
    listed = {**entry(m, req.token, [db], w.web.id), "enrollment": statement}
    answer = js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
                entry=listed, now=w.now)  # fmt: skip
    assert "error" not in answer, answer
    assert (answer["issuer"], answer["enrolled_by"]) == (enrollment_id, w.py.id)
    assert open_values(m, req, [answer["release"]], [db]) == expected([db])
    # Without its enrollment the chain does not verify: refused, nothing released.
    answer = js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
                entry={**listed, "enrollment": None}, now=w.now)  # fmt: skip
    assert answer["error"] == "certificate_invalid"
    assert "release" not in answer
    # Nor beyond it: an item outside the enrollment's items.
    other = client_store(w, "shop/prod/db", {"password": b"other"}, 1)
    outside = ask(m, [other])
    answer = js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
                entry={**entry(m, outside.token, [other], w.web.id), "enrollment": statement},
                now=w.now)  # fmt: skip
    assert answer["error"] == "certificate_invalid"


def test_an_enrollment_made_in_the_browser_verifies_in_python(world: World) -> None:
    """The console's enrollment: Python verifies the statement and parses the token, whose
    key is the statement's delegation key."""
    from sealbox.protocol.enrollment_token import parse_token

    w = world
    limits = {
        "projects": ["shop"],
        "items": ["shop/ci/b", "shop/ci/a"],
        "max_uses": 3,
        "not_after": w.now + 3600,
        "cidrs": ["10.0.0.0/8"],
        "hostname": "runner-*",
    }
    made = js("enroll", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
              constraints=limits, server="https://relay.example.com/", now=w.now)  # fmt: skip
    assert "error" not in made, made
    enrollment = certs.verify_enrollment(made["statement"], w.directory, now=w.now)
    token = parse_token(made["token"])
    assert enrollment.issuer == w.web.id
    assert enrollment.constraints.items == ("shop/ci/a", "shop/ci/b")
    assert (enrollment.constraints.max_uses, enrollment.constraints.hostname) == (3, "runner-*")
    assert (token.server, token.vault, token.fingerprint) == (
        "https://relay.example.com", w.vault, w.directory.fingerprint)  # fmt: skip
    assert token.enrollment == enrollment.id
    assert token.key.verify_key() == enrollment.sig_pk
    # The browser refuses to sign what a verifier would refuse.
    bad = js("enroll", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
             constraints={**limits, "items": ["shop/ci"]}, server="https://r.example",
             now=w.now)  # fmt: skip
    assert bad["error"] == "malformed"


def _retoken(token: str, **changes: Any) -> str:
    """The token with its payload changed and the client's signature kept (a relay's edit)."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64u_decode(payload))
    claims.update(changes)
    return f"{header}.{b64u_encode(canonical_json(claims))}.{signature}"


def test_js_refuses_a_swapped_one_time_key(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"password": b"correct horse"}, 1)
    req = ask(w, [db])
    swapped = _retoken(req.token, epk=HpkePrivateKey.generate().public_key().to_text())
    answer = js_release(w, swapped, [db])
    assert answer["error"] == "signature_invalid"
    assert "release" not in answer
    # The refusal is a deny Python verifies, with grounds "unverifiable", for the id listed.
    listed = "sha256:" + entry(w, swapped, [db], w.web.id)["id"]
    deny = access.verify_deny(answer["deny"], directory=w.directory, request_hash=listed)
    assert deny.grounds == "unverifiable"
    assert deny.reason == "the request does not verify: signature_invalid"


def test_js_refuses_another_items_manifest(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"password": b"correct horse"}, 1)
    other = client_store(w, "app/prod/cache", {"password": b"other"}, 1)
    req = ask(w, [db])
    # The relay serves another item's manifest and wraps (same field name) for the one asked.
    forged = entry(w, req.token, [db], w.web.id)
    forged["items"][db.item] = entry(w, req.token, [other], w.web.id)["items"][other.item]
    answer = js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
                entry=forged, now=w.now)  # fmt: skip
    assert answer["error"] == "binding_mismatch"
    assert "release" not in answer
    denied = access.verify_deny(answer["deny"], directory=w.directory,
                                request_hash="sha256:" + forged["id"])  # fmt: skip
    assert denied.grounds == "unverifiable"


def test_js_refuses_a_wrap_that_is_not_the_signed_one(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"user": b"app", "password": b"correct horse"}, 1)
    req = ask(w, [db])
    forged = entry(w, req.token, [db], w.web.id)
    wraps = forged["items"][db.item]["wraps"]
    wraps["user"], wraps["password"] = wraps["password"], wraps["user"]
    answer = js("review_release", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
                entry=forged, now=w.now)  # fmt: skip
    assert answer["error"] == "manifest_mismatch"


def test_js_refuses_a_host_outside_the_certificate(world: World) -> None:
    w = world
    db = client_store(w, "app/prod/db", {"password": b"correct horse"}, 1)
    items = [AccessItem(db.item, db.path, None, ("password",))]
    req = access.build_access(
        client=w.client, key=w.client_key, vault=w.vault, items=items, purpose="p",
        context=replace(CONTEXT, host="laptop.example.com"), now=w.now,
    )  # fmt: skip
    assert js_release(w, req.token, [db])["error"] == "certificate_invalid"


# --- JS stores, signs links and certificates; Python verifies ------------------------------


def test_js_store_as_approver_verifies_and_releases_in_python(world: World) -> None:
    w = world
    item = ids.new_id(ids.ITEM)
    values = {"password": b"hunter2 " + bytes(range(200, 256)), "user": "zoë".encode()}
    out = js("store", **w.js_directory(), **w.web.secrets(), approver=w.web.id, item=item,
             path="app/prod/db", version=1,
             values={k: b64u_encode(v) for k, v in values.items()},
             approvers=[w.py.id, w.web.id], threshold=2, now=w.now)  # fmt: skip
    assert "error" not in out, out
    manifest = store.verify_manifest(out["manifest"], w.directory)
    assert (manifest.item, manifest.path, manifest.version) == (item, "app/prod/db", 1)
    assert manifest.store_request is None
    assert manifest.keyset.approvers == (w.py.id, w.web.id)
    assert manifest.keyset.threshold == 2
    stored = Stored(
        item, "app/prod/db", out["manifest"], values,
        {f: b64u_decode(c) for f, c in out["ciphertexts"].items()},
        {a: {f: b64u_decode(b) for f, b in fs.items()} for a, fs in out["wraps"].items()},
    )  # fmt: skip
    store.check_blobs(manifest.fields, manifest.keyset, stored.ciphertexts, stored.wraps)
    # Python's approver releases its share, the browser its own; Python opens both.
    req = ask(w, [stored])
    verified = access.verify_access(req.token, directory=w.directory, certificate=w.certificate,
                                    now=w.now)  # fmt: skip
    py_release = access.release(
        verified, materials={item: access.ItemMaterial(stored.manifest, stored.wraps[w.py.id])},
        directory=w.directory, approver=w.py.id, hpke_key=w.py.hpke, key=w.py.sig, now=w.now,
    )  # fmt: skip
    answer = js_release(w, req.token, [stored])
    assert "error" not in answer, answer
    assert open_values(w, req, [py_release, answer["release"]], [stored]) == expected([stored])


def test_js_verifies_a_python_store_and_signs_its_manifest(world: World) -> None:
    w = world
    item = ids.new_id(ids.ITEM)
    values = {"password": b"correct horse"}
    upload = store.build_store(
        client=w.client, key=w.client_key, directory=w.directory, item=item, path="app/prod/db",
        version=1, prev=None, values=values, approvers=[w.web.id, w.py.id], threshold=1,
        purpose="initial setup", context=CONTEXT, now=w.now,
    )  # fmt: skip
    request = {
        "statement": upload.statement, "certificate": w.certificate,
        "ciphertexts": {f: b64u_encode(c) for f, c in upload.ciphertexts.items()},
        "wraps": {a: {f: b64u_encode(b) for f, b in fs.items()} for a, fs in upload.wraps.items()},
    }  # fmt: skip
    out = js("verify_store", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
             now=w.now, **request)  # fmt: skip
    assert "error" not in out, out
    manifest = store.verify_manifest(out["manifest"], w.directory)
    assert manifest.store_request == jws.statement_hash(upload.statement) == out["hash"]
    # Python's own manifest of the same upload differs only by its signer and kid.
    py_verified = store.verify_store(
        upload, directory=w.directory, approver=w.py.id, hpke_key=w.py.hpke,
        certificate=w.certificate, now=w.now,
    )  # fmt: skip
    py_manifest = store.sign_manifest(py_verified, directory=w.directory, approver=w.web.id,
                                      key=w.web.sig, now=w.now)  # fmt: skip
    assert out["manifest"] == py_manifest
    # A ciphertext altered on the way is refused.
    altered = bytearray(upload.ciphertexts["password"])
    altered[0] ^= 1
    request["ciphertexts"] = {"password": b64u_encode(bytes(altered))}
    out = js("verify_store", **w.js_directory(), **w.web.secrets(), approver=w.web.id,
             now=w.now, **request)  # fmt: skip
    assert out["error"] == "manifest_mismatch"


def test_js_link0_and_added_device_verify_in_python() -> None:
    now = int(time.time())
    vault = ids.new_id(ids.VAULT)
    first, second = new_approver("Ana's browser", "browser"), new_approver("ops terminal")
    out = js("genesis", vault=vault, record=first.record.to_json(), sig_sk=first.sig.to_text(),
             now=now)  # fmt: skip
    link0 = out["link"]
    assert link0 == directory.genesis_link(vault, first.record, first.sig, now=now)
    assert out["fingerprint"] == directory.vault_fingerprint(link0)
    assert out["safety_code"] == directory.vault_safety_code(link0)
    assert out["pairing_code"] == directory.pairing_code(first.record)
    d = directory.verify_directory([link0], pinned=out["fingerprint"])
    added = js("append", links=[link0], link_op="add", record=second.record.to_json(),
               sig_sk=first.sig.to_text(), signer=first.id, now=now + 1)  # fmt: skip
    assert added["link"] == directory.append_link(d, "add", second.record, signer=first.id,
                                                  key=first.sig, now=now + 1)  # fmt: skip
    d2 = directory.verify_directory([link0, added["link"]], pinned=out["fingerprint"])
    assert set(d2.approvers) == {first.id, second.id}
    # Adding it twice is refused before anything is signed.
    again = js("append", links=[link0, added["link"]], link_op="add",
               record=second.record.to_json(), sig_sk=first.sig.to_text(), signer=first.id,
               now=now + 2)  # fmt: skip
    assert again["error"] == "directory_broken"


def test_js_certificate_for_a_login_verifies_in_python(world: World) -> None:
    w = world
    cli_key = SigningKey.generate()
    login = {"client_id": ids.new_id(ids.CLIENT), "client_name": "ana@laptop",
             "sig_pk": cli_key.verify_key().to_text(), "user_code": "WXYZ-1234"}  # fmt: skip
    out = js("certify", **w.js_directory(), sig_sk=w.web.sig.to_text(), approver=w.web.id,
             login=login, now=w.now)  # fmt: skip
    cert = certs.verify_certificate(out["certificate"], w.directory, now=w.now)
    assert (cert.client.id, cert.client.kind, cert.client.name) == (
        login["client_id"], "human", "ana@laptop",
    )  # fmt: skip
    assert cert.client.sig_pk == cli_key.verify_key()
    assert cert.scopes == ("read", "write")
    assert cert.issuer == w.web.id
    assert cert.constraints.not_after == w.now + 30 * 86400
    assert cert.constraints.hostname is None
    assert cert.constraints.cidrs == ()
    # A name with a control character is refused, never signed.
    bad = js("certify", **w.js_directory(), sig_sk=w.web.sig.to_text(), approver=w.web.id,
             login={**login, "client_name": "ana\x1b[2Jroot"}, now=w.now)  # fmt: skip
    assert bad["error"] == "malformed"


def test_js_certifies_an_invited_login_with_exactly_its_role(world: World) -> None:
    from sealbox.protocol.members import member_scopes

    w = world
    login = {
        "client_id": ids.new_id(ids.CLIENT),
        "client_name": "bo@laptop",
        "sig_pk": SigningKey.generate().verify_key().to_text(),
        "user_code": "WXYZ-1234",
    }
    for role in ("viewer", "writer", "machine-admin", "policy-admin"):
        out = js(
            "certify",
            **w.js_directory(),
            sig_sk=w.web.sig.to_text(),
            approver=w.web.id,
            login={**login, "project": "shop", "role": role},
            now=w.now,
        )
        cert = certs.verify_certificate(out["certificate"], w.directory, now=w.now)
        assert cert.scopes == member_scopes({"shop": {role}}), role
    for bad in (
        {"project": "shop", "role": "owner"},
        {"project": "sh/op", "role": "viewer"},
        {"project": None, "role": "viewer"},
    ):
        refused = js(
            "certify",
            **w.js_directory(),
            sig_sk=w.web.sig.to_text(),
            approver=w.web.id,
            login={**login, **bad},
            now=w.now,
        )
        assert refused["error"] == "malformed", bad


# --- the small rules agree ---------------------------------------------------------------


def test_host_patterns_match_as_python_fnmatch() -> None:
    cases = [
        ("build-7.example.com", "build-*.example.com"),
        ("build-7", "build-?"),
        ("build-17", "build-?"),
        ("ci-a", "ci-[a-c]"),
        ("ci-d", "ci-[a-c]"),
        ("ci-d", "ci-[!a-c]"),
        ("ci-]", "ci-[]]"),
        ("ci-x", "ci-[]x]"),
        ("ci-[", "ci-["),
        ("ci-b", "ci-[c-a]"),
        ("ci--", "ci-[a-]"),
        ("a.b", "a?b"),
        ("a(b)", "a(b)"),
        ("a+b", "a+b"),
        ("x^y$", "x^y$"),
        ("x\\y", "x\\y"),
        ("x|y", "x[|]y"),
        ("héllo", "h?llo"),
        ("\U0001d49cb", "?b"),  # one code point outside the BMP
        ("anything", "*"),
        ("", "*"),
        ("a/b", "a*b"),
    ]
    out = js("fnmatch", cases=cases)["results"]
    assert out == [fnmatch.fnmatchcase(name, pattern) for name, pattern in cases]


def test_display_text_rules_agree() -> None:
    from sealbox.protocol._reader import check_display_text

    cases = [
        "Ana's laptop", "zoë", "日本語", "emoji 🎉", "tab\there", "esc\x1b[31m", "cr\r",
        "bidi\u202e", "zw\u200b", "tag\U000e0041", "line\u2028", "para\u2029", "pua\ue000",
        "filler\u3164", "braille\u2800", "vs\ufe0f", "vs\U000e0100", "del\x7f", "c1\x85",
        "nbsp\u00a0", "x" * 4096, "x" * 4097, "🎉" * 4096, "🎉" * 4097,
    ]  # fmt: skip

    def python(text: str) -> str:
        try:
            check_display_text(text, "text", max_len=4096)
        except SealboxError as exc:
            return exc.code
        return "ok"

    assert js("display_text", cases=cases)["results"] == [python(c) for c in cases]


def _mutations(value: Any) -> list[Any]:
    """Every payload one edit away from ``value``: each key dropped, each value replaced by a
    value of another type or out of range, an unknown key added to each object."""
    odd: list[Any] = [
        None, "", "x", "a\u202eb", -1, 0, 1, 2**31, 2**53 - 1, 2**53, True, [], {}, ["x"],
        "sha256:" + "A" * 43, "apv_" + "a" * 26,
        # Boundaries: thresholds, versions, context ids, cache window, text lengths.
        255, 256, 2**31 - 1, 2**32 - 1, 2**32, 30 * 86400, 30 * 86400 + 1, "x" * 64, "x" * 65,
        "x" * 128, "x" * 129, "é" * 1024, "é" * 1025,
    ]  # fmt: skip
    out: list[Any] = []
    if isinstance(value, dict):
        out.append({**value, "zz": 1})
        for key, inner in value.items():
            out.append({k: v for k, v in value.items() if k != key})
            out.extend({**value, key: o} for o in odd)
            out.extend({**value, key: m} for m in _mutations(inner))
    elif isinstance(value, list):
        out.append([*value, value[0]] if value else ["x"])
        out.append(value[::-1])
        for i, inner in enumerate(value):
            out.extend([*value[:i], o, *value[i + 1 :]] for o in odd)
            out.extend([*value[:i], m, *value[i + 1 :]] for m in _mutations(inner))
    return out


def test_statement_readers_accept_and_refuse_alike() -> None:
    """The JS readers accept exactly what Python's accept, over thousands of one-edit payloads of
    every statement type in flow.json's world (same code for every refusal)."""
    from sealbox.protocol import statements as st

    flow = json.loads((ROOT / "tests" / "vectors" / "sealbox" / "flow.json").read_text())
    world = flow["world"]
    tokens = [
        world["directory"]["links"][1],
        world["certificate"]["token"],
        world["item_versions"]["item2-v1"]["statement"],
        world["item_versions"]["item2-v1"]["manifest"],
        world["requests"]["multi"]["token"],
        world["requests"]["multi"]["releases"][0]["token"],
        world["refusal"]["token"],
        world["deny"]["token"],
    ]
    classes = {
        cls.TYP: cls
        for cls in (
            st.DirectoryLink, st.ClientCertificate, st.StoreStatement, st.ItemManifest,
            st.AccessStatement, st.ReleaseStatement, st.DenyStatement, st.EnrollmentStatement,
            st.CheckpointStatement, st.ConsentStatement,
        )
    }  # fmt: skip
    samples = [
        (json.loads(b64u_decode(t.split(".")[0]))["typ"], json.loads(b64u_decode(t.split(".")[1])))
        for t in tokens
    ]
    vault, apv = world["vault"], world["approvers"][0]["record"]["id"]
    head = world["directory"]["head"]["hash"]
    others: list[Any] = [
        st.EnrollmentStatement(
            vault=vault, id=ids.new_id(ids.ENROLLMENT), sig_pk=SigningKey.generate().verify_key(),
            constraints=st.EnrollmentConstraints(
                projects=("app",), items=("app/*/db",), max_uses=3, not_after=2_000_000_000,
                cidrs=("10.0.0.0/8",), hostname="ci-*",
            ),
            issuer=apv, at=1_800_000_000,
        ),
        st.CheckpointStatement(vault=vault, approver=apv, seq=7, head=head, at=1_800_000_000),
        st.ConsentStatement(
            vault=vault, approver=apv, action="deploy", details=head, client=ids.new_id(ids.CLIENT),
            scope="app/prod", at=1_800_000_000, exp=1_800_000_600,
        ),
    ]  # fmt: skip
    samples += [(o.TYP, o.to_json()) for o in others]
    cases: list[tuple[str, Any]] = []
    for typ, payload in samples:
        cases.append((typ, payload))
        cases.extend((typ, m) for m in _mutations(payload))

    def python(typ: str, payload: Any) -> str:
        try:
            classes[typ].from_json(payload)
        except SealboxError as exc:
            return exc.code
        return "ok"

    expected_results = [python(typ, payload) for typ, payload in cases]
    assert len(cases) > 2000
    assert expected_results.count("ok") > 20
    got = js("read_many", cases=cases)["results"]
    differ = [
        (typ, json.dumps(payload)[:300], want, have)
        for (typ, payload), want, have in zip(cases, expected_results, got, strict=True)
        if want != have
    ]
    assert not differ, differ[:5]


def test_delegated_certificates_verify_alike(world: World) -> None:
    """Machine certificates signed by an enrollment's delegation key: JS and Python agree on
    each one, within the enrollment's limits and beyond them."""
    from sealbox.protocol.statements import EnrollmentConstraints

    w = world
    delegation = SigningKey.generate()
    limits = EnrollmentConstraints(
        projects=("app",), items=("app/*/*",), max_uses=5, not_after=w.now + 3600,
        cidrs=("10.0.0.0/8", "192.168.0.0/16"), hostname="ci-*",
    )  # fmt: skip
    enrollment = certs.issue_enrollment(
        w.directory, issuer=w.py.id, key=w.py.sig, enrollment_id=ids.new_id(ids.ENROLLMENT),
        delegation_key=delegation.verify_key(), constraints=limits, now=w.now - 10,
    )  # fmt: skip
    parsed = certs.verify_enrollment(enrollment, w.directory, now=w.now)

    def machine(kind: str = "machine", **constraints: Any) -> str:
        base: dict[str, Any] = {"not_after": w.now + 600, "cidrs": ("10.0.0.0/8",),
                                "hostname": "ci-*"}  # fmt: skip
        client = ClientInfo(id=ids.new_id(ids.CLIENT), kind=kind, name="runner",
                            sig_pk=SigningKey.generate().verify_key())  # fmt: skip
        return certs.issue_machine_certificate(
            parsed, delegation_key=delegation, client=client, scopes=["read"],
            constraints=ClientConstraints(**{**base, **constraints}), now=w.now,
        )  # fmt: skip

    other = certs.issue_enrollment(
        w.directory, issuer=w.py.id, key=w.py.sig, enrollment_id=ids.new_id(ids.ENROLLMENT),
        delegation_key=delegation.verify_key(), constraints=limits, now=w.now - 10,
    )  # fmt: skip
    good = machine()
    cases: list[tuple[str, str | None]] = [
        (good, enrollment),
        (good, None),
        (good, other),
        (machine(kind="agent"), enrollment),
        (machine(not_after=w.now + 7200), enrollment),
        (machine(cidrs=()), enrollment),
        (machine(cidrs=("172.16.0.0/12",)), enrollment),
        (machine(hostname=None), enrollment),
        (machine(hostname="*"), enrollment),
        (w.certificate, None),
        (w.certificate, enrollment),
    ]

    def python(token: str, enr: str | None) -> str:
        try:
            cert = certs.verify_certificate(token, w.directory, now=w.now, enrollment=enr)
        except SealboxError as exc:
            return exc.code
        return f"ok {cert.client.id}"

    expected_results = [python(t, e) for t, e in cases]
    assert expected_results[0].startswith("ok ")
    assert expected_results.count("certificate_invalid") >= 7
    got = js("verify_certificates", **w.js_directory(), cases=cases, now=w.now)["results"]
    assert got == expected_results


# --- the same bytes in a real browser ---------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
#: Only what the page needs is served: the browser core, the vectors and the page itself.
SERVED = ("/src/sealbox/web/static/", "/tests/vectors/sealbox/", "/tests/js/interop/")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(ROOT), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if ".." in path or not path.startswith(SERVED):
            self.send_error(404)
            return
        super().do_GET()

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        # ES modules must be served as JavaScript for the browser to run them.
        return (
            "text/javascript" if str(path).endswith((".js", ".mjs")) else super().guess_type(path)
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_flow_replays_in_chromium(tmp_path: Path) -> None:
    """Headless Chromium reproduces flow.json's links, certificate, manifests, direct store
    and releases byte for byte with the same modules Node runs."""
    if not CHROMIUM.exists():
        # Like node: in CI the browser must be there (.ci/run installs it), never skipped.
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium must be installed in CI")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tests/js/interop/flow.html"
        done = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path}", "--virtual-time-budget=30000", "--dump-dom", url],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="out">([^<]*)</pre>', done.stdout.decode(errors="replace"))
    assert found is not None, done.stderr.decode(errors="replace")[-2000:]
    assert found.group(1).startswith("PASS 10 "), found.group(1)


# --- per-action consent ---------------------------------------------------------------------


def _consent_request(w: World, details: dict[str, Any], **kw: Any) -> Any:
    from sealbox.protocol.consent import build_consent_request

    return build_consent_request(
        client=w.client, key=w.client_key, vault=w.vault, action="deploy", details=details,
        purpose="release 1.4.2", now=w.now, ttl=kw.pop("ttl", 120), **kw,
    )  # fmt: skip


def test_js_consent_verifies_in_python_and_binds_to_the_request(world: World) -> None:
    from sealbox.protocol import consent as cs

    details = {"service": "api", "replicas": 3, "note": "é ✓ \u202e", "flags": [True, None]}
    ask = _consent_request(world, details)
    got = js("consent", **world.js_directory(), **world.web.secrets(), approver=world.web.id,
             statement=ask.token, certificate=world.certificate, now=world.now)  # fmt: skip
    assert "error" not in got, got
    assert got["hash"] == ask.hash
    assert got["details"] == details
    assert got["details_hash"] == cs.consent_details_hash(details)
    consent = cs.check_consent_answers(got["consent"], directory=world.directory,
                                       request=ask.statement, request_hash=ask.hash,
                                       now=world.now)  # fmt: skip
    assert (consent.approver, consent.exp - consent.at) == (world.web.id, 120)
    # The browser shortens the validity when asked, never lengthens it.
    for ttl, lasts in ((30, 30), (999, 120)):
        got = js(
            "consent", **world.js_directory(), **world.web.secrets(), approver=world.web.id,
            statement=ask.token, certificate=world.certificate, now=world.now, ttl=ttl,
        )  # fmt: skip
        consent = cs.verify_consent(
            got["consent"], directory=world.directory, action="deploy", details=details,
            client=world.client, now=world.now,
        )  # fmt: skip
        assert consent.exp - consent.at == lasts


def test_js_refuses_a_consent_request_that_does_not_verify(world: World) -> None:
    from sealbox.protocol.statements import sign_statement

    ask = _consent_request(world, {"service": "api"})
    forged = sign_statement(ask.statement, SigningKey.generate(), world.client)
    got = js("consent", **world.js_directory(), **world.web.secrets(), approver=world.web.id,
             statement=forged, certificate=world.certificate, now=world.now)  # fmt: skip
    assert got["error"] == "signature_invalid"
    late = js("consent", **world.js_directory(), **world.web.secrets(), approver=world.web.id,
              statement=ask.token, certificate=world.certificate, now=world.now + 301)  # fmt: skip
    assert late["error"] == "expired"
