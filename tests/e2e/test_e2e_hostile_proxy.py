"""A hostile relay, end to end: a tampering HTTP proxy between the real parties and a real relay.

The relay (`sealbox up`), the automated approver (`sealbox approver serve`)
and the person's CLI (`sealbox store | read`) are real processes.  Between
them sits :class:`HostileProxy`, a small HTTP server that forwards every call
to the relay and may rewrite what it forwards: the CLI's profile and the
approver's key file name the proxy as their server.  Each test plays one row
of docs/threat-model.md as a relay would (swap the one-time key, substitute
an approver key, alter a ciphertext, replay a release, roll the directory or
an item back, serve an approver another item's manifest, ...) and checks
that the party receiving the forgery refuses it with a clear error and that
the secret value appears nowhere: not in the CLI's output, not in the
approver's log, not on the wire.

All tests share one deployment (module fixture); each uses its own items and
restores the proxies when it ends.  No test waits for a request to expire:
the refusals happen before any wait, come back as the approver's signed
refusal, or are read from the approver's decision log, after which the CLI
is interrupted (it withdraws its request).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from secrets import token_hex
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_support import SEALBOX
from loop_support import APPROVE_ALL, Deployment, ServeProcess, env_for, outputs

from sealbox.approver import admin
from sealbox.cli.exits import FAILED, INTERRUPTED, VERIFICATION
from sealbox.crypto.encoding import b64u_decode, b64u_encode, canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

Tamper = Callable[[str, str, int, Any], Any]
"""(method, path, status, parsed JSON answer) -> the JSON answer to hand on."""
RequestTamper = Callable[[str, str, Any], Any]
"""(method, path, parsed JSON body) -> the JSON body to send to the relay."""

# Not forwarded either way: they describe one hop, or a body this proxy re-frames.
_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "content-length", "content-encoding",
    "accept-encoding",
})  # fmt: skip


# --- the hostile proxy ---------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: HostileProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a peer that hung up mid-answer is not the test's business


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 answers end when the connection closes: a stream needs no framing.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.server.proxy.forward(self)

    def do_POST(self) -> None:
        self.server.proxy.forward(self)

    def do_PUT(self) -> None:
        self.server.proxy.forward(self)

    def do_DELETE(self) -> None:
        self.server.proxy.forward(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HookFailed(Exception):
    pass


class HostileProxy:
    """Forwards every call to ``upstream``, one blocking forward per connection thread.

    ``tamper`` may rewrite each JSON answer, ``tamper_request`` each JSON
    request body (only for callers whose bodies are not signed: the CLI).
    Streams (Server-Sent Events) are passed through as they arrive, and long
    polls simply block in their own thread.  Everything seen is kept in
    ``calls`` (method, path, status) and ``wire`` (every body, both ways);
    a hook that raises is answered with 500 and kept in ``errors``.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.tamper: Tamper | None = None
        self.tamper_request: RequestTamper | None = None
        self.calls: list[tuple[str, str, int]] = []
        self.wire: list[bytes] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._streams: set[httpx.Response] = set()
        self._http = httpx.Client(timeout=httpx.Timeout(30, read=120),
                                  limits=httpx.Limits(max_keepalive_connections=0))  # fmt: skip
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.proxy = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)  # fmt: skip
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.tamper = self.tamper_request = None
            self.calls.clear()
            self.wire.clear()
            self.errors.clear()

    def forget_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
        # End the streams still open upstream: the relay waits for them when it stops.
        with self._lock:
            streams = list(self._streams)
        for response in streams:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._http.close()

    def called(self, method: str, pattern: str) -> list[tuple[str, str, int]]:
        with self._lock:
            return [c for c in self.calls if c[0] == method and re.fullmatch(pattern, c[1])]

    def _hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        try:
            return hook(*args)
        except Exception as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            raise _HookFailed from exc

    def _keep(self, data: bytes) -> None:
        if data:
            with self._lock:
                self.wire.append(data)

    def forward(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, urlsplit(h.path).path
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        self._keep(body)
        hook = self.tamper_request
        if hook is not None and body and "json" in (h.headers.get("content-type") or ""):
            try:
                body = json.dumps(self._hook(hook, method, path, json.loads(body))).encode()
            except _HookFailed:
                h.send_error(500, "tamper_request hook failed")
                return
        # Host is kept: approvers sign @target-uri, which the relay rebuilds from it.
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP]
        headers.append(("accept-encoding", "identity"))
        request = self._http.build_request(method, self.upstream + h.path, headers=headers,
                                           content=body)  # fmt: skip
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError:
            h.send_error(502)
            return
        try:
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/event-stream"):
                self._record(method, path, response.status_code)
                with self._lock:
                    self._streams.add(response)
                self._start(h, response, None)
                for chunk in response.iter_raw():
                    self._keep(chunk)
                    h.wfile.write(chunk)
                    h.wfile.flush()
                return
            data = response.read()
            self._keep(data)
            tamper = self.tamper
            if tamper is not None and "json" in kind:
                answer = self._hook(tamper, method, path, response.status_code, json.loads(data))
                data = json.dumps(answer).encode()
            self._record(method, path, response.status_code)
            if b'"envelope"' in data:
                # The long poll delivered in its own answer: recorded as a call of its own.
                self._record("DELIVER", path, response.status_code)
            self._start(h, response, len(data))
            h.wfile.write(data)
        except _HookFailed:
            h.send_error(500, "tamper hook failed")
        except (OSError, httpx.HTTPError):
            pass  # either side went away (an interrupted CLI, a stopped approver)
        finally:
            with self._lock:
                self._streams.discard(response)
            response.close()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append((method, path, status))

    @staticmethod
    def _start(h: BaseHTTPRequestHandler, response: httpx.Response, length: int | None) -> None:
        h.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP and name.lower() not in ("date", "server"):
                h.send_header(name, value)
        if length is not None:
            h.send_header("content-length", str(length))
        h.send_header("connection", "close")
        h.end_headers()


# --- the deployment ------------------------------------------------------------------------


def _point_at(path: Path, url: str) -> None:
    """Rewrite the ``server`` of a profile or key file; it stays 0600."""
    document = json.loads(path.read_text())
    document["server"] = url
    tmp = path.with_name(f".{path.name}.{token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=2)
    tmp.replace(path)
    assert path.stat().st_mode & 0o777 == 0o600


@dataclass
class World:
    d: Deployment
    client: HostileProxy
    """Between the person's CLI and the relay."""
    approver: HostileProxy
    """Between the automated approver and the relay."""
    serve: ServeProcess

    @property
    def profile(self) -> Path:
        return self.d.client_config / "profiles" / "default.json"

    def head(self) -> int:
        return int(json.loads(self.profile.read_text())["head"]["seq"])

    def store(self, path: str, value: str, field: str = "password") -> None:
        """Store through the proxies; their ``calls`` then show only what comes after."""
        done = self.d.store(path, {field: value})
        assert done.returncode == 0, outputs(done)
        self.client.forget_calls()
        self.approver.forget_calls()

    def read(self, ref: str) -> subprocess.CompletedProcess[str]:
        return self.d.cli("read", ref, "--purpose", "hostile proxy test", timeout=90)

    def item_id(self, path: str) -> str:
        session = self.d.session()
        try:
            listed = session.ok("GET", "/items", "listing items")["items"]
        finally:
            session.close()
        [item] = [e["id"] for e in listed if e["path"] == path]
        return str(item)

    def manifest(self, item: str) -> str:
        session = self.d.session()
        try:
            versions = session.ok("GET", f"/items/{item}/versions", "reading")["versions"]
        finally:
            session.close()
        return str(versions[-1]["manifest"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = Deployment(tmp_path_factory.mktemp("hostile"))
    client = HostileProxy(d.url)
    approver = HostileProxy(d.url)
    try:
        _point_at(d.client_config / "profiles" / "default.json", client.url)
        _point_at(d.key_file, approver.url)
        serve = d.serve(APPROVE_ALL)
        yield World(d=d, client=client, approver=approver, serve=serve)
    finally:
        for proc in d.serves:
            proc.stop()
        client.close()
        approver.close()
        d.close()


@pytest.fixture
def w(world: World) -> Iterator[World]:
    """The shared world with honest proxies; honest again when the test ends."""
    world.client.reset()
    world.approver.reset()
    yield world
    errors = world.client.errors + world.approver.errors
    world.client.reset()
    world.approver.reset()
    assert not errors, errors


@pytest.fixture(scope="module")
def second_approver(world: World) -> ApproverRecord:
    """A second approver device, added by the first: the directory has two links."""
    hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
    record = ApproverRecord(id=ids.new_id(ids.APPROVER), name="desktop", kind="terminal",
                            tier="device", hpke_pk=hpke.public_key(),
                            sig_pk=sig.verify_key())  # fmt: skip
    session = world.d.session()
    try:
        directory = admin.add_device(session, record)
    finally:
        session.close()
    assert directory.head.seq >= 1
    return record


# --- what tampering looks like ---------------------------------------------------------------


def _edit_jws(token: str, edit: Callable[[dict[str, Any]], None]) -> str:
    """The same token with its payload changed and its header and signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64u_decode(payload))
    edit(claims)
    return ".".join((header, b64u_encode(canonical_json(claims)), signature))


def _flip(b64: str) -> str:
    raw = bytearray(b64u_decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return b64u_encode(bytes(raw))


def _relay_key() -> str:
    """An HPKE public key whose private half the relay holds."""
    return HpkePrivateKey.generate().public_key().to_text()


ENVELOPE = r"/v1/vaults/[^/]+/access-requests/[^/]+/envelope"
#: The long poll, which hands over the envelope in its own answer once released.
LONG_POLL = r"/v1/vaults/[^/]+/access-requests/[^/]+"
APPROVAL = r"/v1/vaults/[^/]+/approvals/(?!stream$)[^/]+"


def _on(method: str, pattern: str, change: Callable[[Any], Any]) -> Tamper:
    """Tamper with the successful answers to ``method pattern`` only."""

    def tamper(m: str, path: str, status: int, body: Any) -> Any:
        if m == method and status == 200 and re.fullmatch(pattern, path):
            return change(body)
        return body

    return tamper


def _on_delivery(change: Callable[[Any], Any]) -> Tamper:
    """Tamper with the envelope wherever the relay hands it over.

    That is ``POST …/envelope``, or the long poll that delivers in its own
    answer (``deliver=true``, what the CLI asks for).
    """

    def tamper(m: str, path: str, status: int, body: Any) -> Any:
        if status != 200:
            return body
        if m == "POST" and re.fullmatch(ENVELOPE, path):
            return change(body)
        if m == "GET" and re.fullmatch(LONG_POLL, path) and isinstance(body.get("envelope"), dict):
            body["envelope"] = change(body["envelope"])
        return body

    return tamper


def _delivered(w: World) -> bool:
    """Whether the relay handed an envelope to the CLI, by either route."""
    return bool(w.client.called("POST", ENVELOPE) or w.client.called("DELIVER", LONG_POLL))


def _secret() -> str:
    return f"s3cret-{token_hex(12)}"


def _assert_nowhere(value: str, *texts: str, proxies: Sequence[HostileProxy] = ()) -> None:
    for text in texts:
        assert value not in text
    for proxy in proxies:
        for data in list(proxy.wire):
            assert value.encode() not in data


def _assert_refused(w: World, done: subprocess.CompletedProcess[str], code: str,
                    value: str) -> None:  # fmt: skip
    """Exit 5, the failed check named on stderr, and nothing on stdout."""
    assert done.returncode == VERIFICATION, outputs(done)
    assert f"[{code}]" in done.stderr, done.stderr
    assert "refused:" in done.stderr
    assert done.stdout == ""
    _assert_nowhere(value, done.stdout, done.stderr, proxies=[w.client, w.approver])


# --- the CLI refuses -----------------------------------------------------------------------


def test_honest_proxy_passes_everything(w: World) -> None:
    """The baseline: through the proxies, a store and a read work and the wire holds no value."""
    value = _secret()
    w.store("hostile/honest/db", value)
    done = w.read("sealbox://hostile/honest/db/password")
    assert done.returncode == 0, outputs(done)
    assert done.stdout == value + "\n"
    assert _delivered(w)
    assert w.approver.called("GET", APPROVAL)
    _assert_nowhere(value, done.stderr, proxies=[w.client, w.approver])


def test_swapped_one_time_key_is_refused(w: World) -> None:
    """The proxy puts its own key in the access statement: the signature no longer holds."""
    value = _secret()
    w.store("hostile/epk/db", value)

    def swap(method: str, path: str, body: Any) -> Any:
        if method == "POST" and path.endswith("/access-requests"):
            body["statement"] = _edit_jws(body["statement"],
                                          lambda c: c.update(epk=_relay_key()))  # fmt: skip
        return body

    w.client.tamper_request = swap
    done = w.read("sealbox://hostile/epk/db/password")
    # The relay checks the statement too and refuses it before any approver sees it
    # (the approvers' own refusal of a swapped key is test_approver_refuses_tampered_request).
    assert done.returncode == FAILED, outputs(done)
    assert "asking for access: the relay refused" in done.stderr
    assert "signature" in done.stderr
    assert done.stdout == ""
    [(_, _, status)] = w.client.called("POST", r"/v1/vaults/[^/]+/access-requests")
    assert status == 400
    assert not w.approver.called("GET", APPROVAL)
    assert not _delivered(w)
    _assert_nowhere(value, done.stdout, done.stderr, proxies=[w.client, w.approver])


def test_substituted_approver_key_is_refused(w: World, second_approver: ApproverRecord) -> None:
    """The proxy serves a directory in which an approver's HPKE key is the relay's."""
    value = _secret()
    w.store("hostile/dirkey/db", value)
    relay_key = _relay_key()

    def substitute(body: Any) -> Any:
        links = body["links"]

        def edit(claims: dict[str, Any]) -> None:
            assert claims["approver"]["id"] == second_approver.id
            claims["approver"]["hpke_pk"] = relay_key

        links[1] = _edit_jws(links[1], edit)
        return body

    w.client.tamper = _on("GET", r"/v1/vaults/[^/]+/directory", substitute)
    # A store would seal a share to the substituted key: refused before anything is uploaded.
    other = _secret()
    stored = w.d.store("hostile/dirkey/new", {"password": other})
    _assert_refused(w, stored, "directory_broken", other)
    assert "link 1 does not verify" in stored.stderr
    assert not w.client.called("POST", r"/v1/vaults/[^/]+/store-requests")
    # A read is refused as well, before it asks for anything.
    done = w.read("sealbox://hostile/dirkey/db/password")
    _assert_refused(w, done, "directory_broken", value)
    assert not w.client.called("POST", r"/v1/vaults/[^/]+/access-requests")


def test_altered_ciphertext_is_refused(w: World) -> None:
    """The proxy flips one bit of a field ciphertext in the envelope."""
    value = _secret()
    w.store("hostile/ct/db", value)

    def alter(body: Any) -> Any:
        [fields] = body["ciphertexts"].values()
        fields["password"] = _flip(fields["password"])
        return body

    w.client.tamper = _on_delivery(alter)
    done = w.read("sealbox://hostile/ct/db/password")
    _assert_refused(w, done, "manifest_mismatch", value)
    assert "ciphertext" in done.stderr


def test_replayed_release_is_refused(w: World) -> None:
    """The proxy answers a second read with the releases of the first one."""
    value = _secret()
    w.store("hostile/replay/db", value)
    kept: list[str] = []

    def record(body: Any) -> Any:
        kept.extend(body["releases"])
        return body

    w.client.tamper = _on_delivery(record)
    first = w.read("sealbox://hostile/replay/db/password")
    assert first.returncode == 0, outputs(first)
    assert first.stdout == value + "\n"
    assert kept

    def replay(body: Any) -> Any:
        assert body["releases"]
        assert body["releases"] != kept
        body["releases"] = list(kept)
        return body

    w.client.tamper = _on_delivery(replay)
    w.client.forget_calls()
    done = w.read("sealbox://hostile/replay/db/password")
    _assert_refused(w, done, "binding_mismatch", value)
    assert "another request" in done.stderr


def test_directory_rollback_is_refused(w: World, second_approver: ApproverRecord) -> None:
    """After the CLI has seen the approver added, the proxy serves the chain without it."""
    value = _secret()
    w.store("hostile/dirback/db", value)
    first = w.read("sealbox://hostile/dirback/db/password")
    assert first.returncode == 0, outputs(first)
    seen = w.head()
    assert seen >= 1  # the profile remembers the longer chain

    w.client.tamper = _on("GET", r"/v1/vaults/[^/]+/directory",
                          lambda body: {**body, "links": body["links"][:seen]})  # fmt: skip
    w.client.forget_calls()
    done = w.read("sealbox://hostile/dirback/db/password")
    _assert_refused(w, done, "directory_rollback", value)
    assert not w.client.called("POST", r"/v1/vaults/[^/]+/access-requests")
    assert w.head() == seen  # and the shorter chain was not remembered


def test_directory_fork_is_refused(w: World, second_approver: ApproverRecord) -> None:
    """The proxy serves a validly signed chain that differs at the link the CLI saw last.

    The first approver really signed the other link (as a relay could keep one
    from an approver that tried twice): only the cached head tells them apart.
    """
    value = _secret()
    w.store("hostile/fork/db", value)
    first = w.read("sealbox://hostile/fork/db/password")
    assert first.returncode == 0, outputs(first)
    seen = w.head()
    d = w.d
    links = httpx.get(f"{d.url}/v1/vaults/{d.vault}/directory").json()["links"]
    before = dirs.verify_directory(links[:seen], pinned=d.keys.fingerprint)
    stranger = ApproverRecord(id=ids.new_id(ids.APPROVER), name="elsewhere", kind="terminal",
                              tier="device", hpke_pk=HpkePrivateKey.generate().public_key(),
                              sig_pk=SigningKey.generate().verify_key())  # fmt: skip
    other = dirs.append_link(before, "add", stranger, signer=d.keys.record.id, key=d.keys.sig,
                             now=int(time.time()))  # fmt: skip
    forked = [*links[:seen], other]
    dirs.verify_directory(forked, pinned=d.keys.fingerprint)  # a valid chain on its own

    w.client.tamper = _on("GET", r"/v1/vaults/[^/]+/directory",
                          lambda body: {**body, "links": forked})  # fmt: skip
    w.client.forget_calls()
    done = w.read("sealbox://hostile/fork/db/password")
    _assert_refused(w, done, "directory_fork", value)
    assert not w.client.called("POST", r"/v1/vaults/[^/]+/access-requests")
    assert w.head() == seen


def _two_versions(w: World, path: str) -> tuple[str, str, str]:
    """Store and read v1, then v2, of ``path``; (v2 value, v1 manifest, v2 manifest)."""
    manifests: list[str] = []

    def record(body: Any) -> Any:
        manifests.extend(body["manifests"].values())
        return body

    w.client.tamper = _on_delivery(record)
    values = [_secret(), _secret()]
    for value in values:
        w.store(path, value)
        # No field named: the CLI reads the latest manifest to learn the fields.
        done = w.read(f"sealbox://{path}")
        assert done.returncode == 0, outputs(done)
        assert done.stdout == value + "\n"
    w.client.tamper = None
    w.client.forget_calls()
    return values[1], manifests[0], manifests[1]


def test_item_version_rollback_is_refused(w: World) -> None:
    """After the CLI has read v2, the proxy serves v1 as the latest version."""
    value, _, _ = _two_versions(w, "hostile/itemback/db")
    w.client.tamper = _on("GET", r"/v1/vaults/[^/]+/items/[^/]+/versions",
                          lambda body: {**body, "versions": body["versions"][:1]})  # fmt: skip
    done = w.read("sealbox://hostile/itemback/db")
    _assert_refused(w, done, "version_rollback", value)
    assert "version 1 served, version 2 seen before" in done.stderr
    assert not w.client.called("POST", r"/v1/vaults/[^/]+/access-requests")


def test_old_manifest_in_envelope_is_refused(w: World) -> None:
    """After the CLI has read v2, the proxy hands it v1's manifest with v2's release."""
    value, old, new = _two_versions(w, "hostile/oldmanifest/db")
    assert old != new

    def downgrade(body: Any) -> Any:
        [item] = body["manifests"]
        assert body["manifests"][item] == new
        body["manifests"][item] = old
        return body

    w.client.tamper = _on_delivery(downgrade)
    done = w.read("sealbox://hostile/oldmanifest/db/password")
    _assert_refused(w, done, "version_rollback", value)
    assert _delivered(w)


# --- the approver refuses --------------------------------------------------------------------


def _swap_epk(entry: dict[str, Any], _: str) -> None:
    entry["statement"] = _edit_jws(entry["statement"], lambda c: c.update(epk=_relay_key()))


def _other_manifest(entry: dict[str, Any], other: str) -> None:
    [material] = entry["items"].values()
    material["manifest"] = other


def _flip_wrap(entry: dict[str, Any], _: str) -> None:
    [material] = entry["items"].values()
    material["wraps"]["password"] = _flip(material["wraps"]["password"])


class TamperingNotFlagged(AssertionError):
    """The approver refused to answer, but did not log the refusal as a tampering alert."""


#: How long the CLI may take to fail on a refused request: far below the request's expiry
#: (300 s), which is what it would wait without the approver's signed refusal.
REFUSED_WITHIN = 60


@pytest.mark.parametrize(
    ("tamper", "error"),
    [
        pytest.param(_swap_epk, "signature_invalid", id="swapped-epk"),
        pytest.param(_other_manifest, "binding_mismatch", id="other-manifest"),
        pytest.param(_flip_wrap, "manifest_mismatch", id="flipped-wrap"),
    ],
)
def test_approver_refuses_tampered_request(
    w: World, tamper: Callable[[dict[str, Any], str], None], error: str
) -> None:
    """The proxy alters the pending request the automated approver fetches: no release.

    The approver must never release it; it answers with a signed refusal (a
    deny with grounds ``unverifiable``) and logs it as what it is: an
    ``unverifiable`` request, with severity ``alert``.  The CLI fails at once
    (exit 5), told the relay may be tampering, instead of waiting for the expiry.
    """
    # Another item with the same field: only the manifest's binding to the asked item tells.
    if not _exists(w, "hostile/approver/other"):
        w.store("hostile/approver/other", _secret())
    other = w.manifest(w.item_id("hostile/approver/other"))
    path = f"hostile/approver/{token_hex(4)}"
    value = _secret()
    w.store(path, value)
    tampered: list[str] = []

    def change(entry: Any) -> Any:
        if entry.get("kind") == "access":
            tamper(entry, other)
            tampered.append(entry["id"])
        return entry

    w.approver.tamper = _on("GET", APPROVAL, change)
    started = time.monotonic()
    done = w.d.cli("read", f"sealbox://{path}/password", "--purpose", "hostile proxy test",
                   timeout=REFUSED_WITHIN)  # fmt: skip
    took = time.monotonic() - started
    entry = _decision(w.serve, tampered, timeout=10)
    [request] = tampered
    assert entry["error"] == error, entry
    assert entry["outcome"] in ("unverifiable", "failed"), entry
    assert done.returncode == VERIFICATION, outputs(done)
    assert "[refused_unverifiable]" in done.stderr, done.stderr
    assert "refused the request because what it was shown does not verify" in done.stderr
    assert f"the request does not verify: {error}" in done.stderr
    assert "may be tampering" in done.stderr
    assert done.stdout == ""
    assert took < REFUSED_WITHIN
    assert w.approver.called("POST", rf"/v1/vaults/[^/]+/access-requests/{request}/deny")
    assert not w.approver.called("POST", rf"/v1/vaults/[^/]+/access-requests/{request}/release")
    assert not _delivered(w)
    _assert_nowhere(value, done.stdout, done.stderr, w.serve.log.read_text(), w.serve.stderr,
                    proxies=[w.client, w.approver])  # fmt: skip
    if entry["outcome"] != "unverifiable" or entry.get("severity") != "alert":
        raise TamperingNotFlagged(f"logged as {entry['outcome']!r}, not as an alert: {entry}")
    assert entry["answer"] == "refused", entry


def test_a_relay_that_drops_the_refusal_leaves_the_client_waiting(w: World) -> None:
    """What a refusal cannot do: a relay that swallows it brings back the wait for the expiry.

    The proxy alters the request the approver sees, and empties the body of the
    approver's refusal on its way: the relay files nothing (the signature over
    the body no longer holds).  The CLI is still waiting; it is interrupted and
    withdraws its request.
    """
    path = f"hostile/dropped/{token_hex(4)}"
    value = _secret()
    w.store(path, value)
    tampered: list[str] = []

    def change(entry: Any) -> Any:
        if entry.get("kind") == "access":
            _swap_epk(entry, "")
            tampered.append(entry["id"])
        return entry

    def drop(method: str, path: str, body: Any) -> Any:
        if method == "POST" and path.endswith("/deny"):
            return {}  # the refusal never reaches the relay
        return body

    w.approver.tamper = _on("GET", APPROVAL, change)
    w.approver.tamper_request = drop
    cli = subprocess.Popen(
        [*SEALBOX, "read", f"sealbox://{path}/password", "--purpose", "hostile proxy test"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=env_for(w.d.client_config),
    )  # fmt: skip
    try:
        entry = _decision(w.serve, tampered, timeout=60)
        assert (entry["outcome"], entry["severity"]) == ("unverifiable", "alert"), entry
        assert entry["answer"] == "not refused", entry
        time.sleep(1)
        assert cli.poll() is None  # no refusal arrived: it waits, as it would until expiry
        cli.send_signal(signal.SIGINT)
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        _end(cli)
    assert cli.returncode == INTERRUPTED, stdout + stderr
    assert stdout == ""
    _assert_nowhere(value, stdout, stderr, proxies=[w.client, w.approver])


def _end(cli: subprocess.Popen[str]) -> None:
    """Stop a CLI still running: Ctrl-C first (it withdraws its request), then kill."""
    if cli.poll() is None:
        cli.send_signal(signal.SIGINT)
        try:
            cli.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            cli.kill()
            cli.communicate()


def _exists(w: World, path: str) -> bool:
    with contextlib.suppress(ValueError):
        w.item_id(path)
        return True
    return False


def _decision(serve: ServeProcess, tampered: list[str], *, timeout: float) -> dict[str, Any]:
    """The approver's logged decision on the (first) tampered request."""
    deadline = time.monotonic() + timeout
    while True:
        if tampered:
            found = [e for e in serve.decisions() if e.get("request") == tampered[0]]
            if found:
                return found[0]
        assert time.monotonic() < deadline, (tampered, serve.decisions(), serve.stderr)
        time.sleep(0.05)
