"""A webhook receiver that never finishes answering: it trickles one byte at a time."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Tarpit:
    """Accepts connections on 127.0.0.1 and sends an HTTP status line one byte every ``every`` s.

    Each byte resets a per-read timeout, so only an overall deadline ends a call to it.
    Bounded: it stops on :meth:`close`, or after ``most`` seconds per connection.
    """

    def __init__(self, every: float = 0.3, most: float = 60.0) -> None:
        self.every, self.most = every, most
        self.connections = 0
        self.stopped = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.every)
            start = time.monotonic()
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if self.stopped.is_set() or time.monotonic() - start > self.most:
                    return
                with contextlib.suppress(OSError):
                    conn.recv(65536)  # whatever the client sent (and a pause of `every`)
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
