"""The one thing about a request's sender that only the relay sees: its address.

Every use of it (the audit log, the vault's allowlist, policies' and
certificates' networks, the rate limits of anonymous calls) takes it from
:func:`source_ip`, so a forwarded header is believed in one place or nowhere.
:class:`Forwarded` works it out once per request, as the request arrives.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sealbox.server.networks import forwarded_source, inside, parse_networks

__all__ = ["Forwarded", "source_ip"]

#: Where :class:`Forwarded` leaves the source address in the ASGI scope.
SOURCE = "sealbox.source"


def source_ip(request: Request) -> str | None:
    """The address the request came from: its connection's, or as trusted proxies report it.

    Reported by the server and by proxies the operator named, never verified by anyone.
    """
    scope = request.scope
    if SOURCE in scope:
        source: str | None = scope[SOURCE]
        return source
    # Not through the relay's app (nothing forwarded is believed there).
    return request.client.host if request.client else None


class Forwarded:
    """Find each request's source address, believing forwarded headers from trusted proxies only.

    With no trusted proxies (the default) the source is the connection's peer,
    and ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are ignored: anyone can
    send them.  When the peer is inside a trusted proxy network, the source is
    the right-most ``X-Forwarded-For`` address that is not itself a trusted
    proxy (:func:`sealbox.server.networks.forwarded_source`), and an
    ``X-Forwarded-Proto`` of ``http`` or ``https`` is the scheme the client used
    (request signatures cover it, in ``@target-uri``).  The connection's own
    peer stays in ``scope["client"]``.
    """

    def __init__(self, app: ASGIApp, proxies: tuple[str, ...]) -> None:
        self.app = app
        self.proxies = parse_networks(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            peer = client[0] if client else None
            if self.proxies and inside(peer, self.proxies):
                forwarded: list[str] = []
                proto = None
                for name, value in scope["headers"]:
                    if name == b"x-forwarded-for":
                        forwarded.append(value.decode("latin-1"))
                    elif name == b"x-forwarded-proto":
                        # The edge proxy's value comes first when inner ones append theirs.
                        proto = value.decode("latin-1").split(",")[0].strip().lower()
                scope[SOURCE] = forwarded_source(peer, forwarded, self.proxies)
                if proto in ("http", "https"):
                    scope["scheme"] = proto
            else:
                scope[SOURCE] = peer
        await self.app(scope, receive, send)
