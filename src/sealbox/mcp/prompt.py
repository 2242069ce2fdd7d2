"""A one-time page on 127.0.0.1 where a person types a value for ``store_secret``.

The value must reach sealbox without passing through the MCP client or the
model, so it is not asked for in the MCP conversation (form elicitation
would carry it there).  Instead the ``sealbox mcp`` process serves one small
page on the loopback address, at a path holding a random token of 256 bits,
and sends its URL to the MCP client as a URL-mode elicitation (MCP
2025-11-25): the client shows the URL to the person, who opens it in a
browser and types the value there.

The page accepts exactly one value, once: the token is compared in constant
time, and after a value is taken (or the wait ends) the listener closes.  A
request whose ``Host`` is not this address and port is refused (DNS
rebinding), as is a form posted from another origin.  Answers are not cached,
not framed and send no referrer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import secrets
from urllib.parse import parse_qs

__all__ = ["OneTimePrompt"]

#: Most bytes a posted form may have.
MAX_BODY = 64 * 1024
#: Most bytes of a request's line and headers.
MAX_HEAD = 16 * 1024
#: Seconds a connection may take to send its request.
READ_SECONDS = 30.0

_HEADERS = (
    "Cache-Control: no-store\r\n"
    "Content-Security-Policy: default-src 'none'; form-action 'self'; frame-ancestors 'none'\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-Content-Type-Options: nosniff\r\n"
)


class OneTimePrompt:
    """The page for one value: :meth:`start`, then :meth:`value`, then :meth:`close`."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._token = secrets.token_urlsafe(32)
        self._got: asyncio.Future[bytes] | None = None
        self._server: asyncio.Server | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v/{self._token}"

    async def start(self) -> str:
        """Listen on a free loopback port; the page's URL."""
        self._got = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def value(self, timeout: float) -> bytes | None:
        """The value typed, or ``None`` if none came within ``timeout`` seconds."""
        assert self._got is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._got), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._got is not None and not self._got.done():
            self._got.cancel()

    # --- HTTP, the little of it a browser form needs ------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._answer(reader), READ_SECONDS)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, ConnectionError):
            status, body = "400 Bad Request", "Bad request."
        page = _page(body).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{_HEADERS}"
                f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ValueError("request head too long")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        origin = f"http://127.0.0.1:{self._port}"
        if headers.get("host") != f"127.0.0.1:{self._port}":
            return "421 Misdirected Request", "This page answers only at 127.0.0.1."
        path = target.split("?", 1)[0]
        expected = f"/v/{self._token}"
        if not hmac.compare_digest(path.encode(), expected.encode()) or self._spent():
            return "404 Not Found", "This page has expired or never existed."
        if method == "GET":
            return "200 OK", self._form()
        if method != "POST":
            return "405 Method Not Allowed", "Use the form."
        if headers.get("origin") not in (None, origin):
            return "403 Forbidden", "The form was sent from another site."
        length = int(headers.get("content-length", "-1"))
        if not 0 <= length <= MAX_BODY:
            return "413 Content Too Large", "Too long for this page: store it from a file."
        form = parse_qs((await reader.readexactly(length)).decode("utf-8"), keep_blank_values=True)
        values = form.get("value", [])
        if len(values) != 1 or not values[0]:
            return "400 Bad Request", "Type a value."
        assert self._got is not None
        if self._spent():
            return "404 Not Found", "This page has expired or never existed."
        self._got.set_result(values[0].encode())
        return "200 OK", (
            "<p>Received. sealbox now asks an approver to store it; you can close this page.</p>"
        )

    def _spent(self) -> bool:
        return self._got is None or self._got.done()

    def _form(self) -> str:
        what = html.escape(self._what)
        return (
            f"<p>Type the value for <b>{what}</b>. It goes to sealbox on this machine, sealed "
            "for the vault's approvers; the assistant that asked never sees it.</p>"
            '<form method="post"><input type="password" name="value" autocomplete="off" '
            'autofocus required> <button type="submit">Store</button></form>'
        )


def _page(body: str) -> str:
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>sealbox</title>"
            f"</head><body>{body}</body></html>")  # fmt: skip
