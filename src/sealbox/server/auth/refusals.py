"""Audit events for refused requests: bad signatures, bad tokens, rate limits.

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

import ipaddress
import logging
from typing import Any

from fastapi import Request

from sealbox.errors import SealboxError
from sealbox.server.auth.httpsig import signed_key_id
from sealbox.server.auth.peer import source_ip
from sealbox.server.errors import RelayError, TooMany
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import directory as directory_store

__all__ = ["ACTION", "FORBIDDEN_ACTION", "record_refusal"]

ACTION = "auth.refused"
#: An authenticated caller refused what it asked (403): outside its grants, scopes or role.
FORBIDDEN_ACTION = "request.refused"

log = logging.getLogger("sealbox.relay")


async def record_refusal(
    request: Request, relay: Relay, vault: str, error: SealboxError | RelayError, *,
    actor: str | None = None, status: int | None = None, action: str | None = None,
) -> None:  # fmt: skip
    """Append an ``auth.refused`` event for ``error``, unless throttled or the vault is unknown.

    ``actor`` is the caller when it was authenticated (refused over the rate limit, or
    refused what it asked: ``status`` 403 records ``request.refused`` instead, unless
    ``action`` says otherwise: a machine refused for its network before its credential
    is checked is an ``auth.refused`` with status 403).
    """
    try:
        await _record(request, relay, vault, error, actor, status, action)
    except Exception:
        # The caller is refused either way; a failed record must not turn that into a 500.
        log.exception("could not audit a refused request to vault %s", vault)


def _sender(source: str | None) -> str:
    """Who is throttled as one sender: the address, or its /64 for IPv6 (one host's share)."""
    try:
        address = ipaddress.ip_address(source or "")
    except ValueError:
        return source or ""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def _record(
    request: Request, relay: Relay, vault: str, error: SealboxError | RelayError,
    actor: str | None, status: int | None, action: str | None,
) -> None:  # fmt: skip
    async with relay.read() as conn:
        known = await directory_store.vault_exists(conn, vault)
    if not known:
        return
    source = source_ip(request)
    now = relay.now()
    suppressed = relay.refusal_audit.admit((vault, _sender(source), error.code), now)
    if suppressed is None:
        return
    if relay.refusal_budget.allow(vault):
        # Past the vault's budget (many senders at once): no event, no write, so a
        # flood from many addresses can neither fill the log nor hold its lock.
        return
    # The status the caller got: over the rate limit, or not authenticated (unless given).
    if status is None:
        status = 429 if isinstance(error, TooMany) else 401
    detail: dict[str, Any] = {"error": error.code, "status": status}
    key_id = signed_key_id(request) if actor is None else None
    if key_id is not None:
        detail["key_id"] = key_id
    if suppressed:
        detail["suppressed"] = suppressed
    client_id = actor if actor is not None and actor.startswith("cli_") else None
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=actor or "anonymous",
            action=action or (FORBIDDEN_ACTION if status == 403 else ACTION),
            severity="warning", client_id=client_id, source_ip=source, detail=detail,
        )  # fmt: skip
