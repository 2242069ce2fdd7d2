"""People's CLI sessions: ``login`` (RFC 8628 device flow), ``whoami``, ``logout``.

``login`` makes a fresh client key and ``cli_`` id here, registers the public
half with the relay's device authorization endpoint, and hands the person a
user code, a URL and the key's fingerprint to compare with what the approver
sees.  It then polls the token endpoint (honouring ``interval`` and
``slow_down``) until an approver has certified the key.  Nothing the relay
answers is taken on trust: the directory is verified from its link 0, which
this client pins (trust on first use: the person compares the vault's safety
code with their approver's), and the certificate must verify against that
directory and certify exactly this client's id and key.

Every function takes the ``httpx.Client`` to talk through and, where it
waits, the functions to sleep and tell the time with, so the whole flow runs
in tests against a fake relay without real sleeps.  Nothing here prints: the
CLI renders the prompts it is handed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, Reply, expect_object, field, refused
from sealbox._relay.directory import DirectoryView, directory_flow, pin_flow
from sealbox._relay.drive import SyncDriver, reply_of, unreachable
from sealbox._relay.httpsig import signer
from sealbox._relay.text import displayable
from sealbox.client import identity as identities
from sealbox.client import profile as profiles
from sealbox.client.credentials import token_flow
from sealbox.client.profile import NotLoggedIn, Profile, ProfileExists
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    CertificateInvalid,
    LoginFailed,
    MalformedInput,
    RelayRefused,
    SealboxError,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.statements import ClientCertificate, ClientInfo

__all__ = [
    "DEVICE_GRANT",
    "DevicePrompt",
    "LoginFailed",
    "LoginResult",
    "RelayRefused",
    "Waiting",
    "WhoAmI",
    "login",
    "logout",
    "refresh",
    "refresh_flow",
    "renew_flow",
    "whoami",
]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.5: on ``slow_down`` the interval grows by 5 seconds, for good.
SLOW_DOWN_STEP = 5
DEFAULT_INTERVAL = 5
#: Polls that may fail to reach the relay in a row before the login gives up.
MAX_TRANSPORT_FAILURES = 3
#: Refresh an access token this long before it expires, so it does not lapse in flight.
REFRESH_MARGIN = 60

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class DevicePrompt:
    """What the person must see to have the login approved (no secret in it)."""

    server: str
    vault: str
    client_id: str
    client_name: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int
    key_fingerprint: str
    key_safety_code: str
    invited_project: str | None = None
    """With ``--invite``: the project and role the invite offers (as the relay says; the
    certificate the approver signs is what counts)."""
    invited_role: str | None = None


@dataclass(frozen=True)
class Waiting:
    """Handed to ``on_wait`` before each poll."""

    interval: int
    """Seconds until the next poll."""
    remaining: float
    """Seconds until the device code expires."""
    polls: int
    slowed_down: bool
    """The relay has just asked this client to poll less often."""


@dataclass(frozen=True)
class LoginResult:
    profile: Profile
    safety_code: str
    """The vault safety code of the pinned link 0: compare it with the approver's."""
    certificate: ClientCertificate


@dataclass(frozen=True)
class WhoAmI:
    server: str
    vault: str
    safety_code: str
    client_id: str
    client_name: str
    role: str
    client_kind: str
    via: str
    certificate: ClientCertificate
    directory_head: int


def _error(reply: Reply) -> str:
    """The relay's machine-readable error code (RFC 6749 ``error``), or ``""``."""
    body = reply.body if isinstance(reply.body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, str) else ""


def _base(server: str) -> str:
    url = server.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise MalformedInput(
            "the server must be an http:// or https:// URL",
            hint="Pass the relay's URL, e.g. --server http://localhost:8300.",
        )
    return url


def _vault_flow() -> Flow:
    body = expect_object((yield Call("GET", "/v1/vault", auth=False)), "looking up the vault")
    vault = ids.check_id(body.get("vault"), ids.VAULT, what="vault")
    if body.get("ready") is False:
        raise RelayRefused(
            "the vault has no approver yet",
            hint="Create the first approver with `sealbox approver init` first.",
        )
    return vault


def _check_certificate(
    token: object, directory: dirs.Directory, client: ClientInfo, *, now: int,
    enrollment: str | None = None,
) -> ClientCertificate:  # fmt: skip
    cert = verify_certificate(token, directory, now=now, enrollment=enrollment)
    # The approver may name the client differently; the id, the key and the kind must match.
    mine = (client.id, client.sig_pk, client.kind)
    if (cert.client.id, cert.client.sig_pk, cert.client.kind) != mine:
        raise CertificateInvalid(
            "the certificate the relay returned is not for this client's id and key",
            hint="Someone may have approved another login in your place; tell your approver.",
        )
    return cert


def _revoke_quietly(driver: SyncDriver, token: str) -> bool:
    try:
        reply = driver.send(Call("POST", "/oauth/revoke", form={"token": token}, auth=False))
    except SealboxError:
        return False
    return reply.status == 200


def _start_flow(vault: str, client: ClientInfo, invite: str | None) -> Flow:
    form = {"vault": vault, "client_id": client.id, "client_name": client.name,
            "sig_pk": client.sig_pk.to_text()}  # fmt: skip
    if invite is not None:
        form["invite"] = invite
    reply = yield Call("POST", "/oauth/device_authorization", auth=False, form=form)
    return expect_object(reply, "starting the login")


def _invited(body: dict[str, Any]) -> tuple[str | None, str | None]:
    offered = body.get("invite")
    if not isinstance(offered, dict):
        return None, None
    project, role = offered.get("project"), offered.get("role")
    if not isinstance(project, str) or not isinstance(role, str):
        return None, None
    return displayable(project, 64), displayable(role, 16)


def login(
    http: httpx.Client,
    *,
    server: str,
    name: str,
    path: Path,
    force: bool = False,
    on_prompt: Callable[[DevicePrompt], None],
    on_wait: Callable[[Waiting], None],
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    invite: str | None = None,
) -> LoginResult:
    """Run the device flow to the end and save the new session to ``path``.

    Raises :class:`ProfileExists` (before contacting the relay) if ``path``
    exists and ``force`` is false; :class:`LoginFailed` if the login is
    denied or expires; a protocol error if the directory or the
    certificate the relay returns does not verify.  With ``invite`` (a code an
    approver made with ``sealbox approver invite``) the login asks to join the
    invite's project with its role; the relay refuses an unknown, expired or
    used code before anything waits for an approver.
    """
    server = _base(server)
    if path.exists() and not force:
        raise ProfileExists(f"the profile {path.stem!r} is already logged in")
    driver = SyncDriver(http, server, sleep=sleep, clock=clock)
    vault = driver.drive(_vault_flow())
    key = SigningKey.generate()
    client = ClientInfo(id=ids.new_id(ids.CLIENT), kind="human", name=name, sig_pk=key.verify_key())
    ClientInfo.from_json(client.to_json())  # a name the relay and approvers would refuse fails here
    body = driver.drive(_start_flow(vault, client, invite))
    what = "starting the login"
    invited_project, invited_role = _invited(body)
    device_code = field(body, "device_code", str, what)
    expires_in = field(body, "expires_in", int, what)
    interval = body.get("interval", DEFAULT_INTERVAL)
    if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 600:
        interval = DEFAULT_INTERVAL
    prompt = DevicePrompt(
        server=server, vault=vault, client_id=client.id, client_name=client.name,
        user_code=field(body, "user_code", str, what),
        verification_uri=field(body, "verification_uri", str, what),
        verification_uri_complete=str(
            body.get("verification_uri_complete") or field(body, "verification_uri", str, what)
        ),
        expires_in=expires_in, interval=interval,
        key_fingerprint=client.sig_pk.fingerprint(), key_safety_code=client.sig_pk.safety_code(),
        invited_project=invited_project, invited_role=invited_role,
    )  # fmt: skip
    on_prompt(prompt)
    granted = _poll(
        driver, device_code, client.id, interval=interval,
        deadline=clock() + expires_in, on_wait=on_wait, sleep=sleep, clock=clock,
    )  # fmt: skip
    now = int(clock())
    try:
        what = "finishing the login"
        access = field(granted, "access_token", str, what)
        refresh_token = field(granted, "refresh_token", str, what)
        lifetime = field(granted, "expires_in", int, what)
        if granted.get("vault") != vault or granted.get("client_id") != client.id:
            raise RelayRefused("the relay's tokens are for another vault or client")
        # Trust on first use: pin the link 0 the relay serves now; the person
        # confirms it by comparing the vault safety code with their approver's.
        directory = driver.drive(pin_flow(vault))
        cert = _check_certificate(granted.get("certificate"), directory, client, now=now)
    except SealboxError:
        # Do not leave a session behind that this client will never use.
        token = granted.get("refresh_token")
        if isinstance(token, str):
            _revoke_quietly(driver, token)
        raise
    session = Profile(
        server=server, vault=vault, fingerprint=directory.fingerprint, head=directory.head,
        client_id=client.id, client_name=cert.client.name, key=key,
        certificate=granted["certificate"], access_token=access, refresh_token=refresh_token,
        expires_at=now + lifetime,
    )  # fmt: skip
    try:
        profiles.save(path, session, overwrite=force)
    except ProfileExists:
        _revoke_quietly(driver, refresh_token)
        raise
    return LoginResult(profile=session, safety_code=directory.safety_code, certificate=cert)


def _poll(
    driver: SyncDriver, device_code: str, client_id: str, *, interval: int,
    deadline: float, on_wait: Callable[[Waiting], None], sleep: Sleep, clock: Clock,
) -> dict[str, Any]:  # fmt: skip
    polls = 0
    failures = 0
    slowed = False
    token_call = Call(
        "POST", "/oauth/token", auth=False,
        form={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
    )  # fmt: skip
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise LoginFailed("the login expired before an approver approved it")
        on_wait(Waiting(interval=interval, remaining=remaining, polls=polls, slowed_down=slowed))
        slowed = False
        sleep(interval)
        polls += 1
        try:
            reply = reply_of(driver.response(token_call))
        except httpx.TransportError as exc:
            failures += 1
            if failures >= MAX_TRANSPORT_FAILURES:
                lost = unreachable(driver.server, exc).message
                raise LoginFailed(
                    f"lost the relay while waiting for an approver ({lost})",
                    hint="Check the relay is running, then run `sealbox login` again.",
                ) from None
            continue
        if reply.status == 200:
            return expect_object(reply, "finishing the login")
        if reply.status >= 500:
            failures += 1
            if failures >= MAX_TRANSPORT_FAILURES:
                raise refused(reply, "waiting for an approver")
            continue
        failures = 0
        error = _error(reply)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            slowed = True
            continue
        if error == "access_denied":
            raise LoginFailed(
                "an approver denied this login",
                hint="Ask your approver why; run `sealbox login` again once they agree.",
            )
        if error == "expired_token":
            raise LoginFailed("the login expired before an approver approved it")
        failure = refused(reply, "waiting for an approver")
        if failure.hint is None or failure.hint == RelayRefused.hint:
            failure.hint = LoginFailed.hint
        raise failure


def refresh_flow(session: Profile, *, clock: Clock = time.time) -> Flow:
    """Rotate the session's tokens (the old refresh token is spent by this call)."""
    reply = yield Call(
        "POST", "/oauth/token", auth=False,
        form={"grant_type": "refresh_token", "refresh_token": session.refresh_token,
              "client_id": session.client_id},
    )  # fmt: skip
    if reply.status != 200:
        if _error(reply) == "invalid_grant":
            raise NotLoggedIn(
                "the session has ended (logged out, revoked, or expired)",
                hint="Log in again with `sealbox login`.",
            )
        raise refused(reply, "refreshing the session")
    body = expect_object(reply, "refreshing the session")
    what = "refreshing the session"
    fresh: Profile = session.with_tokens(
        field(body, "access_token", str, what),
        field(body, "refresh_token", str, what),
        int(clock()) + field(body, "expires_in", int, what),
    )
    return fresh


def renew_flow(session: Profile, *, clock: Clock = time.time) -> Flow:
    """Fresh tokens for a profile: a person's by refresh, an agent's by client_credentials."""
    if session.auth != "agent":
        fresh: Profile = yield from refresh_flow(session, clock=clock)
        return fresh
    if session.token_endpoint is None:
        raise MalformedInput("the agent profile has no token endpoint")
    access, expires_at = yield from token_flow(
        session.key, session.client_id, session.token_endpoint, clock=clock
    )
    return session.with_tokens(access, "", expires_at)


def refresh(http: httpx.Client, session: Profile, *, clock: Clock = time.time) -> Profile:
    """Fresh tokens for the profile (a person's refresh token is spent by this call)."""
    fresh: Profile = SyncDriver(http, session.server).drive(renew_flow(session, clock=clock))
    return fresh


def _refresh_and_save(http: httpx.Client, path: Path, session: Profile, clock: Clock) -> Profile:
    fresh = refresh(http, session, clock=clock)
    # At once: the old refresh token is spent, and presenting it again would
    # revoke the whole session.
    profiles.save(path, fresh, overwrite=True)
    return fresh


def _whoami_flow(session: Profile) -> Flow:
    reply = yield Call("GET", f"/v1/vaults/{session.vault}/whoami")
    return reply


def whoami(http: httpx.Client, path: Path, *, clock: Clock = time.time) -> WhoAmI:
    """Ask the relay who this session is, re-verifying the directory from the pinned link 0.

    Refreshes the access token first if it has expired (saving the rotated
    refresh token).  A directory shorter than the one seen before raises
    :class:`~sealbox.errors.DirectoryRollback`; one that differs from it,
    :class:`~sealbox.errors.DirectoryFork`.
    """
    with profiles.locked(path):
        session = profiles.load(path)
        if session.expires_at <= clock() + REFRESH_MARGIN:
            session = _refresh_and_save(http, path, session, clock)

        def bearer(request: httpx.Request) -> None:
            request.headers["authorization"] = f"Bearer {session.access_token}"

        driver = SyncDriver(http, session.server, authorize=bearer, clock=clock)
        reply = driver.drive(_whoami_flow(session))
        if reply.status == 401 and _error(reply) == "token_expired":
            session = _refresh_and_save(http, path, session, clock)
            reply = driver.drive(_whoami_flow(session))
        if reply.status == 401:
            raise NotLoggedIn(
                f"the relay no longer accepts this session: {refused(reply, 'whoami').message}",
                hint="Log in again with `sealbox login`.",
            )
        who = expect_object(reply, "asking who this client is")
        if who.get("id") != session.client_id or who.get("vault") != session.vault:
            raise RelayRefused("the relay answered for another client or vault")
        view = DirectoryView(vault=session.vault, fingerprint=session.fingerprint,
                             head=session.head)  # fmt: skip
        directory = driver.drive(directory_flow(view, fresh=True))
        cert = _check_certificate(
            session.certificate, directory,
            ClientInfo(id=session.client_id, kind="agent" if session.auth == "agent" else "human",
                       name=session.client_name, sig_pk=session.key.verify_key()),
            now=int(clock()),
        )  # fmt: skip
        if directory.head != session.head:
            profiles.save(path, replace(session, head=directory.head), overwrite=True)
    return WhoAmI(
        server=session.server, vault=session.vault, safety_code=directory.safety_code,
        client_id=session.client_id, client_name=session.client_name,
        role=str(who.get("role")), client_kind=str(who.get("client_kind")),
        via=str(who.get("via")), certificate=cert, directory_head=directory.head.seq,
    )  # fmt: skip


def whoami_identity(http: httpx.Client, where: Path, *, clock: Clock = time.time) -> WhoAmI:
    """Ask the relay who a machine identity (``SEALBOX_IDENTITY``) is, signing with its key.

    The directory is verified again from the identity's pinned link 0, and its certificate
    (with its enrollment, for a CI runner's) against it; a newer head is kept where the
    identity is writable.
    """
    found = identities.load(where)
    session = identities.to_profile(found)
    driver = SyncDriver(http, session.server, authorize=signer(found.key, found.client_id),
                        clock=clock)  # fmt: skip
    reply = driver.drive(_whoami_flow(session))
    if reply.status == 401:
        raise NotLoggedIn(
            f"the relay no longer accepts this machine: {refused(reply, 'whoami').message}",
            hint="Ask an approver whether it was disabled, or register or provision it again.",
        )
    who = expect_object(reply, "asking who this machine is")
    if who.get("id") != found.client_id or who.get("vault") != found.vault:
        raise RelayRefused("the relay answered for another client or vault")
    view = DirectoryView(vault=found.vault, fingerprint=found.fingerprint, head=found.head)
    directory = driver.drive(directory_flow(view, fresh=True))
    cert = _check_certificate(
        found.certificate, directory,
        ClientInfo(id=found.client_id, kind=found.kind, name=found.client_name,
                   sig_pk=found.key.verify_key()),
        now=int(clock()), enrollment=found.enrollment,
    )  # fmt: skip
    identities.remember_head(where, directory.head)
    return WhoAmI(
        server=found.server, vault=found.vault, safety_code=directory.safety_code,
        client_id=found.client_id, client_name=found.client_name,
        role=str(who.get("role")), client_kind=str(who.get("client_kind")),
        via=str(who.get("via")), certificate=cert, directory_head=directory.head.seq,
    )  # fmt: skip


def logout(http: httpx.Client, path: Path) -> bool:
    """Revoke the session at the relay (best effort) and delete the profile.

    Returns whether the relay confirmed the revocation; the profile is
    deleted either way.  Raises :class:`NotLoggedIn` if there is no profile.
    """
    with profiles.locked(path):
        session = profiles.load(path)
        # The refresh token names the session's whole token family: revoking
        # it ends the access token too (RFC 7009, RFC 9700 §4.14.2).  An agent's
        # profile has no refresh token: its access token, if it holds one, is revoked.
        token = session.refresh_token or session.access_token
        revoked = _revoke_quietly(SyncDriver(http, session.server), token) if token else True
        profiles.delete(path)
    return revoked
