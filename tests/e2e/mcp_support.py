"""Driving `sealbox mcp` with the MCP SDK's own client over stdio, everything it says kept.

Every tool result, tool error and progress notification is kept as text, as
is the server's standard error, so a test can search every byte that came
back for a value in every form.

Imported by name (test directories are not packages).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from mcp import types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def leak_forms(value: str) -> dict[str, str]:
    """Every form of ``value`` searched for: raw, base64 (std/urlsafe, padded or not), hex
    (both cases), URL-encoded, JSON-escaped."""
    raw = value.encode()
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {
        "raw": value, "base64": std, "base64-unpadded": std.rstrip("="), "base64url": url,
        "base64url-unpadded": url.rstrip("="), "hex": raw.hex(), "HEX": raw.hex().upper(),
        "url": quote(value, safe=""), "url-plus": quote_plus(value, safe=""),
        "json": json.dumps(value)[1:-1], "json-ascii": json.dumps(value, ensure_ascii=True)[1:-1],
        "json-utf8": json.dumps(value, ensure_ascii=False)[1:-1],
    }  # fmt: skip


def assert_no_leak(values: Iterable[str], texts: Iterable[str]) -> None:
    """No form of any value in any text, as is or with its line breaks taken out."""
    texts = list(texts)
    for value in values:
        for name, form in leak_forms(value).items():
            for text in texts:
                joined = text.replace("\r", "").replace("\n", "")
                assert form not in text, f"{name} form of a value came back"
                assert form not in joined, f"{name} form of a value came back split across lines"


@dataclass
class Seen:
    """Everything that came back from the server, as text."""

    texts: list[str] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)

    def all(self, stderr: Path) -> list[str]:
        return [*self.texts, *self.progress, stderr.read_text(errors="replace")]


@dataclass
class Outcome:
    error: bool
    data: dict[str, Any]
    text: str
    progress: list[str]


class Mcp:
    """One MCP session with `sealbox mcp`."""

    def __init__(self, session: ClientSession, seen: Seen) -> None:
        self.session = session
        self.seen = seen

    async def call(self, name: str, timeout: float = 120, **arguments: Any) -> Outcome:
        progress: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")
            self.seen.progress.append(json.dumps([done, total, message]))
            self.seen.progress.append(message or "")

        result = await self.session.call_tool(name, arguments, read_timeout_seconds=timeout,
                                              progress_callback=on_progress)  # fmt: skip
        assert isinstance(result, types.CallToolResult)
        self.seen.texts.append(result.model_dump_json())
        text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
        data = result.structured_content or {}
        # The texts as the model reads them too (not only JSON-escaped inside the message).
        self.seen.texts.append(text)
        self.seen.texts.extend(_strings(data))
        if "result" in data and len(data) == 1 and isinstance(data["result"], dict):
            data = data["result"]
        return Outcome(bool(result.is_error), data, text, progress)


def _strings(data: Any) -> Iterator[str]:
    """Every string in a JSON value (keys and values)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


Elicit = Callable[[Any, types.ElicitRequestParams], Awaitable[types.ElicitResult | types.ErrorData]]


@asynccontextmanager
async def mcp_session(
    env: dict[str, str], stderr: Path, *args: str, elicit: Elicit | None = None,
    seen: Seen | None = None, config: dict[str, Any] | None = None,
) -> AsyncIterator[Mcp]:  # fmt: skip
    """`sealbox mcp ARGS` as a subprocess, an initialised client session on it; ``config``: an
    ``mcpServers`` entry (``command``, ``args``) to start instead, as an MCP client would."""
    if config is None:
        config = {"command": sys.executable, "args": ["-m", "sealbox.cli.main", "mcp", *args]}
    params = StdioServerParameters(command=config["command"], args=config["args"], env=env)
    with stderr.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, elicitation_callback=elicit) as session,
        ):
            await session.initialize()
            yield Mcp(session, seen if seen is not None else Seen())
