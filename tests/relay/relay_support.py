"""Helpers shared by the relay tests (imported by name: test directories are not packages)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord


class Clock:
    """A settable clock for the relay under test."""

    def __init__(self, now: float | None = None) -> None:
        # Near the real time: RFC 9421 libraries also check "created" against it.
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class Approver:
    def __init__(self, name: str = "laptop") -> None:
        self.hpke = HpkePrivateKey.generate()
        self.sig = SigningKey.generate()
        self.record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
            hpke_pk=self.hpke.public_key(), sig_pk=self.sig.verify_key(),
        )  # fmt: skip

    @property
    def id(self) -> str:
        return self.record.id


class Vault:
    """A vault set up through the API, with its first approver."""

    def __init__(self, vault: str, first: Approver, link0: str) -> None:
        self.id = vault
        self.approvers = [first]
        self.links = [link0]
        self.fingerprint = dirs.vault_fingerprint(link0)

    def directory(self) -> dirs.Directory:
        return dirs.verify_directory(self.links, pinned=self.fingerprint)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "message", "hint"}, body
    return dict(body)


class SseStream:
    """An SSE response read chunk by chunk, straight from the ASGI app.

    httpx's ASGI transport returns a response only once the app has finished,
    which a stream never does; so the test plays the server's part itself.
    """

    def __init__(self, app: Any, request: httpx.Request) -> None:
        self.app = app
        self.scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": request.method, "scheme": "http",
            "path": request.url.path, "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query, "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
            "server": ("relay.test", 80), "client": ("127.0.0.1", 40000),
        }  # fmt: skip
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.closed = asyncio.Event()
        self.sent_body = False
        self.buffer = ""
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.closed.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.chunks.put_nowait(message.get("body", b""))

    async def __aenter__(self) -> SseStream:
        self.task = asyncio.create_task(self.app(self.scope, self._receive, self._send))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.closed.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=10)

    async def until(self, wanted: str, timeout: float = 10) -> str:
        """Read until ``wanted`` has arrived; return everything read so far."""
        async with asyncio.timeout(timeout):
            while wanted not in self.buffer:
                self.buffer += (await self.chunks.get()).decode()
        return self.buffer
