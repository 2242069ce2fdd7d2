"""Who is calling: the result of transport authentication, used by every protected route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal"]


@dataclass(frozen=True)
class Principal:
    vault: str
    id: str
    """An ``apv_…`` approver id, a ``cli_…`` client id, or an ``enr_…`` enrollment id (a CI
    runner signing with the enrollment's delegation key, to register itself)."""
    role: Literal["approver", "client", "enrollment"]
    client_kind: str | None = None
    """``human``, ``agent`` or ``machine`` for clients."""
    via: Literal["signature", "bearer", "session"] = "signature"

    @property
    def actor(self) -> str:
        return self.id
