"""What every resource module needs from a request: the relay, the caller, its address."""

from __future__ import annotations

from fastapi import Request

from sealbox.server.auth import Anyone, Approver, Client, Principal
from sealbox.server.relay import Relay

__all__ = ["Anyone", "Approver", "Client", "Principal", "relay_of", "source_ip"]


def relay_of(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


def source_ip(request: Request) -> str | None:
    """The peer address the relay saw: reported by the server, never verified by anyone."""
    return request.client.host if request.client else None
