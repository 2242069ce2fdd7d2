"""Audit events for refused requests: bad signatures, bad tokens, rate limits, networks.

(A request that presents no credentials at all is refused without an event.)

A refusal is recorded as ``auth.refused`` (severity ``warning``) in the vault's
log, in a transaction of its own: the refused request changes nothing else.
Anyone can provoke refusals, so they are throttled per vault, source address
and error code (one event a minute; the next one says how many were left out;
an IPv6 sender is its /64), with a budget per vault on top (60 a minute, so
many senders at once cannot fill the log either), and only vaults that exist
get events: a caller cannot make the relay write
for a vault id it made up.  The event holds the error code and, for a
signature, the ``keyid`` if it is a well-formed sealbox id; never a token,
signature or anything else the caller sent.
"""

from __future__ import annotations

from fastapi import Request

from sealbox.server.auth.httpsig import signed_key_id
from sealbox.server.auth.peer import source_ip
from sealbox.server.errors import RelayError
from sealbox.server.refused import ACTION, audit_refusal
from sealbox.server.relay import Relay

__all__ = ["ACTION", "audit_refusal", "record_refusal"]


async def record_refusal(
    request: Request, relay: Relay, vault: str, error: RelayError, *, actor: str | None = None
) -> None:
    """Append an ``auth.refused`` event for ``error``, unless throttled or the vault is unknown.

    ``actor`` is the caller when it was authenticated (over the rate limit, or an access
    token used from outside the vault's networks).
    """
    key_id = signed_key_id(request) if actor is None else None
    await audit_refusal(relay, vault, error, source=source_ip(request), actor=actor,
                        key_id=key_id)  # fmt: skip
