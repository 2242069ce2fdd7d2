"""What every request of a client is held to before the relay acts on it.

The relay checks what only it can: the client's stored certificate against the
current directory, the certificate's networks against the address the request
came from (only the relay sees it), its scopes, and the client's grants.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import ClientCertificate
from sealbox.server.errors import Forbidden
from sealbox.server.networks import Network, certified_networks, inside, parse_networks
from sealbox.server.policy import ClientAccess, Policy, granted
from sealbox.server.relay import Relay
from sealbox.server.store import clients as client_store
from sealbox.server.store.clients import ClientRow

__all__ = [
    "Caller",
    "PolicyNetworkRefused",
    "certified",
    "check_policy_network",
    "check_source",
    "load_caller",
    "no_grant",
    "project_key",
    "require_grant",
    "require_scope",
]


@dataclass(frozen=True)
class Caller:
    """A client, as stored, with what deciding on its requests needs."""

    row: ClientRow
    directory: Directory
    access: ClientAccess
    """Its grants, within its certificate's limits."""
    policies: Sequence[Mapping[str, Any]]
    """The vault's policy rows."""


async def load_caller(
    relay: Relay, conn: AsyncConnection, vault: str, client_id: str, *, policies: bool = True
) -> Caller:
    directory = await relay.directories.load(conn, vault)
    row = await client_store.get(conn, vault, client_id)
    if row is None:
        # Authentication found the client a moment ago: it was deleted in between.
        raise Forbidden("client_required", "only a client of this vault may do this")
    access = await client_store.access(conn, vault, client_id)
    rows = await client_store.policy_rows(conn, vault) if policies else ()
    return Caller(row, directory, access, rows)


def no_grant(path: str, access: ClientAccess | None = None) -> Forbidden:
    if access is not None and granted(path, access.grants):
        # Granted, but outside the certificate's signed item scopes: no grant can help.
        return Forbidden(
            "outside_scope", f"{path} is outside the items this client's certificate allows",
            "This identity was certified for other items; use one certified for this path.",
        )  # fmt: skip
    return Forbidden(
        "no_grant", f"this client has no grant for {path}",
        "Ask an approver to grant this client access to the item's path.",
    )  # fmt: skip


def require_grant(path: str, access: ClientAccess) -> None:
    """The client may name ``path``: granted, and within its certificate's limits."""
    if not access.allows(path):
        raise no_grant(path, access)


def check_source(cert: ClientCertificate, ip: str | None) -> None:
    """Hold the certificate's CIDR constraint to the address the request came from.

    The source address is something only the relay observes, so enforcing the
    certificate's networks is the relay's job (docs/protocol.md section 7).
    """
    if not cert.constraints.cidrs:
        return
    if not inside(ip, certified_networks(cert.constraints.cidrs)):
        raise Forbidden(
            "source_not_allowed",
            "this client's certificate does not allow requests from this address "
            f"({ip or 'unknown'})",
            "Call from a network the certificate names, or get a certificate for this one.",
        )  # fmt: skip


class PolicyNetworkRefused(Forbidden):
    """A client asked for an item whose policy names networks, from outside all of them."""

    def __init__(self, path: str, source: str | None) -> None:
        super().__init__(
            "policy_network_not_allowed",
            f"the policy for {path} accepts requests only from its networks, and this one came "
            f"from {source or 'an unknown address'}",
            "Ask from one of the policy's networks (an approver can show them with `sealbox "
            "approver policy`), or ask an approver to change the policy.",
        )  # fmt: skip
        self.path = path


@functools.lru_cache(maxsize=1024)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    # Policies' networks were checked when written; the same few recur on every request.
    return parse_networks(cidrs)


def check_policy_network(policy: Policy, path: str, ip: str | None) -> None:
    """Hold an access or store request for ``path`` to its policy's networks, if it has any."""
    if policy.cidrs and not inside(ip, _networks(policy.cidrs)):
        raise PolicyNetworkRefused(path, ip)


def require_scope(cert: ClientCertificate, scope: str) -> None:
    """The certificate's scopes say what a client may ask: ``read`` (access), ``write`` (store)."""
    if scope not in cert.scopes:
        raise Forbidden(
            "scope_missing", f"this client's certificate does not grant {scope!r}",
            "Ask an approver for a certificate with that scope.",
        )  # fmt: skip


def certified(caller: Caller, now: int, ip: str | None) -> ClientCertificate:
    """The client's stored certificate, verified now and held to the source address."""
    cert = verify_certificate(
        caller.row.certificate, caller.directory, now=now, enrollment=caller.row.enrollment
    )
    check_source(cert, ip)
    return cert


async def project_key(relay: Relay, vault: str, path: str) -> bytes:
    """The data key of the item's project (stored before anything is sealed with it)."""
    return await relay.master_key.dek(relay.engine, vault, path.split("/", 1)[0])
