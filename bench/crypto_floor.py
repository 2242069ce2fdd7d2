"""How close sealbox's hot paths run to the cryptography they cannot avoid.

Run as ``python bench/crypto_floor.py [--seconds S]``.  This is a benchmark,
not a test: it asserts no speed.  Every figure is one line of JSON on
stdout, after one header line naming the Python, the ``cryptography`` and
OpenSSL versions and the machine's cores, so runs can be compared by tools.

Each figure times a sealbox operation (``ops_per_s``) and, in the same run
and the same process, its *floor* (``floor_ops_per_s``): the raw
``cryptography`` primitives that operation necessarily performs, called
back to back on pre-built inputs of the same sizes (mostly the very same
bytes: real signatures over real signing inputs, real HPKE blobs under
their real ``info``).  ``ratio = ops_per_s / floor_ops_per_s`` is the share
of the time that is cryptography; ``1 - ratio`` is what parsing,
canonical JSON, base64url, checks and Python calls cost on top.  The floor
leaves out what a faster implementation could avoid: it loads long-term
keys once (sealbox decodes public keys from their bytes at every use) and
does no JSON, base64url or length-prefixed encoding.  Each line's
``floor`` object counts the primitives in one floor operation.

The figures:

``build_access`` (client asks for one field)
    :func:`sealbox.protocol.access.build_access`: a fresh one-time X25519
    key, an access statement, its Ed25519 signature and its statement hash.
    Floor: 1 X25519 key generation (with its public key), 1 Ed25519 sign,
    1 SHA-256.

``approver_release`` (1 and 4 fields of one item, M = 1 of N = 3)
    What an approver does per request it grants:
    :func:`~sealbox.protocol.access.verify_access` (which verifies the
    client certificate, then the access statement) and
    :func:`~sealbox.protocol.access.release` (which verifies the item
    manifest, checks each wrapped share against its signed hash, HPKE-opens
    its own share of each field asked for, HPKE-seals them to the request's
    one-time key and signs the release).  Floor: 3 Ed25519 verifies
    (certificate, access statement, manifest), F HPKE opens (its own share
    of each field), 1 X25519 public-key load (the one-time key is new each
    time), 1 HPKE seal, 1 Ed25519 sign, and 2 + F SHA-256 (request hash,
    manifest hash, one per wrapped share).  The approver's work does not
    depend on M, so only M = 1 is timed.

``client_open`` (1 and 4 fields; M = 1 of 3 and M = 2 of 3)
    :func:`~sealbox.protocol.access.open_release` on M releases: verify the
    manifest and every release, HPKE-open each release with the one-time
    key, combine M shares per field, check each ciphertext's hash and
    decrypt it.  Floor: 1 + M Ed25519 verifies, M HPKE opens, F AES-256-GCM
    decryptions (each under its own field key, so F key set-ups), 1 + F
    SHA-256 (manifest hash, one per ciphertext).  Shamir combination is
    *not* in the floor: it is sealbox's own pure-Python GF(2^8) code, not a
    ``cryptography`` primitive (``floor_excludes`` says so on the line), and
    it is run even for M = 1, where it is a copy in disguise.  For M = 2 it
    is a large part of the gap between the figure and its floor.

Measurement: everything is built before any clock starts (directory, keys,
certificate, stored items, requests, releases).  Each operation is checked
once for a correct result, warmed up, then timed with
:func:`time.perf_counter` in rounds of ``S / 3`` seconds, operation and floor
alternating round by round so that a burst of noise from a neighbour hits
both.  Each reports the best of its 3 rounds: on a shared, noisy machine
the fastest round is the one least disturbed.  The garbage collector is off
inside a round.  The whole run takes about ``2 * 7 * S`` seconds plus setup.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from sealbox.crypto import aead, hpke, jws, shamir
from sealbox.crypto.encoding import b64u_decode
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.protocol import access, certificates, directory, ids, store
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import (
    AccessItem,
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    ReleaseStatement,
    RequestContext,
    verify_statement,
)

BENCH = "crypto_floor"
ROUNDS = 3
NOW = 1_800_000_000
N_APPROVERS = 3
FIELD_VALUE = b"correct horse battery staple 0123456789abcdef"  # 45 bytes, a long password
#: The same HPKE suite as :mod:`sealbox.crypto.hpke`, driven directly.
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)

Op = Callable[[], object]


# --- the world: everything built before any clock starts ----------------------------------


@dataclass(frozen=True)
class Approver:
    record: ApproverRecord
    hpke_key: HpkePrivateKey
    sign_key: SigningKey


@dataclass(frozen=True)
class World:
    directory: Directory
    approvers: tuple[Approver, ...]
    client: str
    client_key: SigningKey
    certificate: str


@dataclass(frozen=True)
class StoredItem:
    """One item version as the relay holds it."""

    id: str
    path: str
    fields: tuple[str, ...]
    threshold: int
    manifest: str
    ciphertexts: Mapping[str, bytes]
    wraps: Mapping[str, Mapping[str, bytes]]
    """approver id -> field name -> wrapped share."""


def build_world() -> World:
    """A vault with three approvers and one certified human client."""
    vault = ids.new_id(ids.VAULT)
    approvers = []
    for i in range(N_APPROVERS):
        hpke_key, sign_key = HpkePrivateKey.generate(), SigningKey.generate()
        record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name=f"approver-{i}", kind="terminal", tier="synced",
            hpke_pk=hpke_key.public_key(), sig_pk=sign_key.verify_key(),
        )  # fmt: skip
        approvers.append(Approver(record, hpke_key, sign_key))
    first = approvers[0]
    links = [directory.genesis_link(vault, first.record, first.sign_key, now=NOW)]
    pinned = directory.vault_fingerprint(links[0])
    d = directory.verify_directory(links, pinned=pinned)
    for a in approvers[1:]:
        links.append(
            directory.append_link(
                d, "add", a.record, signer=first.record.id, key=first.sign_key, now=NOW
            )
        )
        d = directory.verify_directory(links, pinned=pinned)
    client, client_key = ids.new_id(ids.CLIENT), SigningKey.generate()
    certificate = certificates.issue_certificate(
        d, issuer=approvers[1].record.id, key=approvers[1].sign_key,
        client=ClientInfo(id=client, kind="human", name="bench", sig_pk=client_key.verify_key()),
        scopes=["read", "write"], constraints=ClientConstraints(not_after=NOW + 86_400), now=NOW,
    )  # fmt: skip
    return World(d, tuple(approvers), client, client_key, certificate)


def store_item(world: World, *, fields: int, threshold: int) -> StoredItem:
    """Store an item of ``fields`` fields, M = ``threshold`` of all three approvers."""
    item = ids.new_id(ids.ITEM)
    names = tuple(f"field{i}" for i in range(fields))
    upload = store.build_store(
        client=world.client, key=world.client_key, directory=world.directory, item=item,
        path=f"bench/prod/item{fields}x{threshold}", version=1, prev=None,
        values=dict.fromkeys(names, FIELD_VALUE),
        approvers=[a.record.id for a in world.approvers], threshold=threshold,
        purpose="bench setup", context=RequestContext(), now=NOW,
    )  # fmt: skip
    signer = world.approvers[-1]
    verified = store.verify_store(
        upload, directory=world.directory, approver=signer.record.id, hpke_key=signer.hpke_key,
        certificate=world.certificate, now=NOW,
    )  # fmt: skip
    manifest = store.sign_manifest(
        verified, directory=world.directory, approver=signer.record.id, key=signer.sign_key,
        now=NOW,
    )  # fmt: skip
    return StoredItem(
        item,
        f"bench/prod/item{fields}x{threshold}",
        names,
        threshold,
        manifest,
        upload.ciphertexts,
        upload.wraps,
    )


def ask(world: World, item: StoredItem) -> access.AccessRequest:
    """The client's access request for every field of ``item``."""
    return access.build_access(
        client=world.client, key=world.client_key, vault=world.directory.vault,
        items=[AccessItem(item=item.id, path=item.path, version=None, fields=item.fields)],
        purpose="bench", context=RequestContext(host="bench-host"), now=NOW,
    )  # fmt: skip


def material(item: StoredItem, approver: Approver) -> dict[str, access.ItemMaterial]:
    return {
        item.id: access.ItemMaterial(manifest=item.manifest, wraps=item.wraps[approver.record.id])
    }


def grant(
    world: World,
    request: access.AccessRequest,
    approver: Approver,
    materials: Mapping[str, access.ItemMaterial],
) -> str:
    """The approver path: verify certificate and request, then release."""
    verified = access.verify_access(
        request.token, directory=world.directory, certificate=world.certificate, now=NOW
    )
    return access.release(
        verified, materials=materials, directory=world.directory, approver=approver.record.id,
        hpke_key=approver.hpke_key, key=approver.sign_key, now=NOW,
    )  # fmt: skip


# --- raw inputs for the floors ------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """A compact JWS cut into what Ed25519 verifies, with its signer's key loaded once."""

    message: bytes
    signature: bytes
    key: ed25519.Ed25519PublicKey

    @classmethod
    def of(cls, token: str, key: VerifyKey) -> Signed:
        return cls(
            message=signing_input(token),
            signature=b64u_decode(token.rsplit(".", 1)[1], length=64),
            key=ed25519.Ed25519PublicKey.from_public_bytes(key.raw),
        )

    def verify(self) -> None:
        self.key.verify(self.signature, self.message)


def signing_input(token: str) -> bytes:
    """What the Ed25519 signature of a compact JWS covers: ``header.payload``."""
    return token.rsplit(".", 1)[0].encode("ascii")


def _raw_private(text: str) -> bytes:
    """The 32 raw bytes of a private key, through its public text form."""
    return b64u_decode(text.split(":", 1)[1], length=32)


def x25519_private(key: HpkePrivateKey) -> x25519.X25519PrivateKey:
    return x25519.X25519PrivateKey.from_private_bytes(_raw_private(key.to_text()))


def ed25519_private(key: SigningKey) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(_raw_private(key.to_text()))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def signer_key(world: World, token: str) -> VerifyKey:
    """The directory key of the approver that signed ``token``."""
    return world.directory.approver(jws.read_header(token).kid).sig_pk


def release_statement(world: World, token: str) -> ReleaseStatement:
    signer = world.directory.approver(jws.read_header(token).kid)
    return verify_statement(token, ReleaseStatement, signer.sig_pk, signer.id)


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One line of output: a sealbox operation beside its floor."""

    name: str
    fields: int
    m: int | None
    n: int | None
    op: Op
    floor: Op
    floor_counts: Mapping[str, int]
    floor_excludes: Sequence[str] = ()


def build_access_figure(world: World, item: StoredItem) -> Figure:
    sample = ask(world, item)
    message = signing_input(sample.token)
    token_bytes = sample.token.encode("ascii")
    client_key = ed25519_private(world.client_key)

    def op() -> object:
        return ask(world, item)

    def floor() -> object:
        ephemeral = x25519.X25519PrivateKey.generate()
        ephemeral.public_key().public_bytes_raw()
        client_key.sign(message)
        return sha256(token_bytes)

    counts = {"x25519_keygen": 1, "ed25519_sign": 1, "sha256": 1}
    return Figure("build_access", len(item.fields), None, None, op, floor, counts)


def approver_release_figure(world: World, item: StoredItem) -> Figure:
    approver = world.approvers[0]
    request = ask(world, item)
    materials = material(item, approver)
    vault = world.directory.vault

    def op() -> object:
        return grant(world, request, approver, materials)

    # Inputs of the floor, taken from a real run of the operation.
    sample_token = grant(world, request, approver, materials)
    sample = release_statement(world, sample_token)
    cert = Signed.of(world.certificate, signer_key(world, world.certificate))
    access_sig = Signed.of(request.token, world.client_key.verify_key())
    manifest = Signed.of(item.manifest, signer_key(world, item.manifest))
    access_bytes, manifest_bytes = request.token.encode("ascii"), item.manifest.encode("ascii")
    hpke_key = x25519_private(approver.hpke_key)
    own_wraps = item.wraps[approver.record.id]
    wraps = [
        (
            own_wraps[name],
            store.wrap_info(
                vault=vault, item=item.id, version=1, field=name, approver=approver.record.id
            ),
        )
        for name in item.fields
    ]
    seal_info = access.release_info(vault=vault, request=request.hash, approver=approver.record.id)
    plaintext = hpke.open_sealed(request.ephemeral, sample.blob, seal_info)
    epk = request.statement.epk.raw
    release_message = signing_input(sample_token)
    sign_key = ed25519_private(approver.sign_key)
    for blob, info in wraps:  # the floor's inputs are right
        SUITE.decrypt(blob, hpke_key, info)

    def floor() -> object:
        cert.verify()
        access_sig.verify()
        sha256(access_bytes)
        manifest.verify()
        sha256(manifest_bytes)
        for blob, info in wraps:
            sha256(blob)
            SUITE.decrypt(blob, hpke_key, info)
        SUITE.encrypt(plaintext, x25519.X25519PublicKey.from_public_bytes(epk), seal_info)
        return sign_key.sign(release_message)

    f = len(item.fields)
    counts = {
        "ed25519_verify": 3, "hpke_open": f, "x25519_public_load": 1, "hpke_seal": 1,
        "ed25519_sign": 1, "sha256": 2 + f,
    }  # fmt: skip
    return Figure("approver_release", f, item.threshold, N_APPROVERS, op, floor, counts)


def client_open_figure(world: World, item: StoredItem) -> Figure:
    request = ask(world, item)
    holders = world.approvers[: item.threshold]
    releases = [grant(world, request, a, material(item, a)) for a in holders]
    manifests = {item.id: item.manifest}
    ciphertexts = {item.id: item.ciphertexts}
    d = world.directory

    def op() -> object:
        return access.open_release(
            request, releases=releases, manifests=manifests, ciphertexts=ciphertexts, directory=d
        )

    expected = {item.id: dict.fromkeys(item.fields, FIELD_VALUE)}
    result = access.open_release(
        request, releases=releases, manifests=manifests, ciphertexts=ciphertexts, directory=d
    )
    if result.values != expected:
        raise AssertionError("open_release returned the wrong values")

    # Inputs of the floor.  The field keys are rebuilt here, outside any clock, from
    # the holders' own shares; the floor then decrypts with them.
    manifest = Signed.of(item.manifest, signer_key(world, item.manifest))
    manifest_bytes = item.manifest.encode("ascii")
    ephemeral = x25519_private(request.ephemeral)
    opened = []
    for a, token in zip(holders, releases, strict=True):
        rel = release_statement(world, token)
        info = access.release_info(vault=d.vault, request=request.hash, approver=a.record.id)
        opened.append((Signed.of(token, a.record.sig_pk), rel.blob, info))
    decrypts = []
    for name in item.fields:
        shares = [
            hpke.open_sealed(
                a.hpke_key,
                item.wraps[a.record.id][name],
                store.wrap_info(
                    vault=d.vault, item=item.id, version=1, field=name, approver=a.record.id
                ),
            )
            for a in holders
        ]
        key = shamir.combine(shares, item.threshold)
        nonce = store.verify_manifest(item.manifest, d).fields[name].nonce
        aad = aead.field_aad(vault=d.vault, item=item.id, version=1, field=name)
        decrypts.append((key, nonce, item.ciphertexts[name], aad))
    for key, nonce, ciphertext, aad in decrypts:  # the floor's inputs are right
        if AESGCM(key).decrypt(nonce, ciphertext, aad) != FIELD_VALUE:
            raise AssertionError("floor inputs do not decrypt")

    def floor() -> object:
        manifest.verify()
        sha256(manifest_bytes)
        for signed, blob, info in opened:
            signed.verify()
            SUITE.decrypt(blob, ephemeral, info)
        for key, nonce, ciphertext, aad in decrypts:
            sha256(ciphertext)
            AESGCM(key).decrypt(nonce, ciphertext, aad)
        return None

    f, m = len(item.fields), item.threshold
    counts = {
        "ed25519_verify": 1 + m, "hpke_open": m, "aes_gcm_decrypt": f, "sha256": 1 + f,
    }  # fmt: skip
    return Figure("client_open", f, m, N_APPROVERS, op, floor, counts, ("shamir_combine",))


def build_figures(world: World) -> list[Figure]:
    items = {(f, m): store_item(world, fields=f, threshold=m) for f in (1, 4) for m in (1, 2)}
    return [
        build_access_figure(world, items[1, 1]),
        approver_release_figure(world, items[1, 1]),
        approver_release_figure(world, items[4, 1]),
        client_open_figure(world, items[1, 1]),
        client_open_figure(world, items[4, 1]),
        client_open_figure(world, items[1, 2]),
        client_open_figure(world, items[4, 2]),
    ]


# --- timing -------------------------------------------------------------------------------


def warm_up(fn: Op, seconds: float) -> None:
    """At least three calls, then more until ``seconds`` have passed."""
    for _ in range(3):
        fn()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        fn()


def one_round(fn: Op, seconds: float) -> float:
    """Operations per second over one round of about ``seconds`` (at least one call)."""
    gc.collect()
    gc.disable()
    try:
        count = 0
        start = time.perf_counter()
        while True:
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return count / elapsed
    finally:
        gc.enable()


def measure(figure: Figure, seconds: float) -> tuple[float, float]:
    """Best-of-``ROUNDS`` rates of the operation and its floor, rounds interleaved."""
    round_seconds = seconds / ROUNDS
    warm_up(figure.op, round_seconds / 2)
    warm_up(figure.floor, round_seconds / 2)
    best_op = best_floor = 0.0
    for _ in range(ROUNDS):
        best_op = max(best_op, one_round(figure.op, round_seconds))
        best_floor = max(best_floor, one_round(figure.floor, round_seconds))
    return best_op, best_floor


# --- output -------------------------------------------------------------------------------


def emit(line: Mapping[str, Any]) -> None:
    print(json.dumps(line, separators=(",", ":")), flush=True)


def header(seconds: float) -> dict[str, Any]:
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = None
    return {
        "bench": BENCH,
        "figure": "header",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "openssl": openssl_backend.openssl_version_text(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "seconds": seconds,
        "rounds": ROUNDS,
    }


def result(figure: Figure, ops: float, floor: float, seconds: float) -> dict[str, Any]:
    return {
        "bench": BENCH,
        "figure": figure.name,
        "fields": figure.fields,
        "m": figure.m,
        "n": figure.n,
        "ops_per_s": round(ops, 1),
        "floor_ops_per_s": round(floor, 1),
        "ratio": round(ops / floor, 3),
        "seconds": seconds,
        "floor": dict(figure.floor_counts),
        "floor_excludes": list(figure.floor_excludes),
    }


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--seconds",
        type=positive_seconds,
        default=1.0,
        help=f"seconds spent timing each operation, and as many its floor, split over "
        f"{ROUNDS} rounds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    emit(header(args.seconds))
    figures = build_figures(build_world())
    for figure in figures:
        ops, floor = measure(figure, args.seconds)
        emit(result(figure, ops, floor, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
