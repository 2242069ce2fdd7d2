"""Helpers for the end-to-end tests: `sealbox up` as a process, a PostgreSQL schema, signed calls.

Imported by name (test directories are not packages).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealbox._relay.httpsig import sign_request
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

SEALBOX = [sys.executable, "-m", "sealbox.cli.main"]
PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")
BANNER_END = "Press Ctrl-C to stop."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """`sealbox up` in a subprocess, its output collected as it runs."""

    def __init__(self, data_dir: Path, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://localhost:{self.port}"
        # Only what the command line says: no SEALBOX_* settings from the environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        self.proc = subprocess.Popen(
            [*SEALBOX, "up", "--data-dir", str(data_dir), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self._lines: list[str] = []
        self._banner = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            if BANNER_END in line:
                self._banner.set()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 60
        while not self._banner.wait(0.1):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"sealbox up exited early:\n{self.output}")
            assert time.monotonic() < deadline, self.output
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            assert self.proc.poll() is None, f"sealbox up exited:\n{self.output}"
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)

    def setup_token(self) -> str | None:
        match = re.search(r"--setup-token (sbx_st_\S+)", self.output)
        return match.group(1) if match else None

    def stop(self) -> str:
        """Ctrl-C, and wait for the process to end; return everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise
        finally:
            self._reader.join(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return self.output

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


@contextlib.contextmanager
def pg_schema(prefix: str = "sbx_e2e") -> Iterator[str]:
    """A fresh, empty schema on the test server, dropped afterwards."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("SEALBOX_TEST_PG_URL must be set in CI: the PostgreSQL tests must run")
        pytest.skip("SEALBOX_TEST_PG_URL is not set")
    schema = f"{prefix}_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


class ApproverKeys:
    """An approver's device: its keys and its directory record."""

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


class ClientKeys:
    """A machine client: its id and signing key."""

    def __init__(self) -> None:
        self.id = ids.new_id(ids.CLIENT)
        self.sig = SigningKey.generate()


def signed(
    http: httpx.Client, method: str, url: str, *, by: ApproverKeys | ClientKeys, body: Any = None
) -> httpx.Request:
    """A request signed (RFC 9421) by ``by``'s key, keyid = its id; kept so it can be resent."""
    request = http.build_request(method, url, **({} if body is None else {"json": body}))
    sign_request(request, key=by.sig, key_id=by.id)
    return request
