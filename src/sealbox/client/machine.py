"""``sealbox machine register``: a machine joins a vault with a one-time bootstrap token.

The machine makes its Ed25519 key and ``cli_`` id here, and sends only the
public half with the token (:func:`register`).  Every call it makes is signed
(RFC 9421) with that new key, so only this machine can register the key or
learn its outcome, and no bearer credential ever exists.  It pins the
vault's directory link 0 the first time it sees it (trust on first use: the
operator compares the vault safety code with an approver's) and shows its own
key's safety code and a registration code, which the approver compares and
types.  Once approved, the certificate must verify against the pinned
directory and certify exactly this id and key as a machine; only then is the
identity saved (:mod:`sealbox.client.identity`).

Nothing the relay says is trusted: it could refuse, but it cannot make this
machine accept a certificate no current approver signed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, expect_object, field, refused
from sealbox._relay.directory import DirectoryView, directory_flow, pin_flow
from sealbox._relay.drive import SyncDriver, reply_of, unreachable
from sealbox._relay.httpsig import signer
from sealbox.client.identity import Identity
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    CertificateInvalid,
    Denied,
    LoginFailed,
    MalformedInput,
    RelayRefused,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.statements import ClientCertificate

__all__ = ["TOKEN_ENV", "Registered", "RegistrationPrompt", "register"]

#: Where the bootstrap scripts put the token (a command line is visible to other users).
TOKEN_ENV = "SEALBOX_BOOTSTRAP_TOKEN"  # noqa: S105 - a variable name
TOKEN_PREFIX = "sbx_bt_"  # noqa: S105 - a prefix
POLL_INTERVAL = 3.0
MAX_TRANSPORT_FAILURES = 5

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class RegistrationPrompt:
    """What the operator and the approver compare (no secret in it)."""

    server: str
    vault: str
    vault_safety_code: str
    """Of the directory link 0 this machine pinned: compare it with an approver's."""
    client_id: str
    name: str
    user_code: str
    """The approver types it in `sealbox approve`."""
    key_fingerprint: str
    key_safety_code: str
    expires_at: int


@dataclass(frozen=True)
class Registered:
    identity: Identity
    certificate: ClientCertificate
    vault_safety_code: str


def _base(server: str) -> str:
    url = server.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise MalformedInput(
            "the server must be an http:// or https:// URL",
            hint="Pass the relay's URL, e.g. --server https://sealbox.example.com.",
        )
    return url


def _vault_flow() -> Flow:
    body = expect_object((yield Call("GET", "/v1/vault", auth=False)), "looking up the vault")
    return ids.check_id(body.get("vault"), ids.VAULT, what="vault")


def _start_flow(vault: str, token: str, client_id: str, key: SigningKey, name: str | None) -> Flow:
    body: dict[str, Any] = {"token": token, "client_id": client_id,
                            "sig_pk": key.verify_key().to_text()}  # fmt: skip
    if name:
        body["name"] = name
    reply = yield Call("POST", f"/v1/vaults/{vault}/machine-registrations", json=body)
    return expect_object(reply, "registering this machine", status=201)


def _check_certificate(
    token: object, directory: dirs.Directory, client_id: str, key: SigningKey, *, now: int
) -> ClientCertificate:
    cert = verify_certificate(token, directory, now=now)
    mine = (client_id, key.verify_key(), "machine")
    if (cert.client.id, cert.client.sig_pk, cert.client.kind) != mine:
        raise CertificateInvalid(
            "the certificate the relay returned is not for this machine's id and key",
            hint="Someone may have approved another machine in its place; tell your approver.",
        )
    return cert


def register(
    http: httpx.Client, *, server: str, token: str, name: str | None = None,
    on_prompt: Callable[[RegistrationPrompt], None],
    on_wait: Callable[[float], None] = lambda remaining: None,
    sleep: Sleep = time.sleep, clock: Clock = time.time,
) -> Registered:  # fmt: skip
    """Register this machine, wait for an approver, and return its verified identity.

    The caller saves it (:func:`sealbox.client.identity.save_dir`).  Raises
    :class:`~sealbox.errors.Denied` if an approver refuses, ``LoginFailed`` if
    the registration expires, a protocol error if the directory or the
    certificate does not verify.
    """
    server = _base(server)
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        raise MalformedInput(
            "a bootstrap token starts with sbx_bt_",
            hint=f"Copy the token `sealbox machine token create` printed, or set {TOKEN_ENV}.",
        )
    key = SigningKey.generate()
    client_id = ids.new_id(ids.CLIENT)
    driver = SyncDriver(http, server, authorize=signer(key, client_id), sleep=sleep, clock=clock)
    vault = driver.drive(_vault_flow())
    # Trust on first use: pin the link 0 the relay serves now; the operator
    # confirms it by comparing the vault safety code with an approver's.
    pinned = driver.drive(pin_flow(vault))
    started = driver.drive(_start_flow(vault, token, client_id, key, name))
    what = "registering this machine"
    prompt = RegistrationPrompt(
        server=server, vault=vault, vault_safety_code=pinned.safety_code, client_id=client_id,
        name=field(started, "name", str, what), user_code=field(started, "user_code", str, what),
        key_fingerprint=key.verify_key().fingerprint(),
        key_safety_code=key.verify_key().safety_code(),
        expires_at=field(started, "expires_at", int, what),
    )  # fmt: skip
    on_prompt(prompt)
    body = _poll(driver, vault, client_id, deadline=prompt.expires_at + 5, on_wait=on_wait,
                 sleep=sleep, clock=clock)  # fmt: skip
    view = DirectoryView(vault=vault, fingerprint=pinned.fingerprint, head=pinned.head)
    directory = driver.drive(directory_flow(view, fresh=True))
    certificate = body.get("certificate")
    cert = _check_certificate(certificate, directory, client_id, key, now=int(clock()))
    identity = Identity(
        server=server, vault=vault, fingerprint=pinned.fingerprint, head=directory.head,
        client_id=client_id, client_name=cert.client.name, kind="machine", key=key,
        certificate=str(certificate), enrollment=None,
    )  # fmt: skip
    return Registered(identity, cert, directory.safety_code)


def _poll(
    driver: SyncDriver, vault: str, client_id: str, *, deadline: float,
    on_wait: Callable[[float], None], sleep: Sleep, clock: Clock,
) -> dict[str, Any]:  # fmt: skip
    call = Call("GET", f"/v1/vaults/{vault}/machine-registrations/{client_id}")
    failures = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise LoginFailed(
                "the registration expired before an approver approved it",
                hint="Ask an approver for a new token and run `sealbox machine register` again.",
            )
        on_wait(remaining)
        try:
            reply = reply_of(driver.response(call))
        except httpx.TransportError as exc:
            failures += 1
            if failures >= MAX_TRANSPORT_FAILURES:
                raise unreachable(driver.server, exc) from None
            sleep(POLL_INTERVAL)
            continue
        if reply.status >= 500:
            failures += 1
            if failures >= MAX_TRANSPORT_FAILURES:
                raise refused(reply, "waiting for an approver")
            sleep(POLL_INTERVAL)
            continue
        body = expect_object(reply, "waiting for an approver")
        failures = 0
        state = body.get("state")
        if state == "approved":
            return body
        if state == "denied":
            raise Denied(
                "an approver denied this machine",
                hint="Ask your approver why; a new token is needed to try again.",
            )
        if state == "expired":
            raise LoginFailed(
                "the registration expired before an approver approved it",
                hint="Ask an approver for a new token and run `sealbox machine register` again.",
            )
        if state != "pending":
            raise RelayRefused("waiting for an approver: the relay's answer has no valid state")
        sleep(POLL_INTERVAL)
