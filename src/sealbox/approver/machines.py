"""An approver's side of machines: bootstrap tokens, approving registrations, provisioning.

Each act is signed on this device.  Approving a machine certifies the key the
machine made (whose safety code and registration code the approver compared)
as kind ``machine``, with the scopes its token asked for and one
``items:PATTERN`` scope per asked pattern, so the certificate itself carries
the machine's stage isolation.  Provisioning makes the machine's key *here*,
on the approver's device, certifies it, and registers only its public half:
the relay never sees the private key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import SigningKey, VerifyKey
from sealbox.errors import MalformedInput
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol import scopes as scope_rules
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo

__all__ = [
    "CERTIFICATE_DAYS",
    "MAX_DAYS",
    "Provisioned",
    "approve_machine",
    "create_token",
    "deny_machine",
    "machine_scopes",
    "pending_machines",
    "provision",
]

#: How long a machine's certificate lasts unless the approver says otherwise.
CERTIFICATE_DAYS = 90
MAX_DAYS = 366


@dataclass(frozen=True)
class Provisioned:
    """A machine made on this device: what its identity file holds (the key stays here)."""

    server: str
    vault: str
    fingerprint: str
    """The vault fingerprint this approver pinned: the machine trusts exactly that link 0."""
    head: dirs.DirectoryHead
    client_id: str
    name: str
    key: SigningKey
    certificate: str

    def __repr__(self) -> str:
        return f"Provisioned(client_id={self.client_id!r}, name={self.name!r})"


def machine_scopes(grants: Sequence[str], scopes: Sequence[str]) -> list[str]:
    """The certificate scopes for a machine asking ``grants``: its access scopes and an
    ``items:`` scope per pattern (checked as a certificate's scopes are).

    Only ``read`` and ``write`` are taken from ``scopes`` (what the relay lists for a
    waiting machine): an ``items:`` scope slipped in there would widen the item limits the
    approver was shown, and a ``role:`` scope is no machine's.
    """
    extra = [s for s in scopes if s not in (scope_rules.READ, scope_rules.WRITE)]
    if extra:
        raise MalformedInput(
            "a machine's access scopes are read and write only",
            hint="Deny this registration: its token did not ask for this.",
        )  # fmt: skip
    out = sorted({*scopes, *(scope_rules.ITEMS + g for g in grants)})
    for scope in out:
        try:
            scope_rules.check_scope(scope)
        except ValueError as exc:
            raise MalformedInput(str(exc), hint="Use --grant PROJECT/ENV/ITEM and --scope "
                                 "read|write.") from None  # fmt: skip
    return out


def _days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise MalformedInput(f"a machine certificate lasts 1 to {MAX_DAYS} days")
    return days


def create_token(session: ApproverSession, *, name: str, grants: Sequence[str],
                 scopes: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """A one-time bootstrap token for one machine (ten minutes; the relay keeps its hash)."""
    body = {"name": name, "grants": list(grants), "scopes": list(scopes)}
    made: dict[str, Any] = session.ok("POST", "/bootstrap-tokens", "making a bootstrap token",
                                      json_body=body)  # fmt: skip
    return made


def pending_machines(session: ApproverSession) -> list[dict[str, Any]]:
    listed = session.ok("GET", "/machine-registrations", "listing waiting machines")
    return list(listed["machine_registrations"])


def approve_machine(session: ApproverSession, entry: dict[str, Any], *,
                    days: int = CERTIFICATE_DAYS) -> str:  # fmt: skip
    """Certify a waiting machine's key (as listed by the relay) for what its token asked."""
    directory = session.directory(fresh=True)
    now = int(time.time())
    client = ClientInfo(
        id=ids.check_id(entry.get("client_id"), ids.CLIENT, what="client id"), kind="machine",
        name=str(entry.get("name"))[:128], sig_pk=VerifyKey.from_text(entry.get("sig_pk")),
    )  # fmt: skip
    cert = issue_certificate(
        directory, issuer=session.id, key=session.keys.sig, client=client,
        scopes=machine_scopes(entry.get("grants") or (), entry.get("scopes") or ()),
        constraints=ClientConstraints(not_after=now + _days(days) * 86400), now=now,
    )  # fmt: skip
    session.ok("POST", f"/machine-registrations/{client.id}/approve", "approving the machine",
               json_body={"certificate": cert})  # fmt: skip
    return client.id


def deny_machine(session: ApproverSession, client_id: str) -> None:
    session.ok("POST", f"/machine-registrations/{client_id}/deny", "denying the machine")


def provision(session: ApproverSession, *, name: str, grants: Sequence[str],
              scopes: Sequence[str], days: int = CERTIFICATE_DAYS) -> Provisioned:  # fmt: skip
    """Make a machine's key here, certify it, register its public half, add its grants.

    Returns the machine's identity (with its private key) for the caller to write
    out; the relay is sent only the certificate and the grant patterns.
    """
    if not grants:
        raise MalformedInput("a machine needs at least one --grant PROJECT/ENV/ITEM")
    scopes_ = machine_scopes(grants, scopes)
    directory = session.directory(fresh=True)
    now = int(time.time())
    key = SigningKey.generate()
    client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="machine", name=name,
                        sig_pk=key.verify_key())  # fmt: skip
    ClientInfo.from_json(client.to_json())  # a name a verifier would refuse fails here
    cert = issue_certificate(
        directory, issuer=session.id, key=session.keys.sig, client=client, scopes=scopes_,
        constraints=ClientConstraints(not_after=now + _days(days) * 86400), now=now,
    )  # fmt: skip
    session.ok("POST", "/clients", "registering the machine", json_body={"certificate": cert})
    for pattern in sorted(set(grants)):
        session.ok("POST", f"/clients/{client.id}/grants", "granting the machine",
                   json_body={"pattern": pattern})  # fmt: skip
    return Provisioned(
        server=session.keys.server, vault=session.keys.vault, fingerprint=session.keys.fingerprint,
        head=directory.head, client_id=client.id, name=name, key=key, certificate=cert,
    )  # fmt: skip
