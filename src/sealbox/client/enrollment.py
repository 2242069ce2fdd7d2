"""``sealbox ci login``: a CI runner enrols itself with an enrollment token.

The runner holds the enrollment token (:mod:`sealbox.protocol.enrollment_token`):
the relay's URL, the vault's fingerprint, the enrollment id and its delegation
key.  :func:`enrol`:

1. verifies the vault's directory from the pinned fingerprint;
2. fetches the enrollment statement (a call signed with the delegation key)
   and verifies it: signed by a current approver, this enrollment, this key;
3. makes a fresh machine key here, and certifies it with the delegation key:
   kind ``machine``, scope ``read`` (plus the enrollment's item patterns),
   valid for ``ttl`` seconds but never past the enrollment, with the
   enrollment's networks and host-name pattern;
4. registers the certificate (signed with the delegation key); the relay
   checks the chain and the constraints, and counts the use.

The machine key never leaves the runner; the delegation key never reaches the
relay.  What comes back is an identity that signs every later request itself.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import httpx

from sealbox._relay.calls import Call, Flow, expect_object, field
from sealbox._relay.directory import DirectoryView, directory_flow
from sealbox._relay.drive import SyncDriver
from sealbox._relay.httpsig import signer
from sealbox.crypto.keys import SigningKey
from sealbox.errors import BindingMismatch, CertificateInvalid
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_machine_certificate, verify_enrollment
from sealbox.protocol.directory import DirectoryHead
from sealbox.protocol.enrollment_token import EnrollmentToken
from sealbox.protocol.scopes import ITEMS, READ
from sealbox.protocol.statements import ClientConstraints, ClientInfo

__all__ = ["DEFAULT_TTL", "MAX_TTL", "TOKEN_ENV", "Enrolled", "enrol", "enrol_flow"]

TOKEN_ENV = "SEALBOX_ENROLLMENT_TOKEN"  # noqa: S105 - the variable's name, not a token
#: A CI run's machine lives an hour unless asked otherwise, and at most a day.
DEFAULT_TTL = 3600
MAX_TTL = 86400


@dataclass(frozen=True)
class Enrolled:
    """A registered CI machine: everything its identity file needs."""

    server: str
    vault: str
    fingerprint: str
    head: DirectoryHead
    client_id: str
    client_name: str
    key: SigningKey
    certificate: str
    enrollment: str
    """The enrollment statement its certificate is delegated under."""
    enrollment_id: str
    enrollment_issuer: str
    not_after: int
    grants: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Enrolled(client={self.client_id}, enrollment={self.enrollment_id})"


def enrol_flow(
    token: EnrollmentToken, *, ttl: int = DEFAULT_TTL, name: str | None = None,
    hostname: str | None = None, now: int | None = None,
) -> Flow:  # fmt: skip
    if not 60 <= ttl <= MAX_TTL:
        raise ValueError("the machine's lifetime (--ttl) must be between 1 minute and 1 day")
    view = DirectoryView(vault=token.vault, fingerprint=token.fingerprint, head=None)
    directory = yield from directory_flow(view, fresh=True)
    base = f"/v1/vaults/{token.vault}/enrollments/{token.enrollment}"
    body = expect_object((yield Call("GET", f"{base}/statement")), "fetching the enrollment")
    statement = field(body, "statement", str, "fetching the enrollment")
    now = int(time.time()) if now is None else now
    enrollment = verify_enrollment(statement, directory, now=now)
    if enrollment.id != token.enrollment:
        raise BindingMismatch("the relay served another enrollment than the token names")
    if enrollment.sig_pk != token.key.verify_key():
        raise CertificateInvalid("the token's key is not this enrollment's delegation key")
    limits = enrollment.constraints
    key = SigningKey.generate()
    client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="machine",
                        name=(name or f"ci {hostname or 'runner'}")[:128],
                        sig_pk=key.verify_key())  # fmt: skip
    certificate = issue_machine_certificate(
        enrollment, delegation_key=token.key, client=client,
        scopes=[READ, *(ITEMS + pattern for pattern in limits.items)],
        constraints=ClientConstraints(not_after=min(now + ttl, limits.not_after),
                                      cidrs=limits.cidrs, hostname=limits.hostname),
        now=now,
    )  # fmt: skip
    reply = yield Call("POST", f"{base}/machines",
                       json={"certificate": certificate, "hostname": hostname})  # fmt: skip
    done = expect_object(reply, "registering this machine", status=201)
    if field(done, "client_id", str, "registering this machine") != client.id:
        raise BindingMismatch("the relay registered another client than this one")
    grants = done.get("grants")
    return Enrolled(
        server=token.server, vault=token.vault, fingerprint=token.fingerprint,
        head=directory.head, client_id=client.id, client_name=client.name, key=key,
        certificate=certificate, enrollment=statement, enrollment_id=enrollment.id,
        enrollment_issuer=enrollment.issuer,
        not_after=min(now + ttl, limits.not_after),
        grants=tuple(str(g) for g in grants) if isinstance(grants, list) else (),
    )  # fmt: skip


def enrol(
    token: EnrollmentToken, *, http: httpx.Client, ttl: int = DEFAULT_TTL,
    name: str | None = None, hostname: str | None = None,
) -> Enrolled:  # fmt: skip
    """Enrol this runner (see the module text); ``hostname`` defaults to this host's name."""
    driver = SyncDriver(http, token.server, authorize=signer(token.key, token.enrollment))
    host = hostname if hostname is not None else socket.gethostname()
    enrolled: Enrolled = driver.drive(enrol_flow(token, ttl=ttl, name=name, hostname=host))
    return enrolled
