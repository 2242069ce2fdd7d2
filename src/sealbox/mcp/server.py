"""The tools of ``sealbox mcp``, on the MCP SDK's :class:`MCPServer`.

Every tool is a thin layer over the SDK (:mod:`sealbox.client.sdk`): what it
asks for is one signed request that approvers answer, and what it verifies
is what the SDK verifies.  No tool returns a value: ``run_with_secrets``
puts values in a command's environment and returns the command's output
masked (:mod:`sealbox.mcp.runner`); ``store_secret`` takes a value from a
file or a one-time local page (:mod:`sealbox.mcp.prompt`), never from the
conversation.  **Why a value to store comes from a file or a one-time page.**  A value typed into
the MCP conversation (a tool argument, or a form elicitation, whose answer the MCP
client relays) passes through the client and usually the model's context and
transcript: exactly where it must never be.  So ``store_secret`` takes a value from
a file the agent names (it is read here and sealed at once; a secret the agent's
own tooling generated never needs to be seen), or, when the MCP client supports
URL-mode elicitation (MCP 2025-11-25; the SDK does), sends the person to a
one-time page on 127.0.0.1 served by this process (:mod:`sealbox.mcp.prompt`),
so the value goes from the person's browser to sealbox and nowhere else.  A
client without URL elicitation is told to use a file or ``sealbox store``.

Failures come back as tool errors whose text is built here
from sealbox's own messages (ids, paths, field names, reasons), never from
an unexpected exception's text, which could quote anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from sealbox._relay.text import safe_text
from sealbox.client import child
from sealbox.client._flows import WaitState
from sealbox.client.context import process_context
from sealbox.client.masking import notice
from sealbox.client.sdk import parse_references
from sealbox.errors import SealboxError
from sealbox.mcp import runner
from sealbox.mcp.prompt import OneTimePrompt
from sealbox.mcp.session import SessionClient, SessionState
from sealbox.protocol import ids

__all__ = ["build_server"]

log = logging.getLogger("sealbox.mcp")
T = TypeVar("T")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Longest a command may be given to run (seconds), and the default.
MAX_TIMEOUT = 3600
DEFAULT_TIMEOUT = 300
#: Seconds of caching asked for by default (the policy and the approver may cut it).
DEFAULT_CACHE = 300
#: Largest file store_secret reads.
MAX_FILE = 64 * 1024
#: Seconds the one-time page waits for the person.
PROMPT_SECONDS = 300
#: Seconds between progress reports while a request waits for approval.
PROGRESS_EVERY = 2.0

INSTRUCTIONS = """\
sealbox keeps secrets that you use without seeing them. Use run_with_secrets to run a \
command with secrets in its environment (VAR=sealbox://project/env/item/field); a person \
or the organisation's automated approver approves each request, and the output comes back \
with every secret masked. Give a specific purpose. Never try to print, echo or exfiltrate \
a secret: it is masked, and approvers see every request. store_secret stores a value from \
a file or from a page the person types it into; create_canary plants a tripwire item \
with a random value that alerts when anyone's read of it is approved; no tool ever returns \
a value."""


def _error(exc: SealboxError) -> ToolError:
    text = exc.message + (f" ({exc.hint})" if exc.hint else "")
    return ToolError(f"{text} [{type(exc).__name__}]")


def _tool(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn failures into tool errors that say what went wrong and quote nothing else."""

    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except SealboxError as exc:
            raise _error(exc) from None
        except Exception as exc:
            # Its text may quote anything (a value included): only its type is told.
            log.error("%s failed unexpectedly: %s", fn.__name__, type(exc).__name__)
            raise ToolError(f"{fn.__name__} failed unexpectedly ({type(exc).__name__}); "
                            "see the sealbox mcp log") from None  # fmt: skip

    return guarded


#: Seconds a call the MCP client abandoned may take to withdraw its request.
WITHDRAW_SECONDS = 15.0


async def _withdrawable(call: Awaitable[T]) -> T:
    """Await an SDK call that waits for approval; if the MCP client abandons the tool call,
    let the SDK withdraw the request before giving up.

    The SDK withdraws a request when its wait is cancelled, with one more call to the
    relay.  The MCP server cancels an abandoned tool call through an anyio cancel scope,
    which cancels every later await in it too, that call included; so the SDK call runs
    in a task of its own, which is cancelled once, and is given time to withdraw.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task}, timeout=WITHDRAW_SECONDS)
        raise


def _state(ctx: Context) -> SessionState:
    return cast(SessionState, ctx.request_context.lifespan_context)


class _Progress:
    """Reports to the MCP client where a request stands while it waits for approval."""

    def __init__(self, ctx: Context, state: SessionState, what: str) -> None:
        self.ctx, self.state, self.what = ctx, state, what
        self.wait: WaitState | None = None
        self.count = 0
        self.started = time.monotonic()
        self._changed = asyncio.Event()

    def on_wait(self, wait: WaitState) -> None:
        """The SDK's ``on_wait`` (called before each long poll): note the request as ours."""
        self.state.requests[wait.request] = wait.kind
        self.wait = wait
        self._changed.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), PROGRESS_EVERY)
            self._changed.clear()
            wait = self.wait
            if wait is None:
                continue
            self.count += 1
            until = time.strftime("%H:%M:%S UTC", time.gmtime(wait.expires_at))
            waited = int(time.monotonic() - self.started)
            await self.ctx.report_progress(
                self.count, None,
                f"Waiting {waited} s for approval of {self.what} (request {wait.request}, "
                f"{wait.approvals}/{wait.threshold} approvals); it expires at {until}.",
            )  # fmt: skip

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[_Progress]:
        task = asyncio.ensure_future(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _context(state: SessionState, argv: list[str], cwd: str | None = None) -> Any:
    """The signed context of a request: this process, the command it is for, the session id."""
    context = process_context(["sealbox", "mcp", *argv], agent_session=state.agent_session)
    if cwd is not None:
        context = dataclasses.replace(context, cwd=safe_text(cwd, 1000) or None)
    return context


def _purpose(purpose: str) -> str:
    text = safe_text(" ".join(purpose.split()), 500)
    if not text:
        raise ToolError("give a purpose: approvers see it (e.g. 'run the migration tests')")
    return text


def _env_refs(env: list[str]) -> dict[str, str]:
    refs: dict[str, str] = {}
    for spec in env:
        name, sep, ref = spec.partition("=")
        if not sep or not _ENV_NAME.fullmatch(name) or not ref.startswith("sealbox://"):
            raise ToolError(
                f"env entry {spec[:80]!r}: expected VAR=sealbox://project/env/item/field"
            )
        if name in refs:
            raise ToolError(f"env variable {name} is given twice")
        refs[name] = ref
    parse_references(refs.values())  # a malformed reference is refused before anything is asked
    return refs


def _summary(ran: runner.Ran, argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exit_status": ran.exit_status,
        "timed_out": ran.timed_out,
        "stdout": ran.stdout,
        "stderr": ran.stderr,
    }
    if ran.timed_out:
        out["note"] = f"{argv[0]} outlived its timeout and was stopped (its whole process group)"
    for name, omitted in (("stdout", ran.stdout_omitted), ("stderr", ran.stderr_omitted)):
        if omitted:
            out[f"{name}_omitted_bytes"] = omitted
            out.setdefault("note", "")
            out["note"] = (out["note"] + "; " if out["note"] else "") + (
                f"{name} was cut: only its last {runner.OUTPUT_LIMIT // 1024} KiB are shown"
            )
    return out


async def _client(state: SessionState, context: Any) -> SessionClient:
    # Loading the profile reads files: off the event loop.
    return await asyncio.to_thread(state.client, context)


def build_server(profile: str | None) -> MCPServer[SessionState]:
    """The MCP server; each session (a stdio connection) gets its own :class:`SessionState`."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[SessionState]) -> AsyncIterator[SessionState]:
        state = SessionState(profile)
        log.info("MCP session %s started", state.agent_session)
        try:
            yield state
        finally:
            state.cache.clear()
            log.info("MCP session %s ended", state.agent_session)

    server: MCPServer[SessionState] = MCPServer(
        "sealbox", instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING"
    )

    @server.tool()
    @_tool
    async def list_items(ctx: Context) -> dict[str, Any]:
        """The items this agent may ask for: paths, types, latest versions. Never values."""
        async with await _client(_state(ctx), _context(_state(ctx), ["list_items"])) as client:
            items = await client.list()
        return {"items": [{"path": i.path, "type": i.type, "latest_version": i.latest_version,
                           "created_at": i.created_at} for i in items]}  # fmt: skip

    @server.tool()
    @_tool
    async def describe_item(path: str, ctx: Context) -> dict[str, Any]:
        """One item: its fields and versions (verified manifests) and the relay's policy for it
        (who approves, how many, how long a release may be kept). Never values."""
        ids.check_path(path)
        state = _state(ctx)
        async with await _client(state, _context(state, ["describe_item", path])) as client:
            versions = await client.history(path)
            policy = await client.relay_policy(path)
        return {
            "path": path,
            "fields": list(versions[-1].fields) if versions else [],
            "versions": [{"version": v.version, "fields": list(v.fields), "stored_at": v.stored_at,
                          "signed_by": v.signed_by, "holders": list(v.holders),
                          "threshold": v.threshold} for v in versions],
            "policy": {"said_by": "the relay (not signed)", **policy},
            "references": [f"sealbox://{path}/{f}" for f in (versions[-1].fields if versions
                                                               else ())],
        }  # fmt: skip

    @server.tool()
    @_tool
    async def run_with_secrets(
        command: list[str], env: list[str], purpose: str, ctx: Context,
        working_directory: str | None = None, timeout_seconds: int = DEFAULT_TIMEOUT,
        cache_seconds: int = DEFAULT_CACHE,
    ) -> dict[str, Any]:  # fmt: skip
        """Run a command with secrets in its environment, after ONE approval for all of them.

        command: the argv, e.g. ["psql", "-c", "select 1"] (no shell; use ["sh", "-c", "..."]
        for one). env: ["VAR=sealbox://project/env/item/field", ...]. purpose: what approvers
        are shown; be specific. working_directory: where it runs (default: here).
        timeout_seconds: it is stopped after this (1..3600). cache_seconds: ask that this
        session may reuse the values this long without a new approval (0: no).
        Returns the exit status and the output, with every secret masked.
        """
        state = _state(ctx)
        if not command or not all(isinstance(a, str) and a for a in command):
            raise ToolError('give the command as a list of arguments, e.g. ["env"]')
        if not 1 <= timeout_seconds <= MAX_TIMEOUT:
            raise ToolError(f"timeout_seconds must be 1..{MAX_TIMEOUT}")
        if not 0 <= cache_seconds <= 86400:
            raise ToolError("cache_seconds must be 0..86400")
        refs = _env_refs(env)
        why = _purpose(purpose)
        cwd = os.path.abspath(working_directory or os.getcwd())
        if not os.path.isdir(cwd):
            raise ToolError(f"working directory {cwd!r} does not exist")
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        # Before anything is asked: an approval for a command that cannot start is wasted.
        # A path (with a slash) is the working directory's; a name is looked up on PATH.
        target = os.path.join(cwd, command[0]) if "/" in command[0] else command[0]
        executable = child.resolve(target, child_env)
        if executable is None:
            where = "no executable file there" if "/" in command[0] else "not found on PATH"
            raise ToolError(f"cannot run {command[0][:200]!r}: {where}; nothing was asked")
        values: dict[str, bytes] = {}
        if refs:
            shown = " ".join(command)[:60]
            progress = _Progress(ctx, state, f"{len(set(refs.values()))} secret(s) for `{shown}`")
            context = _context(state, ["run_with_secrets", "--", *command], cwd)
            async with progress.running(), await _client(state, context) as client:
                values = await _withdrawable(client.read_many_bytes(
                    sorted(set(refs.values())), purpose=why, cache_seconds=cache_seconds,
                    on_wait=progress.on_wait,
                ))  # fmt: skip
                hits = state.cache.take_hits()
                if hits:
                    # Reuse is audited as the cache agent's is: which release, how often, when.
                    with contextlib.suppress(SealboxError):
                        await client.report_cache_hits(hits)
        for name, ref in refs.items():
            try:
                child_env[name] = values[ref].decode()
            except UnicodeDecodeError:
                raise ToolError(f"{ref} is not UTF-8 text and cannot go in an environment "
                                "variable") from None  # fmt: skip
        masked = list(values.values())
        note = notice(masked)  # says how many values are too short to mask fully; names none
        try:
            ran = await runner.run(
                command, executable=executable, env=child_env, cwd=cwd, timeout=timeout_seconds,
                values=masked,
            )  # fmt: skip
        except OSError as exc:
            raise ToolError(
                f"cannot run {command[0][:200]!r}: {exc.strerror or 'not started'}"
            ) from None
        finally:
            child_env.clear()
            values.clear()
        masked.clear()
        summary = _summary(ran, command)
        if note:
            summary["masking"] = note
        return summary

    @server.tool()
    @_tool
    async def store_secret(
        path: str, field: str, purpose: str, ctx: Context, from_file: str | None = None
    ) -> dict[str, Any]:
        """Store a value as the next version of an item (one field), after an approver signs it.

        The value never passes through this conversation. With from_file, it is read from
        that file (up to 64 KiB, as is). Without it, the person is sent to a one-time page on
        this machine (http://127.0.0.1:…) to type it, if this MCP client supports URL
        elicitation. Returns the path and version stored; never the value.
        """
        state = _state(ctx)
        ids.check_path(path)
        ids.check_field_name(field)
        why = _purpose(purpose)
        if from_file is not None:
            value = _read_value(from_file)
        else:
            value = await _prompted(ctx, f"{path} (field {field})")
        progress = _Progress(ctx, state, f"storing {path}")
        context = _context(state, ["store_secret", path, field])
        try:
            async with progress.running(), await _client(state, context) as client:
                stored = await _withdrawable(client.store(
                    path, {field: value}, purpose=why, on_wait=progress.on_wait,
                ))  # fmt: skip
        finally:
            del value
        state.requests[stored.request] = "store"
        return {"path": stored.path, "version": stored.version, "item": stored.item,
                "request": stored.request, "reference": f"sealbox://{path}/{field}"}  # fmt: skip

    @server.tool()
    @_tool
    async def create_canary(path: str, purpose: str, ctx: Context,
                            field: str = "value") -> dict[str, Any]:  # fmt: skip
        """Plant a canary: an item nobody has a reason to read, with a random value sealbox makes.

        Store it where an intruder would look (e.g. prod/aws-root-key). When anyone's read
        of it is approved, they get the decoy value, the relay raises a critical alert and
        freezes the project. The value is generated here and never returned. An approver
        signs the item first, as for any store.
        """
        state = _state(ctx)
        ids.check_path(path)
        ids.check_field_name(field)
        why = _purpose(purpose)
        # Looks like a credential, so whoever finds it tries it; sealbox forgets it at once.
        value = ("sbx-" + secrets.token_urlsafe(30)).encode()
        progress = _Progress(ctx, state, f"storing canary {path}")
        context = _context(state, ["create_canary", path, field])
        try:
            async with progress.running(), await _client(state, context) as client:
                stored = await _withdrawable(client.store(
                    path, {field: value}, purpose=why, on_wait=progress.on_wait,
                    item_type="canary",
                ))  # fmt: skip
        finally:
            del value
        state.requests[stored.request] = "store"
        return {"path": stored.path, "version": stored.version, "item": stored.item,
                "type": "canary", "request": stored.request,
                "reference": f"sealbox://{path}/{field}"}  # fmt: skip

    @server.tool()
    @_tool
    async def request_status(request_id: str, ctx: Context) -> dict[str, Any]:
        """Where a request this session made stands (pending, released, denied, …)."""
        state = _state(ctx)
        kind = state.kind_of(request_id)
        async with await _client(state, _context(state, ["request_status"])) as client:
            return await client.request_status(kind, request_id)

    @server.tool()
    @_tool
    async def cancel_request(request_id: str, ctx: Context) -> dict[str, Any]:
        """Withdraw a pending request this session made (approvers stop seeing it)."""
        state = _state(ctx)
        kind = state.kind_of(request_id)
        async with await _client(state, _context(state, ["cancel_request"])) as client:
            return await client.cancel_request(kind, request_id)

    @server.tool()
    @_tool
    async def recent_audit(ctx: Context, limit: int = 20) -> dict[str, Any]:
        """This agent's own latest audit events (its requests, their answers, cache reuse)."""
        if not 1 <= limit <= 200:
            raise ToolError("limit must be 1..200")
        state = _state(ctx)
        async with await _client(state, _context(state, ["recent_audit"])) as client:
            return {"events": await client.my_events(limit)}

    @server.tool()
    @_tool
    async def request_consent(
        action: str, details: dict[str, Any], purpose: str, ctx: Context, ttl_seconds: int = 300
    ) -> dict[str, Any]:
        """Ask an approver to consent to one action (a deploy, a payment) with these details.

        Returns a signed consent token (sealbox.consent.v1) that a deploy tool or CI gate
        verifies offline (``sealbox consent verify`` with the bundle and the vault's
        fingerprint); it is bound to this action, these details and this client. Not a secret.
        """
        state = _state(ctx)
        why = _purpose(purpose)
        if not 30 <= ttl_seconds <= 3600:
            raise ToolError("ttl_seconds must be 30..3600")
        context = _context(state, ["request_consent", action])
        async with await _client(state, context) as client:
            progress = _Progress(ctx, state, f"consent to {action[:60]}")
            async with progress.running():
                grant = await _withdrawable(client.request_consent(
                    action, details, purpose=why, ttl=ttl_seconds, on_wait=progress.on_wait,
                ))  # fmt: skip
        state.requests[grant.request] = "consent"
        return {
            "token": grant.token, "bundle": grant.bundle(), "request": grant.request,
            "action": grant.action, "details_hash": grant.details_hash, "client": grant.client,
            "approver": grant.approver, "vault_fingerprint": grant.fingerprint,
            "expires_at": grant.expires_at,
        }  # fmt: skip

    return server


def _read_value(from_file: str) -> bytes:
    path = Path(from_file).expanduser()
    try:
        if not path.is_file():
            raise ToolError(f"{from_file[:200]!r} is not a file")
        if path.stat().st_size > MAX_FILE:
            raise ToolError(f"{from_file[:200]!r} is larger than {MAX_FILE // 1024} KiB")
        value = path.read_bytes()
    except OSError as exc:
        raise ToolError(f"cannot read {from_file[:200]!r}: {exc.strerror}") from None
    if not value:
        raise ToolError(f"{from_file[:200]!r} is empty")
    return value


async def _prompted(ctx: Context, what: str) -> bytes:
    """A value the person types on a one-time local page (URL-mode elicitation)."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None or caps.elicitation.url is None:
        raise ToolError(
            "this MCP client cannot send the person to a page (URL elicitation), and the value "
            "may not pass through the conversation: give from_file, or have the person run "
            "`sealbox store` themselves"
        )
    prompt = OneTimePrompt(what)
    url = await prompt.start()
    elicitation = "sealbox-" + secrets.token_urlsafe(12)
    try:
        answer = await ctx.elicit_url(
            f"sealbox: type the value for {what} on this page on your machine. It goes to "
            "sealbox only, not to the assistant.", url, elicitation,
        )  # fmt: skip
        if answer.action != "accept":
            raise ToolError(f"the person did not open the page ({answer.action}); "
                            "nothing was stored")  # fmt: skip
        value = await prompt.value(PROMPT_SECONDS)
        if value is None:
            raise ToolError(f"no value was typed within {PROMPT_SECONDS} s; nothing was stored")
        with contextlib.suppress(Exception):
            await ctx.session.send_elicit_complete(elicitation)
        return value
    finally:
        await prompt.close()
