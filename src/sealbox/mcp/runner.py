"""Running a command for ``run_with_secrets``: values in its environment, its output masked,
bounded and returned, and the command stopped if it outlives its time.

The output goes to a model, not to a terminal, so it is captured rather than
streamed.  Each stream (standard output, standard error) goes through its own
:class:`~sealbox.client.masking.Masker`, the same one ``sealbox run`` uses, so
every form ``sealbox run`` masks is masked here.  What is kept is bounded: the
last :data:`OUTPUT_LIMIT` bytes of each stream, and how much was left out.

A model reads the output as text, where a line break in the middle of a value
hides nothing: ``base64`` wraps its output at 76 characters, and a program may
print a long token in pieces.  So the kept output has a second pass,
:func:`conceal_split`: every form of every value that appears once the line
breaks (CR and LF) are taken out is masked too, line breaks and all.  That pass
runs over a margin more than what is returned, so a form split across lines
that starts before the cut is found whole; and once cut, the returned text
starts at a line's start.

The command runs in a process group of its own.  When it outlives its timeout
the whole group is stopped (SIGTERM, then SIGKILL after a grace period); and
when it ends, whatever it left running in its group is killed as well, so a
background child of the usual kind does not keep the values in its environment
after the call.  A child that leaves the group on purpose (``setsid``, a daemon)
is out of reach: only the approval bounds what a command does with a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from sealbox.client import masking

__all__ = ["OUTPUT_LIMIT", "Ran", "conceal_split", "run"]

#: Bytes of each output stream returned (the last ones).
OUTPUT_LIMIT = 64 * 1024
#: Seconds between SIGTERM and SIGKILL when the command outlives its time.
KILL_GRACE = 2.0
#: Seconds to keep reading output after the command ended (a child it left may hold a pipe).
DRAIN_SECONDS = 3.0
_CHUNK = 65536
_LINE_BREAKS = frozenset(b"\r\n")
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class Ran:
    """How the command ended and what it printed (masked, bounded)."""

    exit_status: int
    """Its exit status; 128 + N if signal N ended it."""
    timed_out: bool
    stdout: str
    stderr: str
    stdout_omitted: int
    """Bytes of standard output left out before what is returned."""
    stderr_omitted: int


def _patterns(values: Iterable[bytes]) -> set[bytes]:
    out: set[bytes] = set()
    for value in values:
        out |= masking.forms(value)
    return out


def conceal_split(data: bytes, values: Iterable[bytes]) -> bytes:
    """``data`` with every form of every value masked that shows once line breaks are removed.

    A match is masked from its first byte to its last in ``data``, the line
    breaks inside it included.  A form shorter than
    :data:`~sealbox.client.masking.WORD_ONLY_BELOW` is masked only as a whole
    word of the joined text, as the streaming masker does.
    """
    patterns = _patterns(values)
    if not patterns or not data:
        return data
    kept = [i for i, byte in enumerate(data) if byte not in _LINE_BREAKS]
    joined = bytes(data[i] for i in kept)
    # Longest first: at a position, the longest form wins (as in the masker).
    regex = re.compile(b"|".join(re.escape(p) for p in sorted(patterns, key=len, reverse=True)))
    spans: list[tuple[int, int]] = []
    start = 0
    while (found := regex.search(joined, start)) is not None:
        s, e = found.span()
        if e - s < masking.WORD_ONLY_BELOW and (
            (s > 0 and joined[s - 1] in _WORD and joined[s] in _WORD)
            or (e < len(joined) and joined[e] in _WORD and joined[e - 1] in _WORD)
        ):
            start = s + 1  # a short form inside a word: not a value
            continue
        spans.append((kept[s], kept[e - 1] + 1))
        start = e
    if not spans:
        return data
    out = bytearray()
    pos = 0
    for s, e in spans:
        out += data[pos:s] + masking.MASK
        pos = e
    out += data[pos:]
    return bytes(out)


class _Capture:
    """One output stream: masked as it comes, the tail kept (with a margin for the second pass)."""

    def __init__(self, values: Sequence[bytes], margin: int) -> None:
        self.masker = masking.Masker(values)
        self.keep = OUTPUT_LIMIT + margin
        self.buffer = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        self.buffer += data
        extra = len(self.buffer) - self.keep
        if extra > 0:
            del self.buffer[:extra]
            self.dropped += extra

    def result(self, values: Sequence[bytes]) -> tuple[str, int]:
        """(text, bytes omitted before it), after the second pass and the cut."""
        self.add(self.masker.flush())
        whole = conceal_split(bytes(self.buffer), values)
        omitted = self.dropped + max(0, len(whole) - OUTPUT_LIMIT)
        text = whole[-OUTPUT_LIMIT:]
        if omitted:
            # Start at a line's start: the cut may fall inside a line.
            newline = text.find(b"\n")
            if newline != -1:
                omitted += newline + 1
                text = text[newline + 1 :]
        return text.decode("utf-8", errors="replace"), omitted


async def _pump(stream: asyncio.StreamReader, capture: _Capture) -> None:
    while chunk := await stream.read(_CHUNK):
        capture.add(capture.masker.feed(chunk))


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _status(code: int) -> int:
    return code if code >= 0 else 128 - code


async def run(
    argv: Sequence[str], *, executable: str, env: Mapping[str, str], cwd: str, timeout: float,
    values: Sequence[bytes],
) -> Ran:  # fmt: skip
    """Run ``argv`` until it ends or ``timeout`` seconds pass; what it printed, masked.

    Raises ``OSError`` if the operating system will not start it.
    """
    margin = 4096 + 4 * max((len(p) for p in _patterns(values)), default=0)
    out, err = _Capture(values, margin), _Capture(values, margin)
    # Running the agent's command is what run_with_secrets is for; no shell is involved.
    proc = await asyncio.create_subprocess_exec(
        *argv, executable=executable, env=dict(env), cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    pumps = [asyncio.ensure_future(_pump(proc.stdout, out)),
             asyncio.ensure_future(_pump(proc.stderr, err))]  # fmt: skip
    timed_out = False
    try:
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                code = await asyncio.wait_for(proc.wait(), KILL_GRACE)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                code = await proc.wait()
    finally:
        # Nothing the command started outlives the call with the values in its environment.
        _signal_group(proc.pid, signal.SIGKILL)
        # Shielded: a call the MCP client abandoned is cancelled by a cancel scope that would
        # cancel these awaits too, leaving the command unreaped and its pipes open.
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:  # cancelled while it ran
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
    stdout, stdout_omitted = out.result(values)
    stderr, stderr_omitted = err.result(values)
    return Ran(exit_status=_status(code), timed_out=timed_out, stdout=stdout, stderr=stderr,
               stdout_omitted=stdout_omitted, stderr_omitted=stderr_omitted)  # fmt: skip
