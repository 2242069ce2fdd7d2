"""Wake-ups between replicas: PostgreSQL ``NOTIFY``, delivered only when the transaction commits."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["notify"]

_NOTIFY = text("SELECT pg_notify(:c, :p)")


async def notify(conn: AsyncConnection, channel: str, payload: str) -> None:
    """Queue ``payload`` on ``channel`` inside the caller's transaction (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY, {"c": channel, "p": payload})
