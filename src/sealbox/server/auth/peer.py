"""The one thing about a request's sender that only the relay sees: its address."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["source_ip"]


def source_ip(request: Request) -> str | None:
    """The peer address the relay saw: reported by the server, never verified by anyone."""
    return request.client.host if request.client else None
