"""The browser approver under test: Debian's Chromium driven by Playwright, with a virtual passkey.

Imported by name (test directories are not packages).  Every page is watched for
Content-Security-Policy violations and page errors; a test fails on any of them
(:meth:`Console.check_clean`).  Screenshots go to ``test-artifacts/browser/``
(``SEALBOX_TEST_ARTIFACTS`` overrides), which CI keeps.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ARTIFACTS = Path(os.environ.get("SEALBOX_TEST_ARTIFACTS", "test-artifacts")) / "browser"

# Collects CSP violations the page itself sees (the console also logs them; both are checked).
WATCH_CSP = """
window.__sealboxViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__sealboxViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium must be installed in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


class Console:
    """One browser tab on the console, with a virtual authenticator of its own."""

    def __init__(self, context: Any, base: str) -> None:
        self.context = context
        self.base = base
        self.page = context.new_page()
        self.page.set_default_timeout(20_000)
        self.problems: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.add_init_script(WATCH_CSP)
        self.cdp = context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        self.authenticator: str | None = None

    def _on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP: {text}")
        elif message.type == "error" and "integrity" in text.lower():
            self.problems.append(f"SRI: {text}")

    def add_authenticator(self, *, verified: bool = True, prf: bool = True) -> str:
        answer = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "ctap2Version": "ctap2_1", "transport": "internal",
            "hasResidentKey": True, "hasUserVerification": True, "isUserVerified": verified,
            "hasPrf": prf, "automaticPresenceSimulation": True,
        }})  # fmt: skip
        self.authenticator = answer["authenticatorId"]
        return self.authenticator

    def set_verified(self, verified: bool) -> None:
        assert self.authenticator is not None
        self.cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator, "isUserVerified": verified},
        )

    def credentials(self) -> list[dict[str, Any]]:
        assert self.authenticator is not None
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return list(found["credentials"])

    def remove_authenticator(self) -> None:
        assert self.authenticator is not None
        self.cdp.send("WebAuthn.removeVirtualAuthenticator",
                      {"authenticatorId": self.authenticator})  # fmt: skip
        self.authenticator = None

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def status(self) -> str:
        return str(self.page.locator("#status").text_content() or "")

    def wait_status(self, pattern: str, timeout: float = 30) -> str:
        """Wait until the page's status line matches ``pattern``; fail with what it says.

        Polled from here rather than with ``wait_for_function``: under the console's CSP
        (no ``unsafe-eval``) a predicate given as text cannot be evaluated in the page.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not regex.search(self.status()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"status never matched {pattern!r}; it says {self.status()!r}; {self.problems}"
                )
            self.page.wait_for_timeout(100)
        return self.status()

    def screenshot(self, name: str, *, phone: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size(PHONE if phone else DESKTOP)
        path = ARTIFACTS / f"{name}-{'phone' if phone else 'desktop'}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size(DESKTOP)
        return path

    def check_clean(self) -> None:
        """No CSP violation, SRI failure or uncaught error on this tab so far."""
        seen = self.page.evaluate("window.__sealboxViolations ?? []")
        assert not self.problems, self.problems
        assert not seen, seen


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def console(browser: Any, base: str) -> Iterator[Console]:
    """A fresh browser profile (its own IndexedDB and cookies) on the console at ``base``."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield Console(context, base)
    finally:
        context.close()
