"""The honest world that the hostile-relay suite attacks.

One vault with three approvers (directory links 0..2, verified from the pinned
fingerprint), a certified client, three items and the access requests,
releases and a denial that honest parties produced for them.  Everything is
made with the public protocol functions and real keys, exactly as the
parties would, and nothing here is ever mutated: every attack copies what it
tampers with.

The relay is the party in the middle of every hand-over.  It is modelled by
its own keys (``relay_sig``, ``relay_hpke``), an approver record it made up
(``relay_record``), and by everything it carries, which the attacks in
``test_hostile_relay.py`` take, alter and hand on.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pytest

from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import access as ac
from sealbox.protocol import certificates as certs
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol import store as st
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import (
    AccessItem,
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    EnrollmentConstraints,
    EnrollmentStatement,
    RequestContext,
)

NOW = 1_800_000_000
DAY = 86_400
PATH1 = "app/prod/db"
PATH2 = "app/prod/payments"
PATH3 = "app/staging/cache"


@dataclass(frozen=True)
class Party:
    """An approver device: its directory record and both private keys."""

    record: ApproverRecord
    hpke: HpkePrivateKey = field(repr=False)
    sig: SigningKey = field(repr=False)

    @property
    def id(self) -> str:
        return self.record.id


def make_party(name: str) -> Party:
    hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER),
        name=name,
        kind="terminal",
        tier="synced",
        hpke_pk=hpke.public_key(),
        sig_pk=sig.verify_key(),
    )
    return Party(record=record, hpke=hpke, sig=sig)


def plaintext(label: str) -> bytes:
    """A field value that cannot turn up by chance in any other byte string."""
    return f"PLAINTEXT-{label}-{secrets.token_hex(16)}".encode()


@dataclass(frozen=True)
class World:
    now: int
    vault: str
    a: tuple[Party, Party, Party]
    links: tuple[str, ...]
    """Directory links 0..2: a0 adds itself, then a0 adds a1 and a2."""
    fingerprint: str
    directory: Directory

    # The relay's own material: all it has besides what it carries.
    relay: Party
    """Keys and a made-up approver record (``apv_…`` id not in the directory)."""
    relay_client_key: SigningKey = field(repr=False)
    relay_client_id: str

    # The client (human, certified by a1) and a second, differently named client.
    client_key: SigningKey = field(repr=False)
    client_id: str
    client_info: ClientInfo
    cert: str
    other_client_key: SigningKey = field(repr=False)
    other_client_id: str
    other_cert: str
    hostname_cert: str
    """A certificate of the client restricted to hosts matching ``ci-*``."""

    # item1: M = 1 over a0, a1, a2; version 1 and version 2.
    item1: str
    values1: Mapping[str, bytes]
    up1: st.StoreUpload
    man1: str
    values1v2: Mapping[str, bytes]
    up1v2: st.StoreUpload
    man1v2: str
    # item2: 2-of-3 over a0, a1, a2.
    item2: str
    values2: Mapping[str, bytes]
    up2: st.StoreUpload
    man2: str
    values2v2: Mapping[str, bytes]
    up2v2: st.StoreUpload
    man2v2: str
    # item3: M = 1 over a0, a1 only (a2 holds no share).
    item3: str
    values3: Mapping[str, bytes]
    up3: st.StoreUpload
    man3: str

    # Access requests (their ephemeral private keys stay inside the AccessRequest).
    req_latest: ac.AccessRequest
    """item1, latest version, field ``password``."""
    req_other: ac.AccessRequest
    """A second, independent request for the same thing."""
    req_v2: ac.AccessRequest
    """item1, explicitly version 2, field ``password``."""
    req_m2: ac.AccessRequest
    """item2 (2-of-3), latest version, field ``password``."""
    # Honest releases.
    rel_latest: str
    """a0 answers req_latest with version 2 (the real latest)."""
    rel_latest_v1: str
    """a0 answers req_latest with version 1 (what it was handed by the relay)."""
    rel_other: str
    """a0 answers req_other with version 2."""
    rel_m2: Mapping[str, str]
    """a0's and a1's releases for req_m2, both of version 1."""
    deny_latest: str
    """a2 denies req_latest."""

    # A second vault in which a0 (same id, same keys) is also an approver.
    vault2: str
    directory2: Directory
    cert_v2: str
    """The same client certified in vault 2."""
    man_v2: str
    """A manifest, in vault 2, for an item with item1's id."""
    up_v2: st.DirectStore

    # Enrollment (delegation key for machines), signed by a0.
    enrollment: str
    enrollment_id: str
    enrollment_stmt: EnrollmentStatement
    delegation_key: SigningKey = field(repr=False)
    machine_cert: str
    human_cert_by_enrollment: str

    # Directory evolutions.
    links_removed: tuple[str, ...]
    """links + link 3 removing a1."""
    directory_removed: Directory
    fork_x: str
    """Honest link 3 by a0 adding approver x."""
    fork_y: str
    """Honest link 3 by a2 adding approver y on the same head (the relay withheld fork_x)."""

    def material(self, up: st.StoreUpload, manifest: str, approver: str) -> ac.ItemMaterial:
        """What an honest relay hands ``approver`` for one item version."""
        return ac.ItemMaterial(manifest=manifest, wraps=up.wraps[approver])

    def release_by(
        self,
        party: Party,
        request: ac.AccessRequest,
        item: str,
        up: st.StoreUpload,
        manifest: str,
        *,
        directory: Directory | None = None,
        now: int | None = None,
    ) -> str:
        """``party`` verifies ``request`` and releases, given this item material."""
        d = directory or self.directory
        verified = ac.verify_access(request.token, directory=d, certificate=self.cert, now=NOW)
        return ac.release(
            verified,
            materials={item: self.material(up, manifest, party.id)},
            directory=d,
            approver=party.id,
            hpke_key=party.hpke,
            key=party.sig,
            now=self.now if now is None else now,
        )

    def all_plaintexts(self) -> list[bytes]:
        out: list[bytes] = []
        for values in (
            self.values1, self.values1v2, self.values2, self.values2v2, self.values3
        ):  # fmt: skip
            out.extend(values.values())
        return out


def _store(
    d: Directory,
    *,
    client_key: SigningKey,
    client_id: str,
    cert: str,
    signer: Party,
    item: str,
    path: str,
    version: int,
    prev_manifest: str | None,
    values: Mapping[str, bytes],
    approvers: list[Party],
    threshold: int,
) -> tuple[st.StoreUpload, str]:
    upload = st.build_store(
        client=client_id,
        key=client_key,
        directory=d,
        item=item,
        path=path,
        version=version,
        prev=None if prev_manifest is None else st.manifest_hash(prev_manifest),
        values=values,
        approvers=[p.id for p in approvers],
        threshold=threshold,
        purpose="initial setup",
        context=RequestContext(host="ops-laptop", user="ana"),
        now=NOW,
    )
    verified = st.verify_store(
        upload,
        directory=d,
        approver=signer.id,
        hpke_key=signer.hpke,
        certificate=cert,
        now=NOW,
        prev_manifest=prev_manifest,
    )
    return upload, st.sign_manifest(
        verified, directory=d, approver=signer.id, key=signer.sig, now=NOW
    )


def _ask(
    client_key: SigningKey, client_id: str, vault: str, item: str, version: int | None,
    path: str = PATH1,
) -> ac.AccessRequest:  # fmt: skip
    return ac.build_access(
        client=client_id,
        key=client_key,
        vault=vault,
        items=[AccessItem(item=item, path=path, version=version, fields=("password",))],
        purpose="run database migration",
        context=RequestContext(
            host="ops-laptop", user="ana", uid=1000, pid=4242, argv=("psql", "-h", "db")
        ),
        now=NOW,
    )


def build_world() -> World:
    a = (make_party("a0"), make_party("a1"), make_party("a2"))
    vault = ids.new_id(ids.VAULT)
    links = [dirs.genesis_link(vault, a[0].record, a[0].sig, now=NOW)]
    fingerprint = dirs.vault_fingerprint(links[0])
    d = dirs.verify_directory(links, pinned=fingerprint)
    for p in a[1:]:
        links.append(dirs.append_link(d, "add", p.record, signer=a[0].id, key=a[0].sig, now=NOW))
        d = dirs.verify_directory(links, pinned=fingerprint)

    relay = make_party("relay")
    client_key, client_id = SigningKey.generate(), ids.new_id(ids.CLIENT)
    client_info = ClientInfo(id=client_id, kind="human", name="ana", sig_pk=client_key.verify_key())
    cert = certs.issue_certificate(
        d, issuer=a[1].id, key=a[1].sig, client=client_info, scopes=["read", "write"],
        constraints=ClientConstraints(not_after=NOW + DAY), now=NOW,
    )  # fmt: skip
    hostname_cert = certs.issue_certificate(
        d, issuer=a[0].id, key=a[0].sig, client=client_info, scopes=["read"],
        constraints=ClientConstraints(not_after=NOW + DAY, hostname="ci-*"), now=NOW,
    )  # fmt: skip
    other_client_key, other_client_id = SigningKey.generate(), ids.new_id(ids.CLIENT)
    other_cert = certs.issue_certificate(
        d, issuer=a[0].id, key=a[0].sig,
        client=ClientInfo(
            id=other_client_id, kind="machine", name="release-bot",
            sig_pk=other_client_key.verify_key(),
        ),
        scopes=["read"], constraints=ClientConstraints(not_after=NOW + DAY), now=NOW,
    )  # fmt: skip

    common = {"client_key": client_key, "client_id": client_id, "cert": cert}
    item1 = ids.new_id(ids.ITEM)
    values1 = {"user": plaintext("item1-v1-user"), "password": plaintext("item1-v1-password")}
    up1, man1 = _store(
        d, **common, signer=a[2], item=item1, path=PATH1, version=1, prev_manifest=None,
        values=values1, approvers=list(a), threshold=1,
    )  # fmt: skip
    values1v2 = {"user": plaintext("item1-v2-user"), "password": plaintext("item1-v2-password")}
    up1v2, man1v2 = _store(
        d, **common, signer=a[0], item=item1, path=PATH1, version=2, prev_manifest=man1,
        values=values1v2, approvers=list(a), threshold=1,
    )  # fmt: skip
    item2 = ids.new_id(ids.ITEM)
    values2 = {"user": plaintext("item2-user"), "password": plaintext("item2-password")}
    up2, man2 = _store(
        d, **common, signer=a[1], item=item2, path=PATH2, version=1, prev_manifest=None,
        values=values2, approvers=list(a), threshold=2,
    )  # fmt: skip
    values2v2 = {"user": plaintext("item2-v2-user"), "password": plaintext("item2-v2-password")}
    up2v2, man2v2 = _store(
        d, **common, signer=a[1], item=item2, path=PATH2, version=2, prev_manifest=man2,
        values=values2v2, approvers=list(a), threshold=2,
    )  # fmt: skip
    item3 = ids.new_id(ids.ITEM)
    values3 = {"password": plaintext("item3-password")}
    up3, man3 = _store(
        d, **common, signer=a[0], item=item3, path=PATH3, version=1, prev_manifest=None,
        values=values3, approvers=[a[0], a[1]], threshold=1,
    )  # fmt: skip

    req_latest = _ask(client_key, client_id, vault, item1, None)
    req_other = _ask(client_key, client_id, vault, item1, None)
    req_v2 = _ask(client_key, client_id, vault, item1, 2)
    req_m2 = _ask(client_key, client_id, vault, item2, None, PATH2)

    # Vault 2: a0 founds a second vault with the very same record and keys.
    vault2 = ids.new_id(ids.VAULT)
    link0_v2 = dirs.genesis_link(vault2, a[0].record, a[0].sig, now=NOW)
    d2 = dirs.verify_directory([link0_v2], pinned=dirs.vault_fingerprint(link0_v2))
    cert_v2 = certs.issue_certificate(
        d2, issuer=a[0].id, key=a[0].sig, client=client_info, scopes=["read"],
        constraints=ClientConstraints(not_after=NOW + DAY), now=NOW,
    )  # fmt: skip
    up_v2 = st.store_as_approver(
        directory=d2, approver=a[0].id, key=a[0].sig, item=item1, path=PATH1, version=1,
        prev=None, values={"password": plaintext("vault2-password")}, approvers=[a[0].id],
        threshold=1, now=NOW,
    )  # fmt: skip

    # Enrollment for CI machines, signed by a0.
    enrollment_id = ids.new_id(ids.ENROLLMENT)
    delegation_key = SigningKey.generate()
    enrollment = certs.issue_enrollment(
        d, issuer=a[0].id, key=a[0].sig, enrollment_id=enrollment_id,
        delegation_key=delegation_key.verify_key(),
        constraints=EnrollmentConstraints(
            projects=("app",), items=("app/prod/*",), max_uses=5, not_after=NOW + DAY
        ),
        now=NOW,
    )  # fmt: skip
    enrollment_stmt = certs.verify_enrollment(enrollment, d, now=NOW)
    machine_key = SigningKey.generate()
    machine_cert = certs.issue_machine_certificate(
        enrollment_stmt, delegation_key=delegation_key,
        client=ClientInfo(
            id=ids.new_id(ids.CLIENT), kind="machine", name="ci-42",
            sig_pk=machine_key.verify_key(),
        ),
        scopes=["read"], constraints=ClientConstraints(not_after=NOW + 3600), now=NOW,
    )  # fmt: skip
    human_cert_by_enrollment = certs.issue_machine_certificate(
        enrollment_stmt, delegation_key=delegation_key, client=client_info, scopes=["read"],
        constraints=ClientConstraints(not_after=NOW + 3600), now=NOW,
    )  # fmt: skip

    # Directory evolutions: a removal, and a fork the relay can provoke by
    # withholding link 3 from one approver so that it appends its own.
    links_removed = (
        *links,
        dirs.append_link(d, "remove", a[1].record, signer=a[0].id, key=a[0].sig, now=NOW + 10),
    )
    directory_removed = dirs.verify_directory(links_removed, pinned=fingerprint)
    fork_x = dirs.append_link(
        d, "add", make_party("x").record, signer=a[0].id, key=a[0].sig, now=NOW + 20
    )
    fork_y = dirs.append_link(
        d, "add", make_party("y").record, signer=a[2].id, key=a[2].sig, now=NOW + 20
    )

    world = World(
        now=NOW, vault=vault, a=a, links=tuple(links), fingerprint=fingerprint, directory=d,
        relay=relay, relay_client_key=SigningKey.generate(),
        relay_client_id=ids.new_id(ids.CLIENT),
        client_key=client_key, client_id=client_id, client_info=client_info, cert=cert,
        other_client_key=other_client_key, other_client_id=other_client_id,
        other_cert=other_cert, hostname_cert=hostname_cert,
        item1=item1, values1=values1, up1=up1, man1=man1,
        values1v2=values1v2, up1v2=up1v2, man1v2=man1v2,
        item2=item2, values2=values2, up2=up2, man2=man2,
        values2v2=values2v2, up2v2=up2v2, man2v2=man2v2,
        item3=item3, values3=values3, up3=up3, man3=man3,
        req_latest=req_latest, req_other=req_other, req_v2=req_v2, req_m2=req_m2,
        rel_latest="", rel_latest_v1="", rel_other="", rel_m2={}, deny_latest="",
        vault2=vault2, directory2=d2, cert_v2=cert_v2, man_v2=up_v2.manifest, up_v2=up_v2,
        enrollment=enrollment, enrollment_id=enrollment_id, enrollment_stmt=enrollment_stmt,
        delegation_key=delegation_key, machine_cert=machine_cert,
        human_cert_by_enrollment=human_cert_by_enrollment,
        links_removed=links_removed, directory_removed=directory_removed,
        fork_x=fork_x, fork_y=fork_y,
    )  # fmt: skip
    # Honest answers, made through the world's own helper.
    rel_latest = world.release_by(a[0], req_latest, item1, up1v2, man1v2)
    rel_latest_v1 = world.release_by(a[0], req_latest, item1, up1, man1)
    rel_other = world.release_by(a[0], req_other, item1, up1v2, man1v2)
    rel_m2 = {p.id: world.release_by(p, req_m2, item2, up2, man2) for p in a[:2]}
    deny_latest = ac.deny(
        req_latest.hash, directory=d, approver=a[2].id, key=a[2].sig,
        reason="not during the freeze", now=NOW,
    )  # fmt: skip
    return replace(
        world,
        rel_latest=rel_latest,
        rel_latest_v1=rel_latest_v1,
        rel_other=rel_other,
        rel_m2=rel_m2,
        deny_latest=deny_latest,
    )


@pytest.fixture(scope="session")
def world() -> World:
    return build_world()
