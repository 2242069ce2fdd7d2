"""The audit event of a refused request, throttled: see :mod:`sealbox.server.auth.refusals`.

Here, below both the transport checks and the services, so that a refusal found
past authentication (a policy's networks) is recorded the same way.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from sealbox.server.errors import Forbidden, RelayError, TooMany
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store import directory as directory_store

__all__ = ["ACTION", "audit_refusal"]

ACTION = "auth.refused"

log = logging.getLogger("sealbox.relay")


async def audit_refusal(
    relay: Relay, vault: str, error: RelayError, *, source: str | None, actor: str | None,
    key_id: str | None = None, detail: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """The same event, for a refusal found past authentication (a policy's networks, say).

    ``key_id`` is a claimed, unverified signer; ``detail`` adds to the event (never
    anything secret).  Throttled and budgeted as :func:`record_refusal` is.
    """
    try:
        await _record(relay, vault, error, source, actor, key_id, detail or {})
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
    relay: Relay, vault: str, error: RelayError, source: str | None, actor: str | None,
    key_id: str | None, extra: dict[str, Any],
) -> None:  # fmt: skip
    async with relay.read() as conn:
        known = await directory_store.vault_exists(conn, vault)
    if not known:
        return
    now = relay.now()
    suppressed = relay.refusal_audit.admit((vault, _sender(source), error.code), now)
    if suppressed is None:
        return
    if relay.refusal_budget.allow(vault):
        # Past the vault's budget (many senders at once): no event, no write, so a
        # flood from many addresses can neither fill the log nor hold its lock.
        return
    # The status the caller got: over the rate limit, not allowed (its network), or not
    # authenticated.
    status = 429 if isinstance(error, TooMany) else 403 if isinstance(error, Forbidden) else 401
    detail: dict[str, Any] = {"error": error.code, "status": status, **extra}
    if key_id is not None:
        detail["key_id"] = key_id
    if suppressed:
        detail["suppressed"] = suppressed
    client_id = actor if actor is not None and actor.startswith("cli_") else None
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=actor or "anonymous", action=ACTION,
            severity="warning", client_id=client_id, source_ip=source, detail=detail,
        )  # fmt: skip
