"""An approver device talking to its relay: every request signed with its key (RFC 9421).

Calls go through the relay-client core's driver (signing, ``Retry-After``,
errors in words); the directory is verified by the core's directory flow from
the link 0 this device pinned and against the newest head it has seen (kept
beside the key file), so a relay cannot show this approver a rolled-back or
forked approver set.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, refused
from sealbox._relay.directory import DirectoryView, directory_flow
from sealbox._relay.drive import SyncDriver, http_client, reply_of, unreachable
from sealbox._relay.files import write_private
from sealbox._relay.httpsig import signer
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.policy_seen import PolicySeen
from sealbox.errors import RelayRefused
from sealbox.protocol import directory as dirs

__all__ = ["ApproverSession", "refused_response"]


def refused_response(response: httpx.Response, what: str) -> RelayRefused:
    """The relay's error answer to a call made outside a session (pairing, first setup)."""
    return refused(reply_of(response), what)


class ApproverSession:
    """Signed calls to the relay as one approver, and the directory it has verified."""

    def __init__(self, keys: ApproverKeys, *, http: httpx.Client | None = None,
                 head_path: Path | None = None) -> None:  # fmt: skip
        self.keys = keys
        self.http = http or http_client(keys.server)
        self.head_path = head_path
        # The newest signed policy seen per pattern, kept beside the directory head.
        self.policies = PolicySeen(
            head_path.with_name(head_path.name.removesuffix(".head.json") + ".policies")
            if head_path is not None else None
        )  # fmt: skip
        self.vault_path = f"/v1/vaults/{keys.vault}"
        self.driver = SyncDriver(self.http, keys.server, authorize=signer(keys.sig, keys.record.id))
        self.view = DirectoryView(vault=keys.vault, fingerprint=keys.fingerprint,
                                  head=self._load_head(), on_advance=self._save_head)  # fmt: skip

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
        if self.head_path is not None:
            write_private(self.head_path, json.dumps({"seq": head.seq, "hash": head.hash}))

    # --- transport ---

    def call(self, method: str, path: str, *, json_body: Any = None,
             timeout: float | None = None) -> Call:  # fmt: skip
        """A signed call to ``path`` under this vault (``/approvals``, ...)."""
        return Call(method, self.vault_path + path, json=json_body, timeout=timeout)

    def request(self, method: str, path: str, *, json_body: Any = None,
                timeout: float | None = None) -> httpx.Response:  # fmt: skip
        """One signed call; the raw response (transport failures raise ``RelayUnreachable``)."""
        call = self.call(method, path, json_body=json_body, timeout=timeout)
        try:
            return self.driver.response(call)
        except httpx.TransportError as exc:
            raise unreachable(self.keys.server, exc) from None

    def ok(self, method: str, path: str, what: str, *, json_body: Any = None,
           expect: tuple[int, ...] = (200, 201)) -> Any:  # fmt: skip
        reply = self.driver.send(self.call(method, path, json_body=json_body))
        if reply.status not in expect:
            raise refused(reply, what)
        return reply.body

    def drive(self, flow: Flow) -> Any:
        return self.driver.drive(flow)

    @contextlib.contextmanager
    def stream(self) -> Iterator[Iterator[tuple[str, Any]]]:
        """The approvals stream (Server-Sent Events) as (event, data) pairs."""
        # The relay sends a comment at least every 15 s: a minute of silence is a lost relay.
        call = self.call("GET", "/approvals/stream", timeout=60)
        try:
            response = self.driver.response(call, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(self.keys.server, exc) from None
        try:
            if response.status_code != 200:
                response.read()
                raise refused_response(response, "opening the approvals stream")
            yield _events(response)
        finally:
            response.close()

    # --- directory ---

    def directory(self, *, fresh: bool = False) -> dirs.Directory:
        directory: dirs.Directory = self.driver.drive(directory_flow(self.view, fresh=fresh))
        return directory

    def forget_directory(self) -> None:
        self.view.forget()


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
