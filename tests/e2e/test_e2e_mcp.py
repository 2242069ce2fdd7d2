"""`sealbox mcp` end to end: the MCP SDK's own client drives a real `sealbox mcp` over stdio,
against a real relay, an automated approver (`sealbox approver serve` with rules) and a
terminal approver (`sealbox approve` in a pseudo-terminal).

Every tool is called, failures included (bad references, a denied request, a
timeout, a command that does not exist, unknown request ids, bad paths), with
commands that print the value in every form on purpose; then every byte that
came back (tool results, tool errors, progress notifications, the server's
standard error) is searched for every value: raw, base64 with and without
padding (standard and URL-safe), hex in both cases, URL-encoded, JSON-escaped,
and all of these once line breaks are removed.

The agent-session cache scope: values released to one MCP session are served
again within the approved window to that session only: its second run needs no
approval, another session (another `sealbox mcp`) needs one, and so does the
first session once the window has passed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from loop_support import PASSPHRASE, Deployment, env_for, outputs
from mcp import types
from mcp_support import Mcp, Seen, assert_no_leak, leak_forms, mcp_session
from test_e2e_agents import AGENT_PROMPT, _read_line, _wait_for
from test_e2e_terminal import ANSWER, CONFIRM, Started

from sealbox.client.masking import MASK

# Long enough for `base64` to wrap it across lines; characters that URL-encoding and JSON
# escaping change.
SECRET = 'mcp-Sécret/"value"+with=odd&chars\\and-a-long-tail-7f3a9c2e41b8d6e0a5c4b3a2918'
FILED = "filed-secret-0c1d2e3f4a5b6c7d8e9f-from-a-file"
TYPED = "typed-secret-9e8d7c6b5a4f3e2d1c0b-on-the-page"
REF = "sealbox://shop/prod/db/password"
CONCEALED = MASK.decode()

RULES = r"""
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "refused"
decision = "deny"
purpose = "^please deny"
reason = "not for this task"

[[rule]]
name = "automatic reads"
decision = "approve"
purpose = "^auto:"
cache_seconds = 300

[[rule]]
name = "deploys asked with auto:"
kind = "consent"
decision = "approve"
actions = ["deploy"]
clients = ["*"]
purpose = "^auto:"
"""

#: Prints the value in every form a careless or hostile command might.
PRINT_FORMS = r"""
import base64, json, os, sys, urllib.parse
v = os.environ["S"]; b = v.encode()
print("plain", v)
print("b64", base64.b64encode(b).decode(), base64.b64encode(b).decode().rstrip("="))
print("b64url", base64.urlsafe_b64encode(b).decode().rstrip("="))
print("hex", b.hex(), b.hex().upper())
print("url", urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v))
print("json", json.dumps(v), json.dumps(v, ensure_ascii=False))
print(v[:30]); print(v[30:])
sys.stdout.write(v[:40] + "\r\n" + v[40:] + "\n")
h = b.hex(); print(h[:50]); print(h[50:])
e = base64.b64encode(b).decode(); print(e[:33]); print(e[33:])
print("embedded", base64.b64encode(b"user:" + b).decode())
print(v, file=sys.stderr)
print("done")
"""


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Relay, first approver, a person; caching allowed for shop/; shop/prod/db stored."""
    dep = Deployment(tmp_path_factory.mktemp("mcp"))
    try:
        done = dep.approver_cli("approver", "policy", "shop/*/*", "--approvers",
                                dep.keys.record.id, "--max-cache", "600")  # fmt: skip
        assert done.returncode == 0, outputs(done)
        dep.serve(RULES)
        stored = dep.store("shop/prod/db", {"password": SECRET})
        assert stored.returncode == 0, outputs(stored)
        yield dep
    finally:
        dep.close()


@pytest.fixture
def started() -> Iterator[Started]:
    procs = Started()
    try:
        yield procs
    finally:
        procs.end()


def _ok(outcome: Any) -> dict[str, Any]:
    assert not outcome.error, outcome.text
    return dict(outcome.data)


def test_every_tool_and_failure_returns_no_value_in_any_form(d: Deployment, tmp_path: Path) -> None:
    env = env_for(d.client_config)
    stderr = tmp_path / "mcp.stderr"
    seen = Seen()
    filed = tmp_path / "filed.txt"
    filed.write_text(FILED)
    pages: list[str] = []

    async def elicit(_: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        # The person's browser: it opens the one-time page and types the value there.
        assert isinstance(params, types.ElicitRequestURLParams), params
        pages.append(params.url)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v/[A-Za-z0-9_-]{43}", params.url)
        async with httpx.AsyncClient() as browser:
            form = await browser.get(params.url)
            assert form.status_code == 200
            assert 'type="password"' in form.text
            assert form.headers["cache-control"] == "no-store"
            # Another site cannot post it; a wrong token finds nothing.
            cross = await browser.post(params.url, data={"value": "x"},
                                       headers={"origin": "http://evil.example"})  # fmt: skip
            assert cross.status_code == 403
            wrong = await browser.get(params.url[:-3] + "AAA")
            assert wrong.status_code == 404
            sent = await browser.post(params.url, data={"value": TYPED})
            assert sent.status_code == 200, sent.text
            again = await browser.post(params.url, data={"value": "second"})
            assert again.status_code == 404  # one value, once
        return types.ElicitResult(action="accept")

    async def session() -> None:
        async with mcp_session(env, stderr, elicit=elicit, seen=seen) as mcp:
            tools = await mcp.session.list_tools()
            assert {t.name for t in tools.tools} == {
                "list_items", "describe_item", "run_with_secrets", "store_secret",
                "request_status", "cancel_request", "recent_audit", "request_consent",
                "create_canary",
            }  # fmt: skip

            listed = _ok(await mcp.call("list_items"))
            assert "shop/prod/db" in [i["path"] for i in listed["items"]]
            described = _ok(await mcp.call("describe_item", path="shop/prod/db"))
            assert described["fields"] == ["password"]
            assert described["versions"][0]["version"] == 1
            assert described["policy"]["max_cache_seconds"] == 600
            assert described["references"] == [REF]
            bad_path = await mcp.call("describe_item", path="../etc/passwd")
            assert bad_path.error
            missing = await mcp.call("describe_item", path="shop/prod/nothing")
            assert missing.error
            assert "no item at shop/prod/nothing" in missing.text

            # Every form, printed on purpose: all masked; the rest of the output is kept.
            ran = _ok(await mcp.call(
                "run_with_secrets", command=[sys.executable, "-c", PRINT_FORMS],
                env=[f"S={REF}"], purpose="auto: check masking", cache_seconds=0,
            ))  # fmt: skip
            assert ran["exit_status"] == 0
            assert ran["timed_out"] is False
            assert ran["stdout"].count(CONCEALED) >= 14, ran["stdout"]
            assert "done" in ran["stdout"]
            assert CONCEALED in ran["stderr"]

            # base64 wraps at 76: the value split across lines is concealed too.
            wrapped = _ok(await mcp.call(
                "run_with_secrets", command=["sh", "-c", 'printf %s "$S" | base64; '
                                             'printf %s "$S" | base64 -w 20; echo end'],
                env=[f"S={REF}"], purpose="auto: base64 wraps", cache_seconds=0,
            ))  # fmt: skip
            assert wrapped["stdout"].startswith(CONCEALED), wrapped["stdout"]
            assert wrapped["stdout"].rstrip().endswith("end")

            # Output is bounded: the last 64 KiB, and how much was left out.
            big = _ok(await mcp.call(
                "run_with_secrets", command=[sys.executable, "-c",
                                             "import os\nfor i in range(4000): print('x' * 60)\n"
                                             "print(os.environ['S'])"],
                env=[f"S={REF}"], purpose="auto: big output", cache_seconds=0,
            ))  # fmt: skip
            assert big["stdout_omitted_bytes"] > 150_000
            assert len(big["stdout"].encode()) <= 64 * 1024
            assert big["stdout"].rstrip().endswith(CONCEALED)
            assert "cut" in big["note"]

            # A command that outlives its time is stopped, its output still masked.
            slow = _ok(await mcp.call(
                "run_with_secrets", command=["sh", "-c", 'printf "%s\\n" "$S"; sleep 60 & wait'],
                env=[f"S={REF}"], purpose="auto: too slow", timeout_seconds=2, cache_seconds=0,
            ))  # fmt: skip
            assert slow["timed_out"] is True
            assert slow["exit_status"] == 128 + 15
            assert slow["stdout"].strip() == CONCEALED
            assert "stopped" in slow["note"]

            # A command given as a path is the working directory's.
            work = tmp_path / "work"
            work.mkdir()
            script = work / "show.sh"
            script.write_text('#!/bin/sh\nprintf "cwd=%s value=%s\\n" "$PWD" "$S"\n')
            script.chmod(0o755)
            local = _ok(
                await mcp.call(
                    "run_with_secrets",
                    command=["./show.sh"],
                    env=[f"S={REF}"],
                    purpose="auto: a local script",
                    working_directory=str(work),
                    cache_seconds=0,
                )
            )
            assert local["stdout"] == f"cwd={work} value={CONCEALED}\n"

            # Refusals: each one says why, and nothing is asked where nothing could be run.
            denied = await mcp.call("run_with_secrets", command=["env"], env=[f"S={REF}"],
                                    purpose="please deny this", cache_seconds=0)  # fmt: skip
            assert denied.error
            assert "denied" in denied.text
            assert "not for this task" in denied.text
            for bad_env in (
                ["S=sealbox://nope"],
                ["S=not-a-reference"],
                ["1S=" + REF],
                [f"S={REF}", f"S={REF}"],
                ["S=sealbox://shop/prod/none/x"],
            ):
                bad = await mcp.call("run_with_secrets", command=["env"], env=bad_env,
                                     purpose="auto: bad refs")  # fmt: skip
                assert bad.error, bad_env
            nowhere = await mcp.call("run_with_secrets", command=["no-such-command-8c1f"],
                                     env=[f"S={REF}"], purpose="auto: nothing")  # fmt: skip
            assert nowhere.error
            assert "not found on PATH" in nowhere.text
            no_dir = await mcp.call(
                "run_with_secrets",
                command=["env"],
                env=[f"S={REF}"],
                purpose="auto: x",
                working_directory=str(tmp_path / "no"),
            )
            assert no_dir.error
            assert "does not exist" in no_dir.text
            no_purpose = await mcp.call("run_with_secrets", command=["env"], env=[f"S={REF}"],
                                        purpose="  ")  # fmt: skip
            assert no_purpose.error
            assert "purpose" in no_purpose.text
            for unknown in ("x" * 43, "../../etc", ""):
                status = await mcp.call("request_status", request_id=unknown)
                assert status.error
                assert "no request with that id" in status.text
                cancel = await mcp.call("cancel_request", request_id=unknown)
                assert cancel.error
                assert "no request with that id" in cancel.text

            # Storing: from a file, and from the one-time page (never through the conversation).
            from_file = _ok(
                await mcp.call(
                    "store_secret",
                    path="shop/prod/filed",
                    field="token",
                    purpose="store a token",
                    from_file=str(filed),
                )
            )
            assert from_file["version"] == 1
            assert from_file["reference"].endswith("filed/token")
            missing_file = await mcp.call(
                "store_secret",
                path="shop/prod/filed",
                field="token",
                purpose="x",
                from_file=str(tmp_path / "none"),
            )
            assert missing_file.error
            assert "is not a file" in missing_file.text
            bad_field = await mcp.call("store_secret", path="shop/prod/filed", field="a b",
                                       purpose="x", from_file=str(filed))  # fmt: skip
            assert bad_field.error
            typed = _ok(await mcp.call("store_secret", path="shop/prod/typed", field="value",
                                       purpose="store what the person types"))  # fmt: skip
            assert typed["version"] == 1
            assert len(pages) == 1
            async with httpx.AsyncClient() as browser:  # the page is gone once used
                with pytest.raises(httpx.ConnectError):
                    await browser.get(pages[0])
            both = _ok(await mcp.call(
                "run_with_secrets",
                command=["sh", "-c", 'printf "%s %s\\n" "$A" "$B"; printf %s "$A$B" | base64'],
                env=["A=sealbox://shop/prod/filed/token", "B=sealbox://shop/prod/typed/value"],
                purpose="auto: both stored values", cache_seconds=0,
            ))  # fmt: skip
            assert both["stdout"].startswith(f"{CONCEALED} {CONCEALED}\n"), both["stdout"]

            events = _ok(await mcp.call("recent_audit", limit=50))["events"]
            actions = {e["action"] for e in events}
            assert {"access.requested", "access.denied"} <= actions, actions
            assert {e["client_id"] for e in events} == {d.client_id}
            assert (await mcp.call("recent_audit", limit=0)).error

            consent = _ok(await mcp.call(
                "request_consent", action="deploy", details={"service": "shop"},
                purpose="auto: deploy shop",
            ))  # fmt: skip
            assert consent["token"].count(".") == 2
            assert _ok(await mcp.call("request_status", request_id=consent["request"]))
            refused = await mcp.call("request_consent", action="payment", details={"eur": 5},
                                     purpose="auto: pay", ttl_seconds=5)  # fmt: skip
            assert refused.error
            assert "ttl_seconds must be 30..3600" in refused.text

    asyncio.run(session())
    assert_no_leak([SECRET, FILED, TYPED], seen.all(stderr))


def test_a_client_without_url_elicitation_is_told_to_use_a_file(
    d: Deployment, tmp_path: Path
) -> None:
    stderr = tmp_path / "mcp.stderr"
    # Started as the README's MCP client configuration starts it: `sealbox` from PATH.
    config = json.loads('{"command": "sealbox", "args": ["mcp"]}')
    env = env_for(d.client_config, PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")

    async def session() -> None:
        async with mcp_session(env, stderr, config=config) as mcp:
            listed = await mcp.call("list_items")
            assert not listed.error, listed.text
            refused = await mcp.call("store_secret", path="shop/prod/x", field="v", purpose="p")
            assert refused.error
            assert "give from_file" in refused.text

    asyncio.run(session())


def test_sealbox_mcp_without_a_login_exits_6_before_serving(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", "mcp", "--profile", "nobody"],
        env=env_for(tmp_path / "empty"), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "sealbox mcp:" in done.stderr


def test_request_consent_returns_a_grant_sealbox_consent_verify_accepts(
    d: Deployment, tmp_path: Path
) -> None:
    plan = {"service": "shop", "image": "shop:2.4.1", "replicas": 3}
    got: dict[str, Any] = {}

    async def session() -> None:
        async with mcp_session(env_for(d.client_config), tmp_path / "err") as mcp:
            got.update(_ok(await mcp.call("request_consent", action="deploy", details=plan,
                                          purpose="auto: release 2.4.1")))  # fmt: skip
            bad = await mcp.call("request_consent", action="deploy", details=plan,
                                 purpose="auto: x", ttl_seconds=7200)  # fmt: skip
            assert bad.error
            assert "ttl_seconds" in bad.text

    asyncio.run(session())
    assert got["client"] == d.client_id
    grant = tmp_path / "grant.json"
    grant.write_text(json.dumps(got["bundle"]))
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    verify = ["consent", "verify", str(grant), "--action", "deploy", "--client", d.client_id,
              "--vault", got["vault_fingerprint"]]  # fmt: skip
    ok = d.cli(*verify, "--details", f"@{tmp_path / 'plan.json'}")
    assert ok.returncode == 0, outputs(ok)
    (tmp_path / "other.json").write_text(json.dumps({**plan, "replicas": 30}))
    other = d.cli(*verify, "--details", f"@{tmp_path / 'other.json'}")
    assert other.returncode == 5, outputs(other)
    assert "INVALID" in outputs(other)


def test_the_leak_search_finds_a_value_in_every_form_and_split() -> None:
    # The search itself is tested: a search that found nothing would prove nothing.
    for form in leak_forms(SECRET).values():
        with pytest.raises(AssertionError):
            assert_no_leak([SECRET], ["before " + form + " after"])
        with pytest.raises(AssertionError):
            assert_no_leak([SECRET], [form[:9] + "\r\n" + form[9:]])
    assert_no_leak([SECRET], [CONCEALED, "unrelated"])


def _create_agent(d: Deployment, started: Started) -> tuple[Any, str]:
    """An agent `mcp-bot` for shop/prod/*, certified in the terminal; (terminal, client id)."""
    person = started.person(d, "agent", "create", "--name", "MCP Bot", "--items", "shop/prod/*",
                            "--save")  # fmt: skip
    shown: list[str] = []
    client = _read_line(person, r"Client id:\s+(cli_\w+)", shown).group(1)
    term, _ = started.approve(d)
    term.expect(AGENT_PROMPT)
    term.type("yes")
    term.expect("Items this agent may ask for [shop/prod/*, or 'none']: ")
    term.type("")
    term.expect(CONFIRM)
    term.type(PASSPHRASE)
    rc, out, err = _wait_for(person)
    assert rc == 0, "".join(shown) + out + err
    return term, client


async def _approve_in(term: Any, answer: str = "yes") -> str:
    """Answer the next access request in the terminal; what it showed of it."""
    await asyncio.to_thread(term.expect, "=== ACCESS REQUEST ", 60)
    await asyncio.to_thread(term.expect, ANSWER, 60)
    shown = str(term.since("=== ACCESS REQUEST "))
    term.type(answer)
    if answer == "no":
        await asyncio.to_thread(term.expect, "Reason (shown to the requester): ", 30)
        term.type("another session")
        found = await asyncio.to_thread(term.match, r"Denied |Passphrase to confirm: ", 30)
        if found.group(0).startswith("Passphrase"):
            term.type(PASSPHRASE)
        return shown
    await asyncio.to_thread(term.expect, CONFIRM, 60)
    term.type(PASSPHRASE)
    return shown


def test_an_agent_session_reuses_its_release_and_no_other_session_does(
    d: Deployment, tmp_path: Path, started: Started
) -> None:
    term, client = _create_agent(d, started)
    env = env_for(d.client_config)
    seen = Seen()
    stderr = tmp_path / "mcp.stderr"
    whole = "sealbox://shop/prod/db"  # the item's one field, by another reference
    show = ["sh", "-c", 'printf "got %s\\n" "$S"']

    async def run(mcp: Mcp, ref: str, cache: int, purpose: str = "check the deploy") -> Any:
        return await mcp.call("run_with_secrets", command=show, env=[f"S={ref}"],
                              purpose=purpose, cache_seconds=cache)  # fmt: skip

    async def sessions() -> None:
        async with mcp_session(env, stderr, "--profile", "mcp-bot", seen=seen) as first:
            # The first run waits for the person at the terminal, with progress meanwhile.
            task = asyncio.ensure_future(run(first, REF, 300))
            shown = await _approve_in(term)
            assert f"(agent, {client})" in shown
            assert "cache:    300 s (agent-session)" in shown
            # The approver sees the command the values are for, and where it runs.
            assert "  command:  sealbox mcp run_with_secrets -- sh -c " in shown
            assert f"  cwd:      {os.getcwd()}\n" in shown
            got = await task
            assert _ok(got)["stdout"] == f"got {CONCEALED}\n"
            assert got.progress
            assert "Waiting" in got.progress[0]
            request = re.search(r"request ([A-Za-z0-9_-]{43})", got.progress[0])
            assert request is not None
            status = _ok(await first.call("request_status", request_id=request.group(1)))
            assert status["state"] in ("delivered", "released")

            # Within the window, the same session: no new approval, no waiting.
            again = await run(first, REF, 300)
            assert _ok(again)["stdout"] == f"got {CONCEALED}\n"
            assert again.progress == []
            events = _ok(await first.call("recent_audit"))["events"]
            assert "access.cache_hit" in {e["action"] for e in events}

            # Another session (another `sealbox mcp`): a new request, which the person denies.
            async with mcp_session(env, stderr, "--profile", "mcp-bot", seen=seen) as other:
                task = asyncio.ensure_future(run(other, REF, 300))
                await _approve_in(term, "no")
                refused = await task
                assert refused.error
                assert "denied" in refused.text

            # A short window: once it has passed, the first session must ask again.
            task = asyncio.ensure_future(run(first, whole, 2))
            assert "cache:    2 s (agent-session)" in await _approve_in(term)
            _ok(await task)
            await asyncio.sleep(3)
            task = asyncio.ensure_future(run(first, whole, 2, "once more"))
            await asyncio.to_thread(term.expect, "=== ACCESS REQUEST ", 60)
            # ... and while it waits, the session withdraws it.
            for _ in range(100):
                ids = re.findall(r"request ([A-Za-z0-9_-]{43})", json.dumps(seen.progress))
                pending = [i for i in ids if i != request.group(1)]
                if pending:
                    break
                await asyncio.sleep(0.1)
            waiting = pending[-1]
            assert _ok(await first.call("request_status", request_id=waiting))["state"] == "pending"
            assert _ok(await first.call("cancel_request", request_id=waiting))["state"] == (
                "cancelled"
            )
            withdrawn = await task
            assert withdrawn.error
            assert "cancelled" in withdrawn.text

    asyncio.run(sessions())
    assert_no_leak([SECRET], [*seen.all(stderr), term.screen])
    assert leak_forms(SECRET)["raw"] == SECRET
    assert term.stop() == 0


def test_a_call_the_mcp_client_abandons_withdraws_its_request(
    d: Deployment, tmp_path: Path
) -> None:
    # No rule answers this purpose and no person is watching: the request waits until the MCP
    # client gives up on the call, which cancels it in the server, which withdraws the request.
    stderr = tmp_path / "mcp.stderr"
    seen = Seen()

    async def session() -> None:
        async with mcp_session(env_for(d.client_config), stderr, seen=seen) as mcp:
            with pytest.raises(Exception, match=r"(?i)tim"):
                await mcp.call("run_with_secrets", timeout=4, command=["env"],
                               env=[f"S={REF}"], purpose="left for a person")  # fmt: skip
            for _ in range(100):
                events = _ok(await mcp.call("recent_audit", limit=20))["events"]
                if events[-1]["action"] == "access.cancelled":
                    break
                await asyncio.sleep(0.1)
            assert [e["action"] for e in events][-2:] == ["access.requested", "access.cancelled"]
            assert events[-1]["detail"]["request"] == events[-2]["detail"]["request"]

    asyncio.run(session())
    assert_no_leak([SECRET], seen.all(stderr))


def test_a_command_whose_call_is_abandoned_is_stopped(d: Deployment, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def session() -> None:
        async with mcp_session(env_for(d.client_config), tmp_path / "mcp.stderr") as mcp:
            with pytest.raises(Exception, match=r"(?i)tim"):
                await mcp.call(
                    "run_with_secrets",
                    timeout=3,
                    env=[],
                    purpose="x",
                    command=["sh", "-c", f"echo $$ > {pidfile}; sleep 60 & wait"],
                )
            await asyncio.sleep(1)
            # The session goes on serving.
            assert not (await mcp.call("recent_audit", limit=1)).error

    asyncio.run(session())
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail("the command outlived its abandoned call")
