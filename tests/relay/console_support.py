"""A browser-like client and a browser approver for the console tests.

The passkey is :class:`webauthn_support.SoftAuthenticator` (tests/webauthn_support.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from relay_support import Approver

from webauthn_support import SoftAuthenticator

__all__ = ["LOCAL_ORIGIN", "RELAY_ORIGIN", "Browser", "BrowserApprover", "SoftAuthenticator"]

#: The relay under test has no public URL: its own origin is the default one.
RELAY_ORIGIN = "http://localhost:8300"
#: A second console origin (``sealbox console`` on localhost), configured in the tests.
LOCAL_ORIGIN = "http://localhost:8400"


class BrowserApprover(Approver):
    """An approver whose directory record says kind ``browser``, with a passkey."""

    def __init__(self, name: str = "browser") -> None:
        super().__init__(name)
        self.record = dataclasses.replace(self.record, kind="browser", tier="device")
        self.passkey = SoftAuthenticator()


class Browser:
    """An HTTP client acting as the console in a browser: cookies kept, Origin sent."""

    def __init__(self, http: httpx.AsyncClient, vault: str, origin: str = RELAY_ORIGIN) -> None:
        self.http = http
        self.vault = vault
        self.origin = origin
        self.csrf: str | None = None

    @property
    def api(self) -> str:
        return f"/v1/vaults/{self.vault}/console"

    async def post(
        self, path: str, body: Any = None, *, csrf: bool = True, origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:  # fmt: skip
        sent = {"origin": origin or self.origin, **(headers or {})}
        if csrf and self.csrf is not None:
            sent["x-sealbox-csrf"] = self.csrf
        return await self.http.post(path, json=body if body is not None else {}, headers=sent)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def sign_in(self, passkey: SoftAuthenticator, **tweak: Any) -> httpx.Response:
        options = await self.post(f"{self.api}/signin/options")
        assert options.status_code == 200, options.text
        credential = passkey.assertion(options.json()["publicKey"], self.origin, **tweak)
        answer = await self.post(f"{self.api}/signin", {"credential": credential})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf"]
        return answer
