"""Transport authentication of the browser console: the session cookie, its CSRF token and Origin.

A console session is a random token in the HttpOnly, SameSite=Strict cookie
``sealbox_console``; the relay keeps only its hash.  It makes its holder the
approver it was started for, on the approver endpoints, while the approver is
in the directory.  A call that changes anything (every method but GET and
HEAD) must also carry the session's CSRF token in ``X-Sealbox-CSRF`` and come
from an allowed console origin (``Origin``): SameSite already keeps other
sites' requests from carrying the cookie; these two checks hold even where it
does not (an old browser, a sibling subdomain).
"""

from __future__ import annotations

from fastapi import Request

from sealbox.crypto import secrets as sx
from sealbox.server.auth.principal import Principal
from sealbox.server.config import Settings
from sealbox.server.errors import Forbidden, Unauthenticated
from sealbox.server.relay import Relay
from sealbox.server.store import console as console_store

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "check_csrf",
    "check_origin",
    "session_cookie",
    "verify_session",
]

COOKIE = "sealbox_console"
CSRF_HEADER = "x-sealbox-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def session_cookie(request: Request) -> str | None:
    token = request.cookies.get(COOKIE)
    return token or None


def check_origin(request: Request, settings: Settings) -> None:
    """Refuse a call whose ``Origin`` is not an allowed console origin (or missing)."""
    if request.headers.get("origin") not in settings.console_origin_list:
        raise Forbidden(
            "origin_not_allowed", "this origin may not use the console of this relay",
            "Open the console at the relay's public URL, or start the relay with "
            "--console-origin for `sealbox console`.",
        )  # fmt: skip


def check_csrf(request: Request, settings: Settings, token: str) -> None:
    """A changing call with a session cookie: an allowed Origin and the session's CSRF token."""
    check_origin(request, settings)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None or not sx.constant_time_equal(sent, console_store.csrf_for(token)):
        raise Forbidden(
            "csrf_invalid", f"this call needs the session's CSRF token in {CSRF_HEADER}",
            "Read it from GET console/session and send it with every call that changes anything.",
        )  # fmt: skip


async def verify_session(request: Request, relay: Relay, vault: str, token: str) -> Principal:
    """The approver of a live console session; CSRF and Origin checked on changing calls."""
    now = relay.now()
    async with relay.read() as conn:
        row = await console_store.get_session(conn, vault, token)
        live = row is not None and row.expires_at > now
        approvers = (await relay.directories.load(conn, vault)).approvers if live else {}
    if row is None or not live or row.approver_id not in approvers:
        # An approver removed from the directory loses every session with it.
        raise Unauthenticated(
            "session_invalid", "the console session is unknown, expired, or its approver left",
            "Sign in to the console again.",
        )  # fmt: skip
    if request.method not in SAFE_METHODS:
        check_csrf(request, relay.settings, token)
    return Principal(vault=vault, id=row.approver_id, role="approver", via="session")
