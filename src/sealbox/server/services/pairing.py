"""Pairing a new approver device: it asks to join, an existing approver adds it.

The new device makes its keys and posts its directory record, with no
credentials (it has none yet).  Existing approvers list the pending
pairings, each shows the record's pairing code (computed on the approver's
own device from the record it received) for the person to compare with the
new device's screen, and adds it by appending a signed directory link, which
marks the pairing approved (:func:`sealbox.server.store.pairings.mark_paired`,
called by the directory service).  The new device polls its pairing by the
random id only it was given, then reads and verifies the directory.

The relay cannot add a device on its own (only an approver's signature
extends the directory), and a record it swapped on the way shows another
pairing code on one of the two screens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sealbox.protocol.state import PairingEvent, PairingState
from sealbox.protocol.statements import ApproverRecord
from sealbox.server.errors import Conflict, NotFound, TooMany
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.store import audit, pairings
from sealbox.server.store.pairings import Pairing

__all__ = [
    "PAIRING_SECONDS",
    "PENDING_MAX",
    "Pairing",
    "PairingStatus",
    "ask",
    "deny",
    "status",
    "waiting",
]

#: How long a pairing waits for an approver.
PAIRING_SECONDS = 600
#: Most pairings one vault keeps waiting at once (anyone may ask, so they are capped).
PENDING_MAX = 20


@dataclass(frozen=True)
class PairingStatus:
    id: str
    state: str
    """pending, approved or denied as stored; expired once a pending one is past its time."""
    expires_at: int


async def ask(
    relay: Relay, now: int, *, vault: str, approver: dict[str, Any], source_ip: str | None
) -> PairingStatus:
    """A new device asks to join with its directory record; the id it must keep to poll."""
    if relay.anonymous_limiter.allow(f"pairing {source_ip or 'unknown'}"):
        raise TooMany("rate_limited", "too many pairings asked from this address",
                      "Wait a minute and try again.")  # fmt: skip
    record = ApproverRecord.from_json(approver)
    pairing_id = secrets.token_urlsafe(16)
    async with relay.tx() as tx:
        directory = await relay.directories.load(tx.conn, vault)
        if record.id in directory.approvers:
            raise Conflict("already_approver", "this approver id is already in the directory")
        await pairings.purge_expired(tx.conn, vault, now)
        if await pairings.count_pending(tx.conn, vault) >= PENDING_MAX:
            raise TooMany("too_many_pairings", "too many devices are waiting to pair",
                          "Ask an approver to answer or let the waiting ones expire.")  # fmt: skip
        await pairings.insert(
            tx.conn, vault=vault, pairing_id=pairing_id, approver=record.to_json(),
            source_ip=source_ip, now=now, expires_at=now + PAIRING_SECONDS,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor="anonymous", action="pairing.requested",
            source_ip=source_ip,
            detail={"approver": record.id, "sig_pk": record.sig_pk.fingerprint()},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "pairing")
    return PairingStatus(pairing_id, PairingState.PENDING, now + PAIRING_SECONDS)


async def status(relay: Relay, now: int, *, vault: str, pairing_id: str) -> PairingStatus:
    """Where one pairing stands (its id is the credential)."""
    async with relay.read() as conn:
        pairing = await pairings.get(conn, vault, pairing_id)
    if pairing is None:
        raise NotFound("no_such_pairing", "no pairing with this id")
    return PairingStatus(pairing.id, pairing.state_at(now), pairing.expires_at)


async def waiting(relay: Relay, now: int, *, vault: str) -> list[Pairing]:
    """The devices waiting for an approver, oldest first."""
    async with relay.read() as conn:
        return await pairings.list_waiting(conn, vault, now)


async def deny(
    relay: Relay, now: int, *, vault: str, pairing_id: str, approver_id: str,
    source_ip: str | None,
) -> PairingState:  # fmt: skip
    """An approver refuses a device; of concurrent answers exactly one takes effect."""
    async with relay.tx() as tx:
        state = await pairings.transition(
            tx.conn, vault=vault, pairing_id=pairing_id, event=PairingEvent.DENIED
        )
        if state is None:
            raise NotFound("no_such_pairing", "no pending pairing with this id")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver_id, action="pairing.denied",
            source_ip=source_ip, detail={"pairing": pairing_id[:6]},
        )  # fmt: skip
    return state
