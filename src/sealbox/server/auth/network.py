"""The vault's network allowlist, held to machines and agents before their credential is checked.

It runs right after the caller's row is looked up (by the signature's
``keyid``, or by the bearer token's hash) and before anything costly: a flood
from a refused address costs the relay one indexed read each, never an Ed25519
verification.  People and approvers are not held to it: a person logs in from
wherever they are and every read of theirs waits for an approver anyway, and
approvers are the ones who change the list (an approver locked out could not
let anyone back in).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.errors import Forbidden
from sealbox.server.relay import Relay

__all__ = ["HELD_KINDS", "NetworkRefused", "check_network"]

#: The client kinds the allowlist holds.
HELD_KINDS = frozenset({"machine", "agent"})


class NetworkRefused(Forbidden):
    """A machine or agent called from outside its vault's allowlist."""

    def __init__(self, source: str | None, client_id: str | None) -> None:
        super().__init__(
            "network_not_allowed",
            f"this vault accepts machines and agents only from its allowed networks, and this "
            f"request came from {source or 'an unknown address'}",
            "Call from an allowed network, or ask an approver to run `sealbox approver network "
            "allow CIDR` for this address (behind a proxy, the relay needs --trusted-proxy).",
        )  # fmt: skip
        self.client_id = client_id
        """The caller, when its credential was already verified (a bearer token), else None."""


async def check_network(
    relay: Relay, conn: AsyncConnection, vault: str, kind: str, source: str | None,
    *, client_id: str | None = None,
) -> None:  # fmt: skip
    """Refuse a machine or agent calling from outside the vault's enabled allowlist."""
    if kind not in HELD_KINDS:
        return
    allowlist = await relay.allowlists.get(conn, vault)
    if not allowlist.allows(source):
        raise NetworkRefused(source, client_id)
