"""An approver device talking to its relay: every request signed with its key (RFC 9421).

The directory is verified from the link 0 this device pinned and against the
newest head it has seen (kept beside the key file), so a relay cannot show
this approver a rolled-back or forked approver set.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from sealbox._relay.files import write_private
from sealbox._relay.httpsig import sign_request
from sealbox._relay.text import displayable
from sealbox.approver.keystore import ApproverKeys
from sealbox.errors import DirectoryBroken, RelayRefused
from sealbox.protocol import directory as dirs

__all__ = ["ApproverSession", "RelayRefused"]

#: Reuse a verified directory this long (a `directory` stream event drops it at once).
DIRECTORY_FRESH = 5.0


def refused(response: httpx.Response, what: str) -> RelayRefused:
    try:
        body = response.json()
        message = displayable(body.get("message"))
        hint = displayable(body["hint"]) if body.get("hint") else None
    except (ValueError, AttributeError):
        message, hint = f"HTTP {response.status_code}", None
    return RelayRefused(f"{what}: the relay refused: {message}", hint=hint)


class ApproverSession:
    """Signed calls to the relay as one approver, and the directory it has verified."""

    def __init__(self, keys: ApproverKeys, *, http: httpx.Client | None = None,
                 head_path: Path | None = None) -> None:  # fmt: skip
        self.keys = keys
        self.http = http or httpx.Client(timeout=30)
        self.base = f"{keys.server}/v1/vaults/{keys.vault}"
        self.head_path = head_path
        self._directory: dirs.Directory | None = None
        """The directory to use, while fresh; dropped when the relay says it changed."""
        self._verified: dirs.Directory | None = None
        """The last directory verified, kept so an unchanged chain is not verified again."""
        self._directory_at = 0.0
        self._head = self._load_head()

    @property
    def id(self) -> str:
        return self.keys.record.id

    def close(self) -> None:
        self.http.close()

    def _load_head(self) -> dirs.DirectoryHead | None:
        if self.head_path is None:
            return None
        try:
            document = json.loads(self.head_path.read_text())
            return dirs.DirectoryHead(seq=int(document["seq"]), hash=str(document["hash"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_head(self, head: dirs.DirectoryHead) -> None:
        if self.head_path is None:
            return
        write_private(self.head_path, json.dumps({"seq": head.seq, "hash": head.hash}))

    # --- transport ---

    def request(self, method: str, path: str, *, json_body: Any = None,
                timeout: float | None = None) -> httpx.Response:  # fmt: skip
        content = None if json_body is None else json.dumps(json_body).encode()
        headers = {"content-type": "application/json"} if content is not None else {}
        request = self.http.build_request(method, self.base + path, content=content,
                                          headers=headers,
                                          timeout=timeout or httpx.USE_CLIENT_DEFAULT)  # fmt: skip
        sign_request(request, key=self.keys.sig, key_id=self.id)
        return self.http.send(request)

    def ok(self, method: str, path: str, what: str, *, json_body: Any = None,
           expect: tuple[int, ...] = (200, 201)) -> Any:  # fmt: skip
        response = self.request(method, path, json_body=json_body)
        if response.status_code not in expect:
            raise refused(response, what)
        return response.json() if response.content else None

    @contextlib.contextmanager
    def stream(self) -> Iterator[Iterator[tuple[str, Any]]]:
        """The approvals stream (Server-Sent Events) as (event, data) pairs."""
        request = self.http.build_request("GET", self.base + "/approvals/stream",
                                          timeout=httpx.Timeout(30, read=60))  # fmt: skip
        sign_request(request, key=self.keys.sig, key_id=self.id)
        response = self.http.send(request, stream=True)
        try:
            if response.status_code != 200:
                response.read()
                raise refused(response, "opening the approvals stream")
            yield _events(response)
        finally:
            response.close()

    # --- directory ---

    def directory(self, *, fresh: bool = False) -> dirs.Directory:
        if (
            not fresh
            and self._directory is not None
            and time.monotonic() - self._directory_at < DIRECTORY_FRESH
        ):
            return self._directory
        response = self.http.get(self.base + "/directory")
        if response.status_code != 200:
            raise refused(response, "fetching the directory")
        links = response.json().get("links")
        if not isinstance(links, list) or not all(isinstance(x, str) for x in links):
            raise DirectoryBroken("the relay served no directory links")
        held = self._verified
        if held is not None and held.head == self._head and tuple(links) == held.tokens:
            # Exactly the chain verified before (every link byte for byte), from the same
            # pinned link 0 and against the same cached head: verifying it again could
            # only give the same directory.  Anything else served is verified in full.
            self._directory, self._directory_at = held, time.monotonic()
            return held
        directory = dirs.verify_directory(links, pinned=self.keys.fingerprint,
                                          cached_head=self._head)  # fmt: skip
        if directory.vault != self.keys.vault:
            raise DirectoryBroken("the relay served the directory of another vault")
        if self._head is None or directory.head.seq > self._head.seq:
            self._save_head(directory.head)
        self._head = directory.head
        self._directory, self._directory_at = directory, time.monotonic()
        self._verified = directory
        return directory

    def forget_directory(self) -> None:
        self._directory = None


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    event, data = "message", list[str]()
    for line in response.iter_lines():
        if line.startswith(":"):
            yield ("comment", None)
            continue
        if not line:
            if data:
                try:
                    parsed = json.loads("\n".join(data))
                except ValueError:
                    parsed = None
                if parsed is not None:
                    yield (event, parsed)
            event, data = "message", list[str]()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
