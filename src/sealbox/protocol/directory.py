"""The approver directory: a hash chain of signed links rooted in link 0.

Link 0 is self-signed by the vault's first approver; its hash is the vault
fingerprint that clients pin.  Every later link names the hash of the one
before and is signed by an approver in the set as of that previous link.
A client that verifies the whole chain from its pinned link 0 knows the
current approver keys without trusting the relay that served them.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import (
    b64u_decode,
    digest,
    digest_bytes,
    length_prefixed,
    parse_canonical_json,
)
from sealbox.crypto.keys import SigningKey, safety_code
from sealbox.errors import (
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    MalformedInput,
    NotAuthorized,
    SealboxError,
)
from sealbox.protocol.statements import (
    ApproverRecord,
    DirectoryLink,
    sign_statement,
    verify_statement,
)

__all__ = [
    "Directory",
    "DirectoryHead",
    "append_link",
    "genesis_link",
    "pairing_code",
    "vault_fingerprint",
    "vault_safety_code",
    "verify_directory",
]

#: Longest chain a client will verify (each link is one Ed25519 verification).
MAX_LINKS = 10_000


@dataclass(frozen=True)
class DirectoryHead:
    """What a client remembers of the newest link it has verified."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Directory:
    """A verified directory: the current approver set as of ``head``."""

    vault: str
    fingerprint: str
    """The vault fingerprint (hash of link 0) this chain was verified from."""
    approvers: Mapping[str, ApproverRecord] = field(hash=False)
    head: DirectoryHead
    tokens: tuple[str, ...]
    """The verified links, in order, exactly as received."""
    links: tuple[DirectoryLink, ...] = ()
    """The same links, parsed."""

    def approver(self, approver_id: str) -> ApproverRecord:
        """The current record of ``approver_id``; raise :class:`NotAuthorized` if not a member."""
        record = self.approvers.get(approver_id)
        if record is None:
            raise NotAuthorized(f"{approver_id} is not a current approver of this vault")
        return record

    @property
    def safety_code(self) -> str:
        return vault_safety_code(self.tokens[0])


def vault_fingerprint(link0: str) -> str:
    """The vault fingerprint: the labelled hash of the exact link-0 token."""
    return digest(labels.FINGERPRINT_VAULT, _ascii(link0))


def vault_safety_code(link0: str) -> str:
    """The short code a person compares when pinning a vault (four groups of five digits)."""
    return safety_code(digest_bytes(labels.FINGERPRINT_VAULT, _ascii(link0)))


def pairing_code(record: ApproverRecord) -> str:
    """The code a person compares on a new approver device and on the device adding it.

    It covers the approver id and both public keys, so a relay that swapped
    any of them between the two devices shows a different code.
    """
    data = length_prefixed(record.id, record.hpke_pk.to_text(), record.sig_pk.to_text())
    return safety_code(digest_bytes(labels.FINGERPRINT_APPROVER, data))


def _ascii(token: str) -> bytes:
    try:
        return token.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        raise MalformedInput("directory link: not a compact JWS") from None


def genesis_link(vault: str, approver: ApproverRecord, key: SigningKey, *, now: int) -> str:
    """Link 0: the first approver adds itself, signing with its own key."""
    if key.verify_key() != approver.sig_pk:
        raise ValueError("link 0 must be signed by the approver it adds")
    link = DirectoryLink(vault=vault, seq=0, prev=None, op="add", approver=approver, at=now)
    # Parse what we are about to sign: link 0 that no verifier accepts would brick the vault.
    DirectoryLink.from_json(link.to_json())
    return sign_statement(link, key, approver.id)


def append_link(
    directory: Directory,
    op: str,
    approver: ApproverRecord,
    *,
    signer: str,
    key: SigningKey,
    now: int,
) -> str:
    """A new link on top of ``directory``, signed by the current approver ``signer``."""
    record = directory.approver(signer)
    if key.verify_key() != record.sig_pk:
        raise ValueError("the signing key is not the signer's directory key")
    link = DirectoryLink(
        vault=directory.vault,
        seq=directory.head.seq + 1,
        prev=directory.head.hash,
        op=op,
        approver=approver,
        at=now,
    )
    # Check the result as a verifier would, so a bad link is refused here
    # rather than by every client later: parse it (an unknown op, bad ids or
    # display text), then apply it to the current set.
    DirectoryLink.from_json(link.to_json())
    _apply(dict(directory.approvers), link, signer)
    return sign_statement(link, key, signer)


def _apply(
    approvers: dict[str, ApproverRecord], link: DirectoryLink, signer: str
) -> dict[str, ApproverRecord]:
    a = link.approver
    if link.op == "add":
        if a.id in approvers:
            raise DirectoryBroken(f"link {link.seq}: {a.id} is already an approver")
        for other in approvers.values():
            if other.hpke_pk == a.hpke_pk or other.sig_pk == a.sig_pk:
                # A key listed twice would make "which approver signed this" ambiguous.
                raise DirectoryBroken(f"link {link.seq}: key already used by {other.id}")
        approvers[a.id] = a
    elif link.op == "remove":
        if approvers.get(a.id) != a:
            raise DirectoryBroken(f"link {link.seq}: removes an approver not in the set as listed")
        if len(approvers) == 1:
            raise DirectoryBroken(f"link {link.seq}: would remove the last approver")
        del approvers[a.id]
    else:  # update: same id, new name or keys (key rotation)
        if a.id not in approvers:
            raise DirectoryBroken(f"link {link.seq}: updates an approver not in the set")
        if signer != a.id:
            # Rotating a member's keys is that member's own act.  Were any member
            # allowed to, one device could re-key all the others to keys it holds,
            # and every later M-of-N store would be sealed to it alone.
            raise DirectoryBroken(f"link {link.seq}: an approver may update only itself")
        for other in approvers.values():
            if other.id != a.id and (other.hpke_pk == a.hpke_pk or other.sig_pk == a.sig_pk):
                raise DirectoryBroken(f"link {link.seq}: key already used by {other.id}")
        approvers[a.id] = a
    return approvers


def verify_directory(
    tokens: Sequence[str], *, pinned: str, cached_head: DirectoryHead | None = None
) -> Directory:
    """Verify a whole chain from the pinned vault fingerprint; return the current set.

    Raises :class:`DirectoryBroken` for any link that does not verify or
    chain, :class:`DirectoryRollback` when the chain is shorter than
    ``cached_head`` (the relay hides newer links, e.g. a removal), and
    :class:`DirectoryFork` when the link at ``cached_head.seq`` differs from
    the one seen before (the relay shows different clients different sets).
    """
    if not isinstance(pinned, str) or not pinned.isascii():
        raise MalformedInput("pinned vault fingerprint: expected a sha256: digest")
    if not tokens:
        raise DirectoryBroken("the directory is empty")
    if len(tokens) > MAX_LINKS:
        raise DirectoryBroken("the directory is longer than sealbox verifies")
    try:
        fingerprint = vault_fingerprint(tokens[0])
    except MalformedInput as exc:
        raise DirectoryBroken(f"link 0 does not verify: {exc.message}") from exc
    if not hmac.compare_digest(fingerprint, pinned):
        raise DirectoryBroken("link 0 does not match the pinned vault fingerprint")
    if cached_head is not None and cached_head.seq >= len(tokens):
        raise DirectoryRollback(
            f"relay served {len(tokens)} link(s); this client already saw link {cached_head.seq}"
        )
    approvers: dict[str, ApproverRecord] = {}
    parsed: list[DirectoryLink] = []
    vault = ""
    prev_hash: str | None = None
    prev_at = 0
    for seq, token in enumerate(tokens):
        try:
            header = jws.read_header(token)
            if seq == 0:
                # Self-signed: the key comes from the link itself, which the
                # pinned fingerprint has already fixed byte for byte.
                unverified = DirectoryLink.from_json(_unverified_payload(token))
                signer = unverified.approver
            else:
                signer = approvers.get(header.kid)  # type: ignore[assignment]
                if signer is None:
                    raise NotAuthorized(f"signer is not an approver as of link {seq - 1}")
            link = verify_statement(token, DirectoryLink, signer.sig_pk, signer.id)
        except DirectoryBroken:  # pragma: no cover - nothing in the try raises it today
            raise
        except SealboxError as exc:
            raise DirectoryBroken(f"link {seq} does not verify: {exc.message}") from exc
        if seq == 0:
            vault = link.vault
            if link.op != "add" or link.approver.id != header.kid:
                raise DirectoryBroken("link 0 must be the first approver adding itself")
        if link.seq != seq or link.prev != prev_hash:
            raise DirectoryBroken(f"link {seq}: does not chain to link {seq - 1}")
        if link.vault != vault:
            raise DirectoryBroken(f"link {seq}: belongs to another vault")
        if link.at < prev_at:
            raise DirectoryBroken(f"link {seq}: dated before the link it follows")
        approvers = _apply(approvers, link, header.kid)
        prev_hash = jws.statement_hash(token)
        prev_at = link.at
        parsed.append(link)
        if (
            cached_head is not None
            and seq == cached_head.seq
            and not hmac.compare_digest(prev_hash, cached_head.hash)
        ):
            raise DirectoryFork(
                f"link {seq} differs from the one this client saw before: the relay "
                "is showing different directories to different clients"
            )
    assert prev_hash is not None
    return Directory(
        vault=vault,
        fingerprint=pinned,
        approvers=approvers,
        head=DirectoryHead(seq=len(tokens) - 1, hash=prev_hash),
        tokens=tuple(tokens),
        links=tuple(parsed),
    )


def _unverified_payload(token: str) -> object:
    payload_b64 = token.split(".")[1]
    return parse_canonical_json(b64u_decode(payload_b64, what="JWS payload"), what="JWS payload")
