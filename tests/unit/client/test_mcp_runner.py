"""`sealbox mcp` pieces without a relay: the runner (masking, the line-break pass, bounds,
timeouts, process groups), the session's cache and the one-time page."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from sealbox.client._flows import Read
from sealbox.client.masking import MASK
from sealbox.mcp import runner
from sealbox.mcp.prompt import OneTimePrompt
from sealbox.mcp.session import SessionCache

VALUE = b"unit-secret-value-4f1e9a7c2b8d3e6f0a5b"


def _run(code: str, *, timeout: float = 30, values: list[bytes] | None = None) -> runner.Ran:
    return asyncio.run(runner.run(
        [sys.executable, "-c", code], executable=sys.executable,
        env={**os.environ, "S": VALUE.decode()}, cwd=os.getcwd(), timeout=timeout,
        values=[VALUE] if values is None else values,
    ))  # fmt: skip


def test_a_value_split_across_lines_is_concealed_line_breaks_and_all() -> None:
    b64 = base64.b64encode(VALUE)
    for text in (VALUE[:10] + b"\n" + VALUE[10:], VALUE[:5] + b"\r\n" + VALUE[5:],
                 b"x " + b64[:20] + b"\n" + b64[20:] + b" y",
                 b"\n".join(bytes([c]) for c in VALUE.hex().encode())):  # fmt: skip
        out = runner.conceal_split(text, [VALUE])
        assert MASK in out
        joined = out.replace(b"\r", b"").replace(b"\n", b"")
        assert VALUE not in joined
        assert b64 not in joined
        assert VALUE.hex().encode() not in joined
    # Around it, nothing changes; a short value inside a word is not a value.
    assert runner.conceal_split(b"a\n" + VALUE + b"\nb", [VALUE]) == b"a\n" + MASK + b"\nb"
    assert runner.conceal_split(b"my ap\nplication", [b"app"]) == b"my ap\nplication"
    assert runner.conceal_split(b"user=a\npp;", [b"app"]) == b"user=" + MASK + b";"
    assert runner.conceal_split(b"nothing here", [VALUE]) == b"nothing here"


def test_output_is_masked_in_both_streams_and_bounded_to_its_tail() -> None:
    ran = _run("import os, sys\n"
               "print(os.environ['S']); print(os.environ['S'], file=sys.stderr)\n"
               "v = os.environ['S']; print(v[:7]); print(v[7:])")  # fmt: skip
    assert (ran.exit_status, ran.timed_out) == (0, False)
    assert ran.stdout == f"{MASK.decode()}\n{MASK.decode()}\n"
    assert ran.stderr == MASK.decode() + "\n"
    big = _run("import os\nfor i in range(3000): print(i, 'y' * 70)\nprint(os.environ['S'])")
    assert big.stdout_omitted > 100_000
    assert len(big.stdout.encode()) <= runner.OUTPUT_LIMIT
    assert big.stdout.endswith(MASK.decode() + "\n")
    assert big.stdout.split("\n", 1)[0].split()[1] == "y" * 70  # starts at a line's start


def test_a_command_that_outlives_its_timeout_is_stopped_with_its_process_group(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    began = time.monotonic()
    ran = _run(
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen(['sleep', '60']); open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print(os.environ['S'], flush=True); time.sleep(60)",
        timeout=1.5,
    )  # fmt: skip
    assert ran.timed_out
    assert ran.exit_status == 128 + 15
    assert ran.stdout == MASK.decode() + "\n"
    assert time.monotonic() - began < 15
    child = int(pidfile.read_text())
    for _ in range(50):  # its child was in its group: gone too
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the command's child outlived it")


def test_a_command_that_ignores_sigterm_is_killed() -> None:
    ran = _run("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "time.sleep(60)", timeout=1)  # fmt: skip
    assert ran.timed_out
    assert ran.exit_status == 128 + 9


def _read(until: int, scope: str = "agent-session", request: str = "r" * 43) -> Read:
    return Read(values={}, versions={}, items={}, request=request, cache_until=until,
                cache_scope=scope)  # fmt: skip


def test_the_session_cache_serves_only_within_the_signed_window() -> None:
    now = [1000.0]
    cache = SessionCache(clock=lambda: now[0])
    assert cache.put(_read(1010), {"sealbox://a/b/c/d": b"v1"}) == 1
    assert cache.put(_read(1010, scope="user"), {"sealbox://x/y/z/w": b"v2"}) == 0
    assert cache.put(_read(999), {"sealbox://x/y/z/w": b"v2"}) == 0  # already over
    assert cache.get(["sealbox://a/b/c/d", "sealbox://x/y/z/w"]) == {"sealbox://a/b/c/d": b"v1"}
    assert cache.take_hits() == [{"request": "r" * 43, "hits": 1, "first_at": 1000,
                                  "last_at": 1000}]  # fmt: skip
    assert cache.take_hits() == []
    now[0] = 1010.0
    assert cache.get(["sealbox://a/b/c/d"]) == {}
    assert len(cache) == 0


def test_the_one_time_page_takes_one_value_once_from_its_own_origin_only() -> None:
    async def scenario() -> None:
        prompt = OneTimePrompt("shop/prod/api (field token)")
        url = await prompt.start()
        port = url.split(":")[2].split("/")[0]
        async with httpx.AsyncClient() as browser:
            page = await browser.get(url)
            assert page.status_code == 200
            assert "shop/prod/api" in page.text
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            rebound = await browser.get(url, headers={"host": f"evil.example:{port}"})
            assert rebound.status_code == 421
            assert (await browser.post(url, data={"value": ""})).status_code == 400
            assert (await browser.put(url, content=b"x")).status_code == 405
            assert (await browser.get(url + "x")).status_code == 404
            taken = await browser.post(url, data={"value": VALUE.decode()},
                                       headers={"origin": f"http://127.0.0.1:{port}"})  # fmt: skip
            assert taken.status_code == 200
            assert VALUE.decode() not in taken.text
            assert (await browser.post(url, data={"value": "other"})).status_code == 404
        assert await prompt.value(1) == VALUE
        await prompt.close()
        waiting = OneTimePrompt("x")
        await waiting.start()
        assert await waiting.value(0.2) is None
        await waiting.close()

    asyncio.run(scenario())


def test_a_tool_failure_quotes_sealbox_messages_only() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from sealbox.errors import Denied
    from sealbox.mcp.server import _tool

    async def crash() -> None:
        raise RuntimeError("leaked " + VALUE.decode())

    async def undecodable() -> None:
        (b"\xff" + VALUE).decode()

    async def denied() -> None:
        raise Denied("an approver denied the request: 'no'")

    for fn in (crash, undecodable):
        with pytest.raises(ToolError) as raised:
            asyncio.run(_tool(fn)())
        assert VALUE.decode() not in str(raised.value)
        assert "failed unexpectedly" in str(raised.value)
    with pytest.raises(ToolError, match=r"an approver denied the request: 'no'.*\[Denied\]"):
        asyncio.run(_tool(denied)())


def test_only_the_sessions_own_request_ids_are_known() -> None:
    from sealbox.errors import InvalidInput
    from sealbox.mcp.session import SessionState

    state = SessionState(None)
    assert state.agent_session.startswith("mcp-")
    assert len(state.agent_session) == 4 + 24
    assert SessionState(None).agent_session != state.agent_session
    state.requests["a" * 43] = "access"
    assert state.kind_of("a" * 43) == "access"
    for unknown in ("b" * 43, "a" * 42, "../" + "a" * 40, ""):
        with pytest.raises(InvalidInput):
            state.kind_of(unknown)
