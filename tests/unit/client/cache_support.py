"""A real cache agent for the tests of the agent and of the CLI's cache hits.

Imported by name (test directories are not packages).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

from sealbox.client import cache
from sealbox.client import profile as profiles
from sealbox.client._flows import Read
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead

REF = "sealbox://shop/prod/db/password"
#: Bytes a value may hold, JSON's and the shell's troublemakers among them.
VALUE = b'pa"ss\\word\n\x00\xff{"hex": 1}'


def save_profile(config: Path, name: str = "default") -> str:
    profile = profiles.Profile(
        server="http://127.0.0.1:9", vault=ids.new_id(ids.VAULT),
        fingerprint="sha256:" + "A" * 43, head=DirectoryHead(seq=0, hash="sha256:" + "B" * 43),
        client_id=ids.new_id(ids.CLIENT), client_name="bo@laptop", key=SigningKey.generate(),
        certificate="x.y.z", access_token="sbx_at_test", refresh_token="sbx_rt_test",
        expires_at=2**40,
    )  # fmt: skip
    path = config / "profiles" / f"{name}.json"
    path.unlink(missing_ok=True)
    profiles.save(path, profile, overwrite=False)
    return profile.client_id


def released(scope: str = "user", seconds: int = 300) -> Read:
    return Read(values={}, versions={}, items={}, request="req-" + scope, cache_scope=scope,
                cache_until=int(time.time()) + seconds)  # fmt: skip


class Agent:
    """`python -m sealbox.client.cache_agent PROFILE`, as `sealbox cache start` runs it."""

    def __init__(self, env: dict[str, str], profile: str = "default") -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sealbox.client.cache_agent", profile], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while (conn := cache.connect(profile)) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the agent did not start: {self.stderr()}")
            time.sleep(0.05)
        conn.close()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def call(self, message: dict[str, object]) -> dict[str, object]:
        conn = cache.connect(self.profile)
        assert conn is not None, "the agent is not running"
        with conn:
            return conn.call(message)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError, OSError):
                self.call({"op": "stop"})
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
