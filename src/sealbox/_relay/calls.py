"""Sans-IO calls to the relay and its replies, read strictly.

A flow is a generator that yields the :class:`Call` s it needs and is sent
back a :class:`Reply` for each; it returns its result or raises.  The same
flow runs under the blocking and the asyncio driver (the shape of httpx's
``auth_flow``), and under a fake relay in tests, so each piece of logic that
talks to the relay exists once.

Everything the relay says is untrusted: an error's message and hint are made
safe to print before they reach a person, and a reply that is not the JSON
object a call expects raises :class:`~sealbox.errors.RelayRefused`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

from sealbox._relay.text import displayable
from sealbox.errors import RelayRefused

__all__ = ["Call", "Flow", "Reply", "expect_object", "field", "refused"]


@dataclass(frozen=True)
class Call:
    """One HTTP call a flow needs; the driver adds the server URL and credentials."""

    method: str
    path: str
    """From the server's root, e.g. ``/v1/vaults/vlt_…/directory``."""
    json: Any = None
    form: Mapping[str, str] | None = None
    """A form body (the OAuth endpoints), instead of JSON."""
    auth: bool = True
    """Whether the driver adds this device's credentials (a bearer token or a signature)."""
    timeout: float | None = None
    """Longer than the default: for long polls."""
    until: float | None = None
    """Wall-clock time until which the call is worth retrying if the relay cannot be reached
    or answers 502/503/504 (a wait rides out a relay restart).  ``None``: fail at once."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    """The parsed JSON body (``None`` if it was not JSON)."""
    retry_after: float | None = None
    """The ``Retry-After`` header in seconds, if the relay sent one."""


Flow = Generator[Call, Reply, Any]


def refused(reply: Reply, what: str) -> RelayRefused:
    """The relay's error answer as an exception, its words made safe to print."""
    body = reply.body if isinstance(reply.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), str) else None
    message = body.get("message") or body.get("error_description") or error
    hint = body.get("hint") if isinstance(body.get("hint"), str) else None
    text = displayable(message) if message else f"HTTP {reply.status}"
    return RelayRefused(
        f"{what}: the relay refused: {text}", hint=displayable(hint) if hint else None,
        status=reply.status, error=displayable(error, 64) if error else None,
        retry_after=reply.retry_after,
    )  # fmt: skip


def expect_object(reply: Reply, what: str, status: int = 200) -> dict[str, Any]:
    """The reply's JSON object if it has ``status``; else the relay's refusal."""
    if reply.status != status:
        raise refused(reply, what)
    if not isinstance(reply.body, dict):
        raise RelayRefused(f"{what}: the relay's answer is not a JSON object")
    return reply.body


def field(body: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    """``body[key]`` if it is a ``kind`` (never a bool standing in for an int)."""
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RelayRefused(f"{what}: the relay's answer has no valid {key!r}")
    return value
