"""Running the command of ``sealbox run``, its output masked, its terminal kept working.

When our standard output is a terminal, the command runs on a
pseudo-terminal of its own (as ``script``, ``ssh -t`` and ``docker run -t``
do), so it sees a terminal, keeps its colours, progress bars and line
editing, and the masker sits between the pseudo-terminal and our output.
The pseudo-terminal starts with our terminal's modes and size and follows
its size (SIGWINCH).  If our standard input is that terminal too, it is put
in raw mode while the command runs (so keys such as Ctrl-C reach the
command's terminal, which acts on them) and restored however the command
ends; what is typed goes to the command, except the suspend key (Ctrl-Z),
which stops the command and sealbox until the shell's ``fg``.  Standard
error shares the pseudo-terminal when it is a terminal too, and is a pipe
otherwise.

When standard output is not a terminal, the command's standard output and
standard error are pipes, masked separately, and its standard input is ours.

Either way SIGINT, SIGTERM and SIGHUP sent to us are passed on to the
command, and its exit status is ours (128 + N if signal N ended it).

The standard library's ``pty.spawn`` does much of this but forks by hand,
cannot keep standard error apart and has no place for the masker, so the
copying loop is written here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import shutil
import signal
import subprocess
import sys
import termios
import tty
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["NotStarted", "resolve", "run"]

_CHUNK = 65536
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Filter(Protocol):
    """What stands between the command's output and ours (a :class:`~.masking.Masker`)."""

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class NotStarted(Exception):
    """The operating system would not start the command (the message says why)."""


def resolve(command: str, env: Mapping[str, str]) -> str | None:
    """The file that ``command`` runs under ``env``'s PATH, or None if it cannot be run.

    A command with a slash in it is a path and is not looked up.
    """
    return shutil.which(command, path=env.get("PATH", os.defpath))


class _Output:
    """One of the command's output streams, copied through a filter to one of ours."""

    def __init__(self, source: int, sink: int, filter: Filter | None) -> None:
        self.source, self.sink, self.filter = source, sink, filter
        self.open = True

    def copy(self, data: bytes) -> bool:
        """Pass ``data`` on; False if nobody reads our side any more."""
        try:
            out = self.filter.feed(data) if self.filter else data
            if out:
                _write_all(self.sink, out)
        except OSError as exc:
            # EPIPE from a pipe, EIO from a terminal that has gone away.
            if exc.errno in (errno.EPIPE, errno.EIO):
                return False
            raise
        return True

    def end(self) -> None:
        """The command's stream has ended: let out what the filter held back."""
        if self.filter:
            with contextlib.suppress(BrokenPipeError):
                _write_all(self.sink, self.filter.flush())


class _Typing:
    """What is typed at our terminal, on its way to the command's terminal."""

    def __init__(self, source: int, sink: int, suspend: Callable[[], None]) -> None:
        self.source, self.sink, self.suspend = source, sink, suspend
        self.pending = bytearray()

    def typed(self, data: bytes) -> None:
        """Keys typed: for the command, but its terminal's suspend key (Ctrl-Z) suspends us.

        The command leads its own session, so the kernel drops the SIGTSTP its
        terminal would send it (POSIX: an orphaned process group is not stopped
        from the terminal); sealbox does what that key means instead.
        """
        key = self._suspend_key()
        while key is not None and key in data:
            before, _, data = data.partition(key)
            self.pending += before
            self.send()
            self.suspend()
        self.pending += data
        self.send()

    def _suspend_key(self) -> bytes | None:
        """The command's terminal's suspend key, while that terminal acts on it."""
        try:
            # On a pseudo-terminal's master side this reads the command's side.
            modes = termios.tcgetattr(self.sink)
        except termios.error:
            return None
        key = modes[6][termios.VSUSP]
        if not modes[3] & termios.ISIG or not isinstance(key, bytes) or key == b"\0":
            return None  # raw mode (an editor), or no suspend key
        return key

    def send(self) -> None:
        """Write what was typed to the command's terminal, as much as it takes now."""
        try:
            del self.pending[: os.write(self.sink, self.pending)]
        except BlockingIOError:
            pass
        except OSError:
            # The command's side is closed: it is ending and will read nothing more.
            self.pending.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            # Our output was made non-blocking by whoever shares it: wait until it drains.
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_WRITE)
                sel.select()


def _read(fd: int) -> bytes | None:
    """What ``fd`` has (b"" at its end); None if nothing is there yet."""
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None
    except OSError as exc:
        # Linux reports the end of a pseudo-terminal, once every copy of the
        # command's side is closed, as EIO rather than as end of file.
        if exc.errno == errno.EIO:
            return b""
        raise


def _copy(outputs: Sequence[_Output], typing: _Typing | None,
          close: Callable[[_Output], None]) -> None:  # fmt: skip
    """Copy until every output stream has ended (``close`` one whose reader is gone)."""
    with selectors.DefaultSelector() as sel:
        for output in outputs:
            sel.register(output.source, selectors.EVENT_READ, output)
        if typing is not None:
            sel.register(typing.source, selectors.EVENT_READ, typing)
        while any(output.open for output in outputs):
            if typing is not None and typing.sink in sel.get_map():
                # Watch the command's terminal for room only while keys wait for it.
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if typing.pending else 0)
                key = sel.get_key(typing.sink)
                if key.events != wanted:
                    sel.modify(typing.sink, wanted, key.data)
            for key, events in sel.select():
                if isinstance(key.data, _Typing):
                    data = _read(key.data.source)
                    if data == b"":
                        sel.unregister(key.data.source)
                    elif data:
                        key.data.typed(data)
                    continue
                out = key.data
                if events & selectors.EVENT_WRITE and typing is not None:
                    typing.send()
                if not events & selectors.EVENT_READ:
                    continue
                data = _read(out.source)
                if data is None:
                    continue
                if data and out.copy(data):
                    continue
                out.open = False
                sel.unregister(out.source)
                if data:
                    # Nobody reads our side any more: close the command's side too,
                    # so that it learns so as it would if we were not in between.
                    if typing is not None and out.source == typing.sink:
                        if typing.source in sel.get_map():
                            sel.unregister(typing.source)
                        typing = None
                    close(out)
                else:
                    out.end()


@contextlib.contextmanager
def _forwarding(
    child: subprocess.Popen[bytes], handlers: Mapping[signal.Signals, Callable[[], None]]
) -> Iterator[None]:
    """Pass our signals on to the command, and handle ``handlers``' signals meanwhile."""

    def forward(signum: int, _: Any) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    for signum, handle in handlers.items():
        previous[signum] = signal.signal(signum, lambda *_, handle=handle: handle())
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Raw:
    """Our terminal in raw mode while the command runs, with its modes back in a pause."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.saved = termios.tcgetattr(fd) if fd is not None else None
        self.on = False

    def __enter__(self) -> _Raw:
        self.on = True
        self.resume()
        return self

    def __exit__(self, *_: object) -> None:
        self.on = False
        self.pause()

    def resume(self) -> None:
        if self.fd is not None and self.on:
            # TCSANOW, not setraw's default TCSAFLUSH: keys typed ahead go to the command.
            tty.setraw(self.fd, termios.TCSANOW)

    def pause(self) -> None:
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _in_foreground(fd: int) -> bool:
    """Whether we may read the terminal ``fd`` without being stopped (we are in the foreground)."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _take_terminal() -> None:
    """In the command's process, after setsid: make its standard output its controlling terminal.

    Without a controlling terminal, Ctrl-C typed on the pseudo-terminal would
    signal nobody and /dev/tty would not open.  It runs between fork and exec
    (``preexec_fn``), so it does nothing but the one system call.
    """
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)


def _start(argv: Sequence[str], executable: str, env: Mapping[str, str],
           **kw: Any) -> subprocess.Popen[bytes]:  # fmt: skip
    try:
        # Running the person's command is what `run` is for; no shell is involved.
        return subprocess.Popen(list(argv), executable=executable, env=dict(env), **kw)  # noqa: S603
    except OSError as exc:
        raise NotStarted(exc.strerror or str(exc)) from None


def _status(code: int) -> int:
    return code if code >= 0 else 128 - code


def run(
    argv: Sequence[str],
    *,
    executable: str,
    env: Mapping[str, str],
    new_filter: Callable[[], Filter | None],
) -> int:
    """Run ``argv`` (``executable`` is its resolved file) until it ends; its exit status.

    ``new_filter`` makes the filter of one output stream (None: copy as is).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    out_fd, err_fd, in_fd = sys.stdout.fileno(), sys.stderr.fileno(), sys.stdin.fileno()
    if os.isatty(out_fd):
        return _run_on_pty(argv, executable, env, new_filter, out_fd, err_fd, in_fd)
    return _run_on_pipes(argv, executable, env, new_filter, out_fd, err_fd)


def _run_on_pipes(argv: Sequence[str], executable: str, env: Mapping[str, str],
                  new_filter: Callable[[], Filter | None], out_fd: int,
                  err_fd: int) -> int:  # fmt: skip
    child = _start(argv, executable, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stderr is not None
    pipes = {out_fd: child.stdout, err_fd: child.stderr}
    outputs = [_Output(pipe.fileno(), sink, new_filter()) for sink, pipe in pipes.items()]
    try:
        with _forwarding(child, {}):
            _copy(outputs, None, lambda out: pipes[out.sink].close())
            return _status(child.wait())
    finally:
        for pipe in pipes.values():
            pipe.close()


def _run_on_pty(argv: Sequence[str], executable: str, env: Mapping[str, str],
                new_filter: Callable[[], Filter | None], out_fd: int, err_fd: int,
                in_fd: int) -> int:  # fmt: skip
    stdin_is_tty = os.isatty(in_fd)
    typing_fd = in_fd if stdin_is_tty and _in_foreground(in_fd) else None
    master, slave = os.openpty()
    try:
        # The command's terminal starts as ours is: same modes (erase key, …) and size.
        with contextlib.suppress(termios.error):
            modes = termios.tcgetattr(in_fd if stdin_is_tty else out_fd)
            termios.tcsetattr(slave, termios.TCSANOW, modes)
        with contextlib.suppress(termios.error):
            termios.tcsetwinsize(slave, termios.tcgetwinsize(out_fd))
        child = _start(
            argv, executable, env,
            stdin=slave if stdin_is_tty else None,
            stdout=slave,
            stderr=slave if os.isatty(err_fd) else subprocess.PIPE,
            start_new_session=True,
            # preexec_fn is unsafe in a process with threads; sealbox runs none here.
            preexec_fn=_take_terminal,
        )  # fmt: skip
    except BaseException:
        os.close(master)
        raise
    finally:
        # Only the command holds its side now, so its end shows on ours (as EIO).
        os.close(slave)
    os.set_blocking(master, False)
    outputs = [_Output(master, out_fd, new_filter())]
    if child.stderr is not None:
        outputs.append(_Output(child.stderr.fileno(), err_fd, new_filter()))
    closed: set[int] = set()

    def close(out: _Output) -> None:
        if out.source == master:
            # Our terminal is gone: hang up the command's, as closing a terminal does.
            os.close(master)
            closed.add(master)
        elif child.stderr is not None:
            child.stderr.close()

    def resize() -> None:
        if master not in closed:
            with contextlib.suppress(termios.error):
                termios.tcsetwinsize(master, termios.tcgetwinsize(out_fd))

    raw = _Raw(typing_fd)

    def suspend() -> None:
        # Stop the command (SIGSTOP: its process group is orphaned, so the kernel
        # would drop SIGTSTP), give the terminal back as it was, and stop; the
        # shell's `fg` continues us, and we continue the command.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGSTOP)
        raw.pause()
        os.kill(os.getpid(), signal.SIGTSTP)
        # Here again after `fg` (or at once, where there is no shell to stop for).
        raw.resume()
        resize()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGCONT)

    typing = _Typing(typing_fd, master, suspend) if typing_fd is not None else None
    try:
        with _forwarding(child, {signal.SIGWINCH: resize}):
            with raw:
                _copy(outputs, typing, close)
            return _status(child.wait())
    finally:
        if master not in closed:
            os.close(master)
        if child.stderr is not None:
            child.stderr.close()
