"""Agents from the client's side: a person makes one, and an agent gets its tokens.

``sealbox agent create`` (:func:`create`) runs on a logged-in person's machine.
It makes the agent's Ed25519 key and ``cli_`` id here, and (if asked) a client
secret, and registers only the public key (and the secret's hash) with the
relay, authenticated as the person.  It then polls until an approver has
certified the key, and verifies the certificate against the directory the
person's profile pinned: the relay cannot hand it a certificate the vault's
approvers did not sign, or one for another key.

A saved agent profile gets its tokens by ``client_credentials``
(:mod:`sealbox.client.credentials`) when it has none or they are stale.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, expect_object, field
from sealbox._relay.directory import DirectoryView, directory_flow
from sealbox._relay.drive import SyncDriver
from sealbox.client import profile as profiles
from sealbox.client.login import refresh_flow
from sealbox.client.profile import Profile
from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import CertificateInvalid, LoginFailed, MalformedInput, NotLoggedIn
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.statements import ClientCertificate, ClientInfo

__all__ = [
    "SECRET_PREFIX",
    "AgentCredentials",
    "AgentPrompt",
    "Waiting",
    "create",
    "save_profile",
    "slug",
]

SECRET_PREFIX = "sbx_cs_"  # noqa: S105 - what a client secret starts with, not a secret
#: Seconds between polls while an approver decides.
POLL_INTERVAL = 3
#: Refresh a person's access token first unless it outlives this: the wait for an approver
#: (the relay keeps an agent request 15 minutes) must not outlast it.
REFRESH_MARGIN = 16 * 60

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class AgentPrompt:
    """What the person must see to have the agent approved (no secret in it)."""

    server: str
    vault: str
    client_id: str
    name: str
    scopes: tuple[str, ...]
    key_fingerprint: str
    key_safety_code: str
    expires_in: int


@dataclass(frozen=True)
class Waiting:
    remaining: float
    polls: int


@dataclass(frozen=True)
class AgentCredentials:
    """An approved agent: everything it needs to authenticate and verify what it reads."""

    server: str
    vault: str
    fingerprint: str
    """The vault fingerprint the person's profile pinned (link 0)."""
    head: dirs.DirectoryHead
    client_id: str
    name: str
    key: SigningKey
    certificate: str
    token_endpoint: str
    client_secret: str | None
    safety_code: str
    """The vault safety code, to compare with an approver's."""
    cert: ClientCertificate

    def __repr__(self) -> str:
        # Never the key or the secret, even in a traceback.
        return f"AgentCredentials(server={self.server!r}, client={self.client_id})"

    def to_json(self) -> dict[str, Any]:
        """For a CI secret store: the key, and the client secret if one was made."""
        out: dict[str, Any] = {
            "format": "sealbox.agent.v1", "client_id": self.client_id, "name": self.name,
            "token_endpoint": self.token_endpoint, "server": self.server, "vault": self.vault,
            "fingerprint": self.fingerprint, "head": {"seq": self.head.seq, "hash": self.head.hash},
            "private_key": self.key.to_text(),
            # The same key as PKCS#8 PEM: what standard JOSE libraries sign assertions with.
            "private_key_pem": self.key.to_pem().decode("ascii"),
            "certificate": self.certificate,
            "scopes": list(self.cert.scopes),
        }  # fmt: skip
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        return out


def slug(name: str) -> str:
    """A profile name from an agent's name: ``Deploy Bot`` -> ``deploy-bot``."""
    made = ids.slug(name)
    if not made:
        raise MalformedInput("the agent's name gives no profile name",
                             hint="Pass --profile NAME.")  # fmt: skip
    return made


def _endpoint_flow() -> Flow:
    meta = expect_object(
        (yield Call("GET", "/.well-known/oauth-authorization-server", auth=False)),
        "reading the relay's OAuth metadata",
    )
    return field(meta, "token_endpoint", str, "reading the relay's OAuth metadata")


def _person(path: Path, http: httpx.Client, clock: Clock) -> Profile:
    """The person's session from ``path``, with an access token good for a while."""
    with profiles.locked(path):
        person = profiles.load(path)
        if person.auth != "session":
            raise NotLoggedIn(
                "`sealbox agent create` needs a person's login, and this profile is not one",
                hint="Run it with a profile made by `sealbox login` (--profile NAME).",
            )
        if person.expires_at <= clock() + REFRESH_MARGIN:
            fresh: Profile = SyncDriver(http, person.server).drive(refresh_flow(person))
            profiles.save(path, fresh, overwrite=True)
            person = fresh
    return person


def create(
    http: httpx.Client, *, person_path: Path, name: str, scopes: list[str], client_secret: bool,
    on_prompt: Callable[[AgentPrompt], None], on_wait: Callable[[Waiting], None],
    sleep: Sleep = time.sleep, clock: Clock = time.time,
) -> AgentCredentials:  # fmt: skip
    """Make an agent's key here, have it approved, and verify its certificate.

    Raises :class:`NotLoggedIn` without a person's session, :class:`LoginFailed`
    if the agent is denied or the request expires, and a protocol error if the
    certificate the relay returns does not verify against the pinned directory.
    """
    person = _person(person_path, http, clock)

    def bearer(request: httpx.Request) -> None:
        request.headers["authorization"] = f"Bearer {person.access_token}"

    driver = SyncDriver(http, person.server, authorize=bearer, clock=clock)
    key = SigningKey.generate()
    client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="agent", name=name, sig_pk=key.verify_key())
    ClientInfo.from_json(client.to_json())  # a name the relay would refuse fails here
    secret = SECRET_PREFIX + b64u_encode(secrets.token_bytes(32)) if client_secret else None
    endpoint = driver.drive(_endpoint_flow())
    base = f"/v1/vaults/{person.vault}"
    body: dict[str, Any] = {
        "client_id": client.id, "name": client.name, "sig_pk": client.sig_pk.to_text(),
        "scopes": scopes,
    }  # fmt: skip
    if secret is not None:
        body["client_secret_hash"] = sx.token_hash(secret)
    asked = expect_object(
        driver.send(Call("POST", f"{base}/agents", json=body)), "asking for the agent", status=201
    )
    expires_at = field(asked, "expires_at", int, "asking for the agent")
    on_prompt(AgentPrompt(
        server=person.server, vault=person.vault, client_id=client.id, name=client.name,
        scopes=tuple(field(asked, "scopes", list, "asking for the agent")),
        key_fingerprint=client.sig_pk.fingerprint(), key_safety_code=client.sig_pk.safety_code(),
        expires_in=max(0, expires_at - int(clock())),
    ))  # fmt: skip
    certificate = _wait(driver, f"{base}/agents/{client.id}/registration", expires_at,
                        on_wait=on_wait, sleep=sleep, clock=clock)  # fmt: skip
    view = DirectoryView(vault=person.vault, fingerprint=person.fingerprint, head=person.head)
    directory = driver.drive(directory_flow(view, fresh=True))
    cert = verify_certificate(certificate, directory, now=int(clock()))
    if (cert.client.id, cert.client.sig_pk, cert.client.kind) != (
        client.id, client.sig_pk, "agent",
    ):  # fmt: skip
        raise CertificateInvalid(
            "the certificate the relay returned is not for this agent's id and key",
            hint="Someone may have approved another agent in its place; tell your approver.",
        )
    if directory.head != person.head:
        with profiles.locked(person_path):
            current = profiles.load(person_path)
            if directory.head.seq >= current.head.seq:
                profiles.save(person_path, replace(current, head=directory.head), overwrite=True)
    return AgentCredentials(
        server=person.server, vault=person.vault, fingerprint=person.fingerprint,
        head=directory.head, client_id=client.id, name=cert.client.name, key=key,
        certificate=certificate, token_endpoint=endpoint, client_secret=secret,
        safety_code=directory.safety_code, cert=cert,
    )  # fmt: skip


def _wait(
    driver: SyncDriver, path: str, expires_at: int, *, on_wait: Callable[[Waiting], None],
    sleep: Sleep, clock: Clock,
) -> str:  # fmt: skip
    polls = 0
    while True:
        remaining = expires_at - clock()
        if remaining <= 0:
            raise LoginFailed("the agent request expired before an approver approved it",
                              hint="Run `sealbox agent create` again.")  # fmt: skip
        on_wait(Waiting(remaining=remaining, polls=polls))
        sleep(POLL_INTERVAL)
        polls += 1
        reply = driver.send(Call("GET", path, until=expires_at))
        body = expect_object(reply, "waiting for an approver")
        state = body.get("state")
        if state == "approved":
            certificate = field(body, "certificate", str, "waiting for an approver")
            return str(certificate)
        if state == "denied":
            raise LoginFailed("an approver denied this agent",
                              hint="Ask your approver why; run `sealbox agent create` again "
                              "once they agree.")  # fmt: skip
        if state in ("expired", "revoked"):
            raise LoginFailed(f"the agent request {state}",
                              hint="Run `sealbox agent create` again.")  # fmt: skip


def save_profile(path: Path, made: AgentCredentials, *, overwrite: bool) -> Profile:
    """Keep an approved agent as a profile (0600): its key, certificate and token endpoint.

    It holds no token yet: the first call gets one by ``client_credentials``.
    """
    saved = Profile(
        server=made.server, vault=made.vault, fingerprint=made.fingerprint, head=made.head,
        client_id=made.client_id, client_name=made.name, key=made.key,
        certificate=made.certificate, access_token="", refresh_token="", expires_at=0,
        auth="agent", token_endpoint=made.token_endpoint, client_secret=made.client_secret,
    )  # fmt: skip
    profiles.save(path, saved, overwrite=overwrite)
    return saved
