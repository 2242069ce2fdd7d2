"""Items and store through the API with the real protocol, on SQLite and PostgreSQL.

The :class:`Harness` here drives whole flows as the parties would: a client
seals and signs (``build_store``, ``build_access``), an approver fetches what
the relay serves and checks it (``verify_store``, ``verify_access``) before it
signs, and the client opens what it is delivered (``open_release``).  The
request and concurrency tests import it from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest
from login_support import REFUSAL_ACTIONS
from relay_support import Approver, Vault, error_of
from sqlalchemy import func, select

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import (
    AccessRequest,
    ItemMaterial,
    Released,
    build_access,
    deny,
    open_release,
    release,
    verify_access,
)
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import (
    AccessItem,
    CacheRequest,
    ClientConstraints,
    ClientInfo,
    RequestContext,
)
from sealbox.protocol.store import (
    StoreUpload,
    build_store,
    manifest_hash,
    sign_manifest,
    store_as_approver,
    verify_store,
)
from sealbox.server.relay import Relay
from sealbox.server.store.tables import (
    answers,
    audit_events,
    blobs,
    clients,
    grants,
    item_versions,
    items,
    policies,
    replay,
    requests,
)

pytestmark = pytest.mark.anyio

CONTEXT = RequestContext(host="ci-7.example.com", user="deploy", argv=("deploy.sh",))


class Requester:
    """A certified client: its key, and the certificate an approver signed for it."""

    def __init__(self, client_id: str, key: SigningKey, certificate: str) -> None:
        self.id = client_id
        self.key = key
        self.certificate = certificate


def b64_blobs(upload: Any) -> dict[str, Any]:
    return {
        "ciphertexts": {f: b64u_encode(c) for f, c in upload.ciphertexts.items()},
        "wraps": {
            a: {f: b64u_encode(w) for f, w in fields.items()} for a, fields in upload.wraps.items()
        },
    }


class Harness:
    """One vault on one relay, with helpers that act as its approvers and clients."""

    def __init__(self, http: httpx.AsyncClient, relay: Relay, vault: Vault) -> None:
        self.http = http
        self.relay = relay
        self.vault = vault

    @property
    def base(self) -> str:
        return f"/v1/vaults/{self.vault.id}"

    def directory(self) -> dirs.Directory:
        return self.vault.directory()

    def build(
        self, method: str, path: str, *, signer: Approver | Requester, body: Any = None
    ) -> httpx.Request:
        content = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if content is not None else {}
        request = self.http.build_request(method, self.base + path, content=content,
                                          headers=headers)  # fmt: skip
        key = signer.sig if isinstance(signer, Approver) else signer.key
        sign_request(request, key=key, key_id=signer.id, now=self.relay.now())
        return request

    async def call(
        self, method: str, path: str, *, signer: Approver | Requester, body: Any = None
    ) -> httpx.Response:
        return await self.http.send(self.build(method, path, signer=signer, body=body))

    # --- setting the vault up (as the clients/policies routes would) --------------------

    async def add_approver(self, name: str = "phone") -> Approver:
        new = Approver(name)
        first = self.vault.approvers[0]
        link = dirs.append_link(self.directory(), "add", new.record, signer=first.id,
                                key=first.sig, now=self.relay.now())  # fmt: skip
        response = await self.http.post(self.base + "/directory", json={"link": link})
        assert response.status_code == 201, response.text
        self.vault.links.append(link)
        self.vault.approvers.append(new)
        return new

    async def add_client(
        self,
        *,
        grants_for: Sequence[str] = ("app/*/*",),
        hostname: str | None = None,
        cidrs: Sequence[str] = (),
        scopes: Sequence[str] = ("read", "write"),
    ) -> Requester:
        now = self.relay.now()
        key = SigningKey.generate()
        info = ClientInfo(id=ids.new_id(ids.CLIENT), kind="machine", name="ci runner",
                          sig_pk=key.verify_key())  # fmt: skip
        issuer = self.vault.approvers[0]
        certificate = issue_certificate(
            self.directory(), issuer=issuer.id, key=issuer.sig, client=info,
            scopes=list(scopes),
            constraints=ClientConstraints(not_after=now + 86400, cidrs=tuple(sorted(cidrs)),
                                          hostname=hostname),
            now=now,
        )  # fmt: skip
        async with self.relay.tx() as tx:
            await tx.conn.execute(
                clients.insert().values(
                    vault_id=self.vault.id, id=info.id, kind=info.kind, name=info.name,
                    sig_pk=info.sig_pk.to_text(), certificate=certificate, enrollment=None,
                    disabled=False, created_at=now,
                )
            )  # fmt: skip
            for pattern in grants_for:
                await tx.conn.execute(
                    grants.insert().values(
                        vault_id=self.vault.id, client_id=info.id, pattern=pattern, created_at=now
                    )
                )
        return Requester(info.id, key, certificate)

    async def add_policy(
        self,
        pattern: str,
        approvers: Sequence[Approver],
        threshold: int,
        *,
        expiry: int = 300,
        max_cache: int = 0,
    ) -> None:
        async with self.relay.tx() as tx:
            await tx.conn.execute(
                policies.insert().values(
                    vault_id=self.vault.id, pattern=pattern, approvers=[a.id for a in approvers],
                    threshold=threshold, expiry_seconds=expiry, max_cache_seconds=max_cache,
                    store_needs_approval=True,
                )
            )  # fmt: skip

    # --- store ---------------------------------------------------------------------------

    async def store_direct(
        self,
        approver: Approver,
        path: str,
        values: Mapping[str, bytes],
        *,
        holders: Sequence[Approver] | None = None,
        threshold: int = 1,
        item: str | None = None,
        version: int = 1,
        prev: str | None = None,
    ) -> tuple[str, str]:
        """Store a version as ``approver``; return (item id, manifest)."""
        item = item or ids.new_id(ids.ITEM)
        direct = store_as_approver(
            directory=self.directory(), approver=approver.id, key=approver.sig, item=item,
            path=path, version=version, prev=prev, values=values,
            approvers=[a.id for a in (holders or self.vault.approvers)], threshold=threshold,
            now=self.relay.now(),
        )  # fmt: skip
        body = {"manifest": direct.manifest, **b64_blobs(direct)}
        response = await self.call("POST", "/items", signer=approver, body=body)
        assert response.status_code == 201, response.text
        return item, direct.manifest

    def store_upload(
        self,
        client: Requester,
        path: str,
        values: Mapping[str, bytes],
        *,
        holders: Sequence[Approver] | None = None,
        threshold: int = 1,
        item: str | None = None,
        version: int = 1,
        prev: str | None = None,
    ) -> StoreUpload:
        return build_store(
            client=client.id, key=client.key, directory=self.directory(),
            item=item or ids.new_id(ids.ITEM), path=path, version=version, prev=prev,
            values=values, approvers=[a.id for a in (holders or self.vault.approvers)],
            threshold=threshold, purpose="rotate the database password", context=CONTEXT,
            now=self.relay.now(),
        )  # fmt: skip

    async def post_store(self, client: Requester, upload: StoreUpload) -> httpx.Response:
        body = {"statement": upload.statement, **b64_blobs(upload)}
        return await self.call("POST", "/store-requests", signer=client, body=body)

    async def approvals(self, approver: Approver) -> list[dict[str, Any]]:
        response = await self.call("GET", "/approvals", signer=approver)
        assert response.status_code == 200, response.text
        return list(response.json()["requests"])

    async def approval(self, approver: Approver, request_id: str) -> dict[str, Any]:
        found = [r for r in await self.approvals(approver) if r["id"] == request_id]
        assert len(found) == 1, f"{request_id} is not among {approver.id}'s approvals"
        return found[0]

    async def sign_store_manifest(self, approver: Approver, request_id: str) -> str:
        """Verify a pending store request as the relay serves it; sign its manifest."""
        entry = await self.approval(approver, request_id)
        upload = StoreUpload(
            statement=entry["statement"],
            ciphertexts={f: b64u_decode(c) for f, c in entry["ciphertexts"].items()},
            wraps={a: {f: b64u_decode(w) for f, w in fs.items()}
                   for a, fs in entry["wraps"].items()},
        )  # fmt: skip
        directory = self.directory()
        verified = verify_store(
            upload, directory=directory, approver=approver.id, hpke_key=approver.hpke,
            certificate=entry["certificate"], now=self.relay.now(),
            prev_manifest=entry["prev_manifest"], enrollment=entry["enrollment"],
        )  # fmt: skip
        return sign_manifest(verified, directory=directory, approver=approver.id,
                             key=approver.sig, now=self.relay.now())  # fmt: skip

    async def approve_store(self, approver: Approver, request_id: str) -> httpx.Response:
        manifest = await self.sign_store_manifest(approver, request_id)
        return await self.call("POST", f"/store-requests/{request_id}/manifest",
                               signer=approver, body={"manifest": manifest})  # fmt: skip

    # --- access --------------------------------------------------------------------------

    def access(
        self,
        client: Requester,
        wanted: Sequence[tuple[str, str, Sequence[str]]],
        *,
        ttl: int = 60,
        version: int | None = None,
        cache: CacheRequest | None = None,
    ) -> AccessRequest:
        """A signed access statement for (item, path, fields) triples."""
        return build_access(
            client=client.id, key=client.key, vault=self.vault.id,
            items=[AccessItem(item=i, path=p, version=version, fields=tuple(sorted(f)))
                   for i, p, f in wanted],
            purpose="run the nightly migration", context=CONTEXT, now=self.relay.now(), ttl=ttl,
            **({"cache": cache} if cache else {}),
        )  # fmt: skip

    async def ask(self, client: Requester, access: AccessRequest) -> httpx.Response:
        return await self.call("POST", "/access-requests", signer=client,
                               body={"statement": access.token})  # fmt: skip

    async def sign_release(
        self, approver: Approver, request_id: str, *, cache_until: int = 0
    ) -> str:
        """Verify a pending access request as served; release this approver's shares."""
        entry = await self.approval(approver, request_id)
        directory = self.directory()
        now = self.relay.now()
        verified = verify_access(entry["statement"], directory=directory,
                                 certificate=entry["certificate"], now=now,
                                 enrollment=entry["enrollment"])  # fmt: skip
        materials = {
            item: ItemMaterial(manifest=m["manifest"],
                               wraps={f: b64u_decode(w) for f, w in m["wraps"].items()})
            for item, m in entry["items"].items()
        }  # fmt: skip
        return release(verified, materials=materials, directory=directory, approver=approver.id,
                       hpke_key=approver.hpke, key=approver.sig, now=now,
                       cache_until=cache_until)  # fmt: skip

    async def post_release(self, approver: Approver, request_id: str, token: str) -> httpx.Response:
        return await self.call("POST", f"/access-requests/{request_id}/release",
                               signer=approver, body={"release": token})  # fmt: skip

    async def release_as(self, approver: Approver, request_id: str) -> httpx.Response:
        token = await self.sign_release(approver, request_id)
        return await self.post_release(approver, request_id, token)

    async def release_as_unchecked(
        self, approver: Approver, request_id: str, access: AccessRequest
    ) -> httpx.Response:
        """Release without the approvals listing (for a request it no longer shows).

        The approver fetches the latest manifests and its own wraps instead,
        exactly as it could for any stored version.
        """
        directory = self.directory()
        materials = {}
        for asked in access.statement.items:
            history = await self.call("GET", f"/items/{asked.item}/versions", signer=approver)
            latest = history.json()["versions"][-1]
            wraps = await self.call(
                "GET", f"/items/{asked.item}/versions/{latest['version']}/wraps/{approver.id}",
                signer=approver,
            )  # fmt: skip
            materials[asked.item] = ItemMaterial(
                manifest=latest["manifest"],
                wraps={f: b64u_decode(w) for f, w in wraps.json()["wraps"].items()},
            )
        async with self.relay.read() as conn:
            certificate = (
                await conn.execute(
                    select(clients.c.certificate).where(clients.c.id == access.statement.client)
                )
            ).scalar_one()
        now = self.relay.now()
        verified = verify_access(access.token, directory=directory, certificate=certificate,
                                 now=now)  # fmt: skip
        token = release(verified, materials=materials, directory=directory, approver=approver.id,
                        hpke_key=approver.hpke, key=approver.sig, now=now)  # fmt: skip
        return await self.post_release(approver, request_id, token)

    async def deny_as(
        self, approver: Approver, request_id: str, kind: str = "access"
    ) -> httpx.Response:
        token = deny(
            "sha256:" + request_id, directory=self.directory(), approver=approver.id,
            key=approver.sig, reason="not during the freeze", now=self.relay.now(),
        )  # fmt: skip
        return await self.call("POST", f"/{kind}-requests/{request_id}/deny", signer=approver,
                               body={"deny": token})  # fmt: skip

    async def envelope(self, client: Requester, request_id: str) -> httpx.Response:
        return await self.call("POST", f"/access-requests/{request_id}/envelope", signer=client)

    def open(self, access: AccessRequest, delivered: Mapping[str, Any]) -> Released:
        return open_release(
            access, releases=delivered["releases"], manifests=delivered["manifests"],
            ciphertexts={i: {f: b64u_decode(c) for f, c in fs.items()}
                         for i, fs in delivered["ciphertexts"].items()},
            directory=self.directory(),
        )  # fmt: skip

    # --- inspecting the database -----------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """Rows per table that a request may change (transport nonces left out)."""
        out = {}
        async with self.relay.read() as conn:
            for table in (items, item_versions, blobs, requests, answers):
                out[table.name] = (
                    await conn.execute(select(func.count()).select_from(table))
                ).scalar_one()
            # A refusal is recorded (auth.refused, request.refused): that is all it may write.
            out["audit_events"] = (
                await conn.execute(
                    select(func.count()).select_from(audit_events)
                    .where(audit_events.c.action.not_in(REFUSAL_ACTIONS))
                )
            ).scalar_one()  # fmt: skip
            out["jti"] = (
                await conn.execute(
                    select(func.count()).select_from(replay).where(replay.c.scope == "jti")
                )
            ).scalar_one()
            states = await conn.execute(select(requests.c.id, requests.c.state))
            out["states"] = hash(tuple(sorted(tuple(r) for r in states)))
        return out

    async def state(self, request_id: str) -> str:
        async with self.relay.read() as conn:
            return str(
                (
                    await conn.execute(select(requests.c.state).where(requests.c.id == request_id))
                ).scalar_one()
            )


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


PASSWORD = {"password": b"correct horse battery staple", "user": b"app"}


# --- approver direct store ------------------------------------------------------------------


async def test_direct_store_versions_and_own_wraps(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item, v1 = await h.store_direct(a, "app/prod/db", PASSWORD)
    item, v2 = await h.store_direct(a, "app/prod/db", {"password": b"new"}, item=item,
                                    version=2, prev=manifest_hash(v1))  # fmt: skip

    listed = (await h.call("GET", "/items", signer=b)).json()["items"]
    assert [(i["id"], i["path"], i["type"], i["latest_version"]) for i in listed] == [
        (item, "app/prod/db", "secret", 2)
    ]
    by_path = await h.call("GET", "/items?path=app/prod/db", signer=b)
    assert [i["id"] for i in by_path.json()["items"]] == [item]
    assert (await h.call("GET", "/items?path=app/prod/none", signer=b)).json() == {"items": []}
    bad_path = await h.call("GET", "/items?path=../etc", signer=b)
    assert (bad_path.status_code, error_of(bad_path)["error"]) == (400, "malformed")

    history = (await h.call("GET", f"/items/{item}/versions", signer=b)).json()
    assert [(v["version"], v["manifest"]) for v in history["versions"]] == [(1, v1), (2, v2)]
    assert history["versions"][1]["manifest_hash"] == manifest_hash(v2)

    wraps = await h.call("GET", f"/items/{item}/versions/2/wraps/{b.id}", signer=b)
    assert wraps.status_code == 200, wraps.text
    assert set(wraps.json()["wraps"]) == {"password"}
    other = await h.call("GET", f"/items/{item}/versions/2/wraps/{a.id}", signer=b)
    assert (other.status_code, error_of(other)["error"]) == (403, "not_your_wraps")
    missing = await h.call("GET", f"/items/{item}/versions/3/wraps/{b.id}", signer=b)
    assert missing.status_code == 404

    # At rest the blobs are sealed under the project's data key, not stored as sent.
    async with h.relay.read() as conn:
        sealed = (await conn.execute(select(blobs.c.data))).scalars().all()
    served = b64u_decode(wraps.json()["wraps"]["password"])
    assert served not in sealed
    assert len(sealed) == 2 * (1 + 2) + 1 * (1 + 2)


async def test_direct_store_refusals_change_nothing(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    item, v1 = await h.store_direct(a, "app/prod/db", PASSWORD)
    before = await h.counts()

    def direct(**kw: Any) -> Any:
        args: dict[str, Any] = {
            "directory": h.directory(), "approver": a.id, "key": a.sig, "item": item,
            "path": "app/prod/db", "version": 2, "prev": manifest_hash(v1),
            "values": {"password": b"x"}, "approvers": [a.id], "threshold": 1,
            "now": h.relay.now(),
        } | kw  # fmt: skip
        return store_as_approver(**args)

    async def post(signer: Approver | Requester, store: Any, **tweak: Any) -> httpx.Response:
        body = {"manifest": store.manifest, **b64_blobs(store)} | tweak
        return await h.call("POST", "/items", signer=signer, body=body)

    cases = [
        # Uploaded by an approver that did not sign it.
        (await post(b, direct()), 403, "not_authorized"),
        # A client may not store directly.
        (await post(await h.add_client(), direct()), 403, "approver_required"),
        # A ciphertext that is not the signed one.
        (await post(a, direct(), ciphertexts={"password": b64u_encode(b"junk")}), 400,
         "manifest_mismatch"),
        # Not the next version, or not following the stored one.
        (await post(a, direct(version=3, prev=manifest_hash(v1))), 409, "version_conflict"),
        (await post(a, direct(prev="sha256:" + "A" * 43)), 409, "version_conflict"),
        # Another item at a path that is taken; an id that is taken.
        (await post(a, direct(item=ids.new_id(ids.ITEM), version=1, prev=None)), 409,
         "path_taken"),
        (await post(a, direct(path="app/prod/other", version=1, prev=None)), 409,
         "item_exists"),
        # Not a manifest at all.
        (await h.call("POST", "/items", signer=a,
                      body={"manifest": "not.a.jws", "ciphertexts": {}, "wraps": {}}), 400,
         "malformed"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    # The client row added above is the one change; everything a store touches is as it was.
    assert await h.counts() == before


async def test_key_set_must_name_current_approvers(h: Harness) -> None:
    a = h.vault.approvers[0]
    stranger = Approver("not in the directory")
    directory = h.directory()
    widened = dirs.Directory(
        vault=directory.vault, fingerprint=directory.fingerprint,
        approvers={**directory.approvers, stranger.id: stranger.record}, head=directory.head,
        tokens=directory.tokens,
    )  # fmt: skip
    direct = store_as_approver(directory=widened, approver=a.id, key=a.sig,
                               item=ids.new_id(ids.ITEM), path="app/prod/db", version=1,
                               prev=None, values=PASSWORD, approvers=[a.id, stranger.id],
                               threshold=1, now=h.relay.now())  # fmt: skip
    response = await h.call("POST", "/items", signer=a,
                            body={"manifest": direct.manifest, **b64_blobs(direct)})  # fmt: skip
    assert (response.status_code, error_of(response)["error"]) == (403, "not_authorized")


# --- client store requests ------------------------------------------------------------------


async def test_client_store_request_approved_then_read_back(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client(grants_for=["app/prod/*"])
    upload = h.store_upload(client, "app/prod/api-key", {"value": b"sk_live_123"})
    created = await h.post_store(client, upload)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert created.json()["state"] == "pending"

    # Nothing is an item until an approver vouches for it.
    assert (await h.call("GET", "/items", signer=a)).json() == {"items": []}
    entry = await h.approval(a, request_id)
    assert entry["kind"] == "store"
    assert entry["prev_manifest"] is None
    assert entry["reported_by_server"]["source_ip"] == "127.0.0.1"

    approved = await h.approve_store(a, request_id)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "stored"
    status = await h.call("GET", f"/store-requests/{request_id}", signer=client)
    assert status.json()["state"] == "stored"
    assert status.json()["version"] == 1
    assert await h.approvals(a) == []

    item = approved.json()["item"]
    listed = (await h.call("GET", "/items", signer=client)).json()["items"]
    assert [(i["id"], i["latest_version"]) for i in listed] == [(item, 1)]

    # The same client reads the value back through an approver's release.
    access = h.access(client, [(item, "app/prod/api-key", ["value"])])
    asked = await h.ask(client, access)
    assert asked.status_code == 201, asked.text
    assert (await h.release_as(a, asked.json()["id"])).status_code == 200
    delivered = await h.envelope(client, asked.json()["id"])
    assert delivered.status_code == 200, delivered.text
    assert h.open(access, delivered.json()).values == {item: {"value": b"sk_live_123"}}

    # A second version chains onto the first.
    history = (await h.call("GET", f"/items/{item}/versions", signer=client)).json()
    upload2 = h.store_upload(client, "app/prod/api-key", {"value": b"sk_live_456"}, item=item,
                             version=2, prev=history["versions"][0]["manifest_hash"])  # fmt: skip
    second = await h.post_store(client, upload2)
    assert second.status_code == 201, second.text
    assert (await h.approval(a, second.json()["id"]))["prev_manifest"] == history["versions"][0][
        "manifest"
    ]
    assert (await h.approve_store(a, second.json()["id"])).status_code == 200
    assert (await h.call("GET", "/items", signer=a)).json()["items"][0]["latest_version"] == 2


async def test_store_request_denied_drops_its_blobs(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    upload = h.store_upload(client, "app/dev/token", {"value": b"t0k3n"})
    request_id = (await h.post_store(client, upload)).json()["id"]
    manifest = await h.sign_store_manifest(a, request_id)
    denied = await h.deny_as(a, request_id, kind="store")
    assert denied.status_code == 200, denied.text
    assert denied.json()["state"] == "denied"
    counts = await h.counts()
    assert counts["blobs"] == 0
    assert counts["items"] == 0

    late = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                        body={"manifest": manifest})  # fmt: skip
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    again = await h.deny_as(a, request_id, kind="store")
    assert (again.status_code, error_of(again)["error"]) == (409, "not_pending")
    status = await h.call("GET", f"/store-requests/{request_id}", signer=client)
    assert status.json()["state"] == "denied"


async def test_store_request_refusals_change_nothing(h: Harness) -> None:
    a = h.vault.approvers[0]
    b = await h.add_approver()
    client = await h.add_client(grants_for=["app/prod/*"])
    await h.add_policy("app/prod/strict", [a, b], 2)
    first = h.store_upload(client, "app/prod/db", PASSWORD)
    assert (await h.post_store(client, first)).status_code == 201
    before = await h.counts()

    def body(upload: StoreUpload, **tweak: Any) -> dict[str, Any]:
        return {"statement": upload.statement, **b64_blobs(upload)} | tweak

    async def post(upload_body: dict[str, Any], signer: Any = client) -> httpx.Response:
        return await h.call("POST", "/store-requests", signer=signer, body=upload_body)

    cases = [
        # The same statement again: its jti is spent.
        (await post(body(first)), 409, "replay"),
        # No grant for the path.
        (await post(body(h.store_upload(client, "app/dev/db", PASSWORD))), 403, "no_grant"),
        # A weaker split than the policy's threshold.
        (await post(body(h.store_upload(client, "app/prod/strict", PASSWORD))), 400,
         "threshold_below_policy"),
        # A blob that is not the signed one.
        (await post(body(h.store_upload(client, "app/prod/x", PASSWORD),
                         ciphertexts={"password": b64u_encode(b"junk"), "user": "AA"})), 400,
         "manifest_mismatch"),
        # A second store of an item version already waiting.
        (await post(body(h.store_upload(client, "app/prod/db", PASSWORD,
                                        item=_statement_item(first)))), 409, "version_taken"),
        # Signed by another client than the caller.
        (await post(body(h.store_upload(await h.add_client(), "app/prod/y", PASSWORD))), 403,
         "not_authorized"),
        # An approver is not a client; junk is junk.
        (await post(body(h.store_upload(client, "app/prod/z", PASSWORD)), signer=a), 403,
         "client_required"),
        (await post({"statement": "x.y.z", "ciphertexts": {}, "wraps": {}}), 400, "malformed"),
    ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error), response.text
    assert await h.counts() == before


def _statement_item(upload: StoreUpload) -> str:
    payload = upload.statement.split(".")[1]
    return str(json.loads(b64u_decode(payload))["item"])


async def test_store_manifest_must_answer_the_request(h: Harness) -> None:
    a = h.vault.approvers[0]
    outsider = await h.add_approver()
    client = await h.add_client()
    upload = h.store_upload(client, "app/prod/db", PASSWORD, holders=[a])
    request_id = (await h.post_store(client, upload)).json()["id"]
    # The outsider holds no share, so it is not asked, and may not complete it.
    assert await h.approvals(outsider) == []
    manifest = await h.sign_store_manifest(a, request_id)
    before = await h.counts()
    wrong_signer = await h.call("POST", f"/store-requests/{request_id}/manifest",
                                signer=outsider, body={"manifest": manifest})  # fmt: skip
    assert wrong_signer.status_code == 403
    other = store_as_approver(directory=h.directory(), approver=a.id, key=a.sig,
                              item=_statement_item(upload), path="app/prod/db", version=1,
                              prev=None, values=PASSWORD, approvers=[a.id], threshold=1,
                              now=h.relay.now())  # fmt: skip
    direct = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                          body={"manifest": other.manifest})  # fmt: skip
    assert (direct.status_code, error_of(direct)["error"]) == (400, "binding_mismatch")
    assert await h.counts() == before
    done = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                        body={"manifest": manifest})  # fmt: skip
    assert done.status_code == 200, done.text


async def test_clients_see_only_granted_items(h: Harness) -> None:
    a = h.vault.approvers[0]
    shown, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    hidden, _ = await h.store_direct(a, "ops/prod/db", PASSWORD)
    client = await h.add_client(grants_for=["app/*/*"])
    listed = (await h.call("GET", "/items", signer=client)).json()["items"]
    assert [i["id"] for i in listed] == [shown]
    assert (await h.call("GET", "/items?path=ops/prod/db", signer=client)).json()["items"] == []
    response = await h.call("GET", f"/items/{hidden}/versions", signer=client)
    assert (response.status_code, error_of(response)["error"]) == (404, "no_such_item")
    wraps = await h.call("GET", f"/items/{shown}/versions/1/wraps/{client.id}", signer=client)
    assert wraps.status_code == 403
    everything = (await h.call("GET", "/items", signer=a)).json()["items"]
    assert {i["id"] for i in everything} == {shown, hidden}


async def test_certificate_scopes_say_what_a_client_may_ask(h: Harness) -> None:
    approver = h.vault.approvers[0]
    item, _ = await h.store_direct(approver, "app/prod/db", PASSWORD)
    reader = await h.add_client(scopes=("read",))
    writer = await h.add_client(scopes=("write",))
    before = await h.counts()

    refused = await h.post_store(reader, h.store_upload(reader, "app/prod/new", {"v": b"x"}))
    assert (refused.status_code, error_of(refused)["error"]) == (403, "scope_missing")
    refused = await h.ask(writer, h.access(writer, [(item, "app/prod/db", ["password"])]))
    assert (refused.status_code, error_of(refused)["error"]) == (403, "scope_missing")
    assert await h.counts() == before

    assert (
        await h.ask(reader, h.access(reader, [(item, "app/prod/db", ["user"])]))
    ).status_code == 201
    stored = await h.post_store(writer, h.store_upload(writer, "app/prod/new", {"v": b"x"}))
    assert stored.status_code == 201, stored.text
