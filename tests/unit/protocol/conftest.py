"""A small, real sealbox world for the protocol unit tests.

Three approvers in a verified directory, one certified client, and helpers
to store items (M = 1 or M-of-N), ask for them, release and open.  Every
object is produced by the real protocol functions; the helpers only save
typing.  Session-scoped: everything in it is immutable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from sealbox.crypto.encoding import b64u_decode, parse_canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import access as ac
from sealbox.protocol import certificates as certs
from sealbox.protocol import directory as dr
from sealbox.protocol import ids
from sealbox.protocol import store as st
from sealbox.protocol.statements import (
    NO_CACHE,
    AccessItem,
    ApproverRecord,
    CacheRequest,
    ClientConstraints,
    ClientInfo,
    RequestContext,
    StoreStatement,
    sign_statement,
)

NOW = 1_800_000_000
DAY = 86_400


@dataclass(frozen=True)
class Approver:
    record: ApproverRecord
    hpke: HpkePrivateKey = field(repr=False)
    sig: SigningKey = field(repr=False)

    @property
    def id(self) -> str:
        return self.record.id


def new_approver(name: str, kind: str = "terminal", tier: str = "synced") -> Approver:
    hpke = HpkePrivateKey.generate()
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER),
        name=name,
        kind=kind,
        tier=tier,
        hpke_pk=hpke.public_key(),
        sig_pk=sig.verify_key(),
    )
    return Approver(record=record, hpke=hpke, sig=sig)


@dataclass(frozen=True)
class Client:
    info: ClientInfo
    key: SigningKey = field(repr=False)

    @property
    def id(self) -> str:
        return self.info.id


def new_client(name: str = "ana-laptop", kind: str = "human") -> Client:
    key = SigningKey.generate()
    info = ClientInfo(id=ids.new_id(ids.CLIENT), kind=kind, name=name, sig_pk=key.verify_key())
    return Client(info=info, key=key)


@dataclass(frozen=True)
class Stored:
    """One stored item version: the client upload, and the approver-signed manifest."""

    item: str
    path: str
    version: int
    upload: st.StoreUpload
    manifest: str
    threshold: int
    holders: tuple[str, ...]

    @property
    def hash(self) -> str:
        return st.manifest_hash(self.manifest)


@dataclass
class World:
    vault: str
    approvers: list[Approver]
    links: list[str]
    fingerprint: str
    directory: dr.Directory
    client: Client
    cert: str
    extra: dict[str, Any] = field(default_factory=dict)

    # --- directory --------------------------------------------------------------------

    def approver(self, approver_id: str) -> Approver:
        return next(a for a in self.approvers if a.id == approver_id)

    # --- store ------------------------------------------------------------------------

    def upload(
        self,
        values: Mapping[str, bytes] | None = None,
        *,
        threshold: int = 1,
        holders: Sequence[str] | None = None,
        item: str | None = None,
        path: str = "app/prod/db",
        version: int = 1,
        prev: str | None = None,
        client: Client | None = None,
        now: int = NOW,
        ttl: int = 300,
    ) -> st.StoreUpload:
        client = client or self.client
        return st.build_store(
            client=client.id,
            key=client.key,
            directory=self.directory,
            item=item or ids.new_id(ids.ITEM),
            path=path,
            version=version,
            prev=prev,
            values=values if values is not None else {"user": b"app", "password": b"hunter2"},
            approvers=list(holders) if holders is not None else [a.id for a in self.approvers],
            threshold=threshold,
            purpose="set up the app database",
            context=RequestContext(host="build-1", user="ana", pid=4242),
            now=now,
            ttl=ttl,
        )

    def verify_upload(
        self,
        upload: st.StoreUpload,
        *,
        by: int = 0,
        now: int = NOW,
        prev_manifest: str | None = None,
        cert: str | None = None,
    ) -> st.VerifiedStore:
        a = self.approvers[by]
        return st.verify_store(
            upload,
            directory=self.directory,
            approver=a.id,
            hpke_key=a.hpke,
            certificate=cert or self.cert,
            now=now,
            prev_manifest=prev_manifest,
        )

    def store(
        self,
        values: Mapping[str, bytes] | None = None,
        *,
        threshold: int = 1,
        holders: Sequence[str] | None = None,
        item: str | None = None,
        path: str = "app/prod/db",
        version: int = 1,
        prev_manifest: str | None = None,
        by: int | None = None,
    ) -> Stored:
        """Client stores; an approver holding a share verifies and signs the manifest."""
        holder_ids = tuple(holders) if holders is not None else tuple(a.id for a in self.approvers)
        item = item or ids.new_id(ids.ITEM)
        upload = self.upload(
            values,
            threshold=threshold,
            holders=holder_ids,
            item=item,
            path=path,
            version=version,
            prev=st.manifest_hash(prev_manifest) if prev_manifest else None,
        )
        if by is None:
            by = next(i for i, a in enumerate(self.approvers) if a.id in holder_ids)
        verified = self.verify_upload(upload, by=by, prev_manifest=prev_manifest)
        a = self.approvers[by]
        manifest = st.sign_manifest(
            verified, directory=self.directory, approver=a.id, key=a.sig, now=NOW
        )
        return Stored(
            item=item,
            path=path,
            version=version,
            upload=upload,
            manifest=manifest,
            threshold=threshold,
            holders=holder_ids,
        )

    def resign_store(
        self,
        upload: st.StoreUpload,
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        **changes: Any,
    ) -> st.StoreUpload:
        """The same upload with its store statement changed and signed again by the client."""
        statement = StoreStatement.from_json(_payload(upload.statement))
        statement = dataclasses.replace(statement, **changes)
        token = sign_statement(statement, key or self.client.key, kid or self.client.id)
        return st.StoreUpload(statement=token, ciphertexts=upload.ciphertexts, wraps=upload.wraps)

    # --- access -----------------------------------------------------------------------

    def ask(
        self,
        *wanted: tuple[Stored, Sequence[str]] | tuple[Stored, Sequence[str], int | None],
        now: int = NOW,
        ttl: int = 300,
        client: Client | None = None,
        cache: CacheRequest = NO_CACHE,
    ) -> ac.AccessRequest:
        client = client or self.client
        items = []
        for entry in wanted:
            stored, fields = entry[0], entry[1]
            version = entry[2] if len(entry) == 3 else None
            items.append(
                AccessItem(
                    item=stored.item,
                    path=stored.path,
                    version=version,
                    fields=tuple(sorted(fields)),
                )
            )
        return ac.build_access(
            client=client.id,
            key=client.key,
            vault=self.vault,
            items=items,
            purpose="run the migration",
            context=RequestContext(host="build-1", user="ana", argv=("psql", "-c", "select 1")),
            now=now,
            ttl=ttl,
            cache=cache,
        )

    def verify_ask(self, request: ac.AccessRequest, *, now: int = NOW) -> ac.VerifiedAccess:
        return ac.verify_access(
            request.token, directory=self.directory, certificate=self.cert, now=now
        )

    def materials(self, approver_id: str, *stored: Stored) -> dict[str, ac.ItemMaterial]:
        return {
            s.item: ac.ItemMaterial(manifest=s.manifest, wraps=s.upload.wraps.get(approver_id, {}))
            for s in stored
        }

    def release(
        self,
        request: ac.AccessRequest,
        approver: Approver,
        *stored: Stored,
        now: int = NOW,
        cache_until: int = 0,
    ) -> str:
        return ac.release(
            self.verify_ask(request, now=now),
            materials=self.materials(approver.id, *stored),
            directory=self.directory,
            approver=approver.id,
            hpke_key=approver.hpke,
            key=approver.sig,
            now=now,
            cache_until=cache_until,
        )

    def open(
        self,
        request: ac.AccessRequest,
        releases: Sequence[str],
        *stored: Stored,
        manifests: Mapping[str, str] | None = None,
        ciphertexts: Mapping[str, Mapping[str, bytes]] | None = None,
        known_versions: Mapping[str, int] | None = None,
    ) -> ac.Released:
        return ac.open_release(
            request,
            releases=releases,
            manifests=manifests if manifests is not None else {s.item: s.manifest for s in stored},
            ciphertexts=(
                ciphertexts
                if ciphertexts is not None
                else {s.item: s.upload.ciphertexts for s in stored}
            ),
            directory=self.directory,
            known_versions=known_versions,
        )


def _payload(token: str) -> dict[str, Any]:
    """A token's payload, read without verifying it (tests only)."""
    return parse_canonical_json(b64u_decode(token.split(".")[1]))


def make_world(n: int = 3) -> World:
    vault = ids.new_id(ids.VAULT)
    approvers = [new_approver(f"approver {i}") for i in range(n)]
    first = approvers[0]
    links = [dr.genesis_link(vault, first.record, first.sig, now=NOW - 10 * DAY)]
    fingerprint = dr.vault_fingerprint(links[0])
    directory = dr.verify_directory(links, pinned=fingerprint)
    for i, a in enumerate(approvers[1:], start=1):
        links.append(
            dr.append_link(
                directory, "add", a.record, signer=first.id, key=first.sig, now=NOW - 10 * DAY + i
            )
        )
        directory = dr.verify_directory(links, pinned=fingerprint)
    client = new_client()
    cert = certs.issue_certificate(
        directory,
        issuer=approvers[1 % n].id,
        key=approvers[1 % n].sig,
        client=client.info,
        scopes=["read", "write"],
        constraints=ClientConstraints(not_after=NOW + 30 * DAY),
        now=NOW - DAY,
    )
    return World(
        vault=vault,
        approvers=approvers,
        links=links,
        fingerprint=fingerprint,
        directory=directory,
        client=client,
        cert=cert,
    )


@pytest.fixture(scope="session")
def world() -> World:
    """One shared, immutable world (3 approvers, one certified human client)."""
    return make_world()


@pytest.fixture
def fresh_world() -> World:
    """A world of its own, for tests that extend the directory."""
    return make_world()


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The builders above, for test modules (which cannot import a conftest)."""
    return SimpleNamespace(
        NOW=NOW,
        DAY=DAY,
        make_world=make_world,
        new_approver=new_approver,
        new_client=new_client,
        payload=_payload,
        Stored=Stored,
    )
