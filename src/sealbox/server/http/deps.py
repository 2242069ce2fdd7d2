"""What every resource module needs from a request: the relay, the caller, its address."""

from __future__ import annotations

from fastapi import Request

from sealbox.server.auth import Anyone, Approver, Client, ConsoleSession, Principal
from sealbox.server.auth.peer import source_ip
from sealbox.server.relay import Relay

__all__ = [
    "Anyone", "Approver", "Client", "ConsoleSession", "Principal", "relay_of", "source_ip",
]  # fmt: skip


def relay_of(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay
