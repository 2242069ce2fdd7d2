"""`sealbox login` / `whoami` / `logout` driven against a fake relay (httpx.MockTransport).

The fake speaks the relay's wire format but is scripted: each test says what
the token endpoint answers, which certificate it hands out and which
directory it serves.  Every signed object in it is made with the real
protocol functions.  Nothing sleeps: the flow gets a recording ``sleep`` and
a fake clock.
"""

from __future__ import annotations

import json
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from sealbox.cli import main as cli
from sealbox.client import login as flow
from sealbox.client import profile as profiles
from sealbox.client.profile import NotLoggedIn, ProfileExists
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.errors import (
    CertificateInvalid,
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    MalformedInput,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ApproverRecord, ClientConstraints, ClientInfo

SERVER = "http://relay.test"
NOW = 1_800_000_000
DAY = 86_400


@dataclass
class Approver:
    record: ApproverRecord
    sig: SigningKey


def _approver(name: str) -> Approver:
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return Approver(record, sig)


def _vault(vault: str, first: Approver) -> list[str]:
    return [dirs.genesis_link(vault, first.record, first.sig, now=NOW - DAY)]


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeRelay:
    """The relay's login endpoints, scripted."""

    clock: Clock
    vault: str = field(default_factory=lambda: ids.new_id(ids.VAULT))
    polls: list[str] = field(default_factory=lambda: ["ok"])
    """What each device-grant poll answers, in order: an OAuth error code or "ok"."""
    approver: Approver = field(default_factory=lambda: _approver("ana"))
    links: list[str] = field(default_factory=list)
    certify: Callable[[ClientInfo], ClientInfo] = lambda info: info
    """Which client the certificate handed out names (a hostile relay swaps it)."""
    served_links: list[str] | None = None
    """The directory the relay serves, if not the real one."""
    reachable: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)
    client: ClientInfo | None = None
    device_code: str = field(default_factory=lambda: "sbx_dc_" + secrets.token_urlsafe(16))
    user_code: str = "BCDF-GHJK"
    access: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    spent: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    """Every token handed out (none may ever be printed)."""

    def __post_init__(self) -> None:
        if not self.links:
            self.links = _vault(self.vault, self.approver)

    @property
    def directory(self) -> dirs.Directory:
        return dirs.verify_directory(self.links, pinned=dirs.vault_fingerprint(self.links[0]))

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def _tokens(self) -> dict[str, Any]:
        access, refresh = "sbx_at_" + secrets.token_urlsafe(), "sbx_rt_" + secrets.token_urlsafe()
        self.access.add(access)
        self.refresh.add(refresh)
        self.issued += [access, refresh]
        assert self.client is not None
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": 3600, "vault": self.vault, "client_id": self.client.id}  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.reachable:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        self.requests.append((request.method, path))
        form = dict(parse_qsl(request.content.decode())) if request.method == "POST" else {}
        if path == "/v1/vault":
            return httpx.Response(200, json={"vault": self.vault, "ready": True})
        if path == "/oauth/device_authorization":
            assert form["vault"] == self.vault
            self.client = ClientInfo(id=form["client_id"], kind="human",
                                     name=form["client_name"],
                                     sig_pk=VerifyKey.from_text(form["sig_pk"]))  # fmt: skip
            return httpx.Response(200, json={
                "device_code": self.device_code, "user_code": self.user_code,
                "verification_uri": f"{SERVER}/device",
                "verification_uri_complete": f"{SERVER}/device?user_code={self.user_code}",
                "expires_in": 600, "interval": 5,
            })  # fmt: skip
        if path == "/oauth/token" and form["grant_type"] == flow.DEVICE_GRANT:
            assert form["device_code"] == self.device_code
            assert self.client is not None
            assert form["client_id"] == self.client.id
            answer = self.polls.pop(0)
            if answer != "ok":
                return _oauth_error(answer)
            cert = issue_certificate(
                self.directory, issuer=self.approver.record.id, key=self.approver.sig,
                client=self.certify(self.client), scopes=["read", "write"],
                constraints=ClientConstraints(not_after=int(self.clock()) + 30 * DAY),
                now=int(self.clock()),
            )  # fmt: skip
            return httpx.Response(200, json={**self._tokens(), "certificate": cert})
        if path == "/oauth/token" and form["grant_type"] == "refresh_token":
            token = form["refresh_token"]
            if token not in self.refresh or token in self.spent or token in self.revoked:
                return _oauth_error("invalid_grant")
            self.spent.add(token)
            return httpx.Response(200, json=self._tokens())
        if path == "/oauth/revoke":
            self.revoked.append(form["token"])
            return httpx.Response(200, json={})
        if path == f"/v1/vaults/{self.vault}/directory":
            links = self.served_links if self.served_links is not None else self.links
            return httpx.Response(200, json={"links": links, "head": len(links) - 1})
        if path == f"/v1/vaults/{self.vault}/whoami":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.access or self.revoked:
                return httpx.Response(401, json={"error": "invalid_token", "message": "no",
                                                 "hint": "Log in again."})  # fmt: skip
            assert self.client is not None
            return httpx.Response(200, json={"vault": self.vault, "id": self.client.id,
                                             "role": "client", "client_kind": "human",
                                             "via": "bearer"})  # fmt: skip
        return httpx.Response(404, json={"error": "not_found", "message": "no such route"})


def _oauth_error(error: str) -> httpx.Response:
    return httpx.Response(400, json={"error": error, "error_description": error, "message": error,
                                     "hint": ""})  # fmt: skip


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("SEALBOX_PROFILE", raising=False)
    return tmp_path / "config"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Run:
    prompts: list[flow.DevicePrompt] = field(default_factory=list)
    waits: list[flow.Waiting] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)


def _login(relay: FakeRelay, path: Path, *, force: bool = False) -> tuple[flow.LoginResult, Run]:
    run = Run()

    def sleep(seconds: float) -> None:
        run.sleeps.append(seconds)
        relay.clock.now += seconds

    with relay.http() as http:
        result = flow.login(
            http, server=SERVER + "/", name="bo@laptop", path=path, force=force,
            on_prompt=run.prompts.append, on_wait=run.waits.append, sleep=sleep, clock=relay.clock,
        )  # fmt: skip
    return result, run


def _path(config: Path, name: str = "default") -> Path:
    return config / "profiles" / f"{name}.json"


# --- login --------------------------------------------------------------------------------------


def test_pending_then_slow_down_then_approved(config: Path, clock: Clock) -> None:
    relay = FakeRelay(clock, polls=["authorization_pending", "slow_down", "ok"])
    path = _path(config)
    result, run = _login(relay, path)

    assert run.sleeps == [5, 5, 10]  # slow_down adds 5 s, for good
    assert [w.slowed_down for w in run.waits] == [False, False, True]
    [prompt] = run.prompts
    assert prompt.user_code == "BCDF-GHJK"
    assert prompt.verification_uri_complete == f"{SERVER}/device?user_code=BCDF-GHJK"
    assert relay.client is not None
    assert prompt.client_id == relay.client.id
    assert prompt.key_fingerprint == relay.client.sig_pk.fingerprint()
    assert prompt.key_safety_code == relay.client.sig_pk.safety_code()

    session = result.profile
    assert result.safety_code == dirs.vault_safety_code(relay.links[0])
    assert session.fingerprint == dirs.vault_fingerprint(relay.links[0])  # link 0 pinned
    assert session.head == relay.directory.head
    assert session.server == SERVER
    assert session.key.verify_key() == relay.client.sig_pk
    assert session.expires_at == int(clock()) + 3600
    assert result.certificate.scopes == ("read", "write")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = profiles.load(path)
    assert saved.to_json() == session.to_json()
    assert saved.refresh_token in relay.refresh
    for secret in (session.access_token, session.refresh_token, session.key.to_text()):
        assert secret not in repr(session)
    assert not list(path.parent.glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("answer", "message"),
    [("access_denied", "denied this login"), ("expired_token", "expired before an approver")],
)
def test_denied_or_expired_login_fails_and_saves_nothing(
    config: Path, clock: Clock, answer: str, message: str
) -> None:
    relay = FakeRelay(clock, polls=["authorization_pending", answer])
    with pytest.raises(flow.LoginFailed, match=message):
        _login(relay, _path(config))
    assert not _path(config).exists()


def test_the_device_code_lifetime_bounds_the_wait(config: Path, clock: Clock) -> None:
    relay = FakeRelay(clock, polls=["authorization_pending"] * 200)
    with pytest.raises(flow.LoginFailed, match="expired"):
        _login(relay, _path(config))
    assert clock() - NOW <= 600 + 5
    polls = [r for r in relay.requests if r[1] == "/oauth/token"]
    assert len(polls) == 600 // 5


_OTHER_KEY = SigningKey.generate().verify_key()


@pytest.mark.parametrize(
    "swap",
    [
        lambda info: ClientInfo(id=info.id, kind=info.kind, name=info.name, sig_pk=_OTHER_KEY),
        lambda info: ClientInfo(id=ids.new_id(ids.CLIENT), kind=info.kind, name=info.name,
                                sig_pk=info.sig_pk),
        lambda info: ClientInfo(id=info.id, kind="agent", name=info.name, sig_pk=info.sig_pk),
    ],
    ids=["another key", "another client id", "another kind"],
)  # fmt: skip
def test_a_certificate_for_another_client_is_refused(
    config: Path, clock: Clock, swap: Callable[[ClientInfo], ClientInfo]
) -> None:
    relay = FakeRelay(clock, certify=swap)
    with pytest.raises(CertificateInvalid, match="not for this client"):
        _login(relay, _path(config))
    assert not _path(config).exists()
    # The session the relay opened for it is closed again.
    assert relay.revoked == [t for t in relay.issued if t.startswith("sbx_rt_")]


def test_the_approver_may_rename_the_client(config: Path, clock: Clock) -> None:
    relay = FakeRelay(
        clock, certify=lambda info: ClientInfo(id=info.id, kind=info.kind, name="Bo (laptop)",
                                               sig_pk=info.sig_pk),
    )  # fmt: skip
    result, _ = _login(relay, _path(config))
    assert result.profile.client_name == "Bo (laptop)"
    with relay.http() as http:
        assert flow.whoami(http, _path(config), clock=clock).client_name == "Bo (laptop)"


def test_a_directory_whose_link_0_is_not_the_certificates_vault_is_refused(
    config: Path, clock: Clock
) -> None:
    # Same vault id, but the relay serves its own link 0: the certificate's issuer
    # is not an approver of the directory the client would pin.
    relay = FakeRelay(clock)
    relay.served_links = _vault(relay.vault, _approver("mallory"))
    with pytest.raises(CertificateInvalid, match="issuer"):
        _login(relay, _path(config))
    assert not _path(config).exists()

    # The directory of another vault altogether.
    relay = FakeRelay(clock)
    relay.served_links = _vault(ids.new_id(ids.VAULT), relay.approver)
    with pytest.raises(DirectoryBroken, match="another vault"):
        _login(relay, _path(config))
    assert not _path(config).exists()


def test_a_logged_in_profile_is_not_overwritten_without_force(config: Path, clock: Clock) -> None:
    path = _path(config)
    first, _ = _login(FakeRelay(clock), path)
    relay = FakeRelay(clock)
    with pytest.raises(ProfileExists):
        _login(relay, path)
    assert relay.requests == []  # refused before anything was started
    assert profiles.load(path).client_id == first.profile.client_id

    second, _ = _login(relay, path, force=True)
    assert profiles.load(path).client_id == second.profile.client_id != first.profile.client_id


def test_a_bad_server_url_or_client_name_is_refused_before_the_relay_is_asked(
    config: Path, clock: Clock
) -> None:
    relay = FakeRelay(clock)
    with relay.http() as http, pytest.raises(MalformedInput, match="http"):
        flow.login(http, server="relay.test", name="x", path=_path(config),
                   on_prompt=print, on_wait=print)  # fmt: skip
    with relay.http() as http, pytest.raises(MalformedInput):
        flow.login(http, server=SERVER, name="bo\x1b[2J", path=_path(config),
                   on_prompt=print, on_wait=print)  # fmt: skip
    assert ("POST", "/oauth/device_authorization") not in relay.requests


# --- whoami -------------------------------------------------------------------------------------


def test_whoami_refreshes_an_expired_token_and_saves_the_rotated_one(
    config: Path, clock: Clock
) -> None:
    relay = FakeRelay(clock)
    path = _path(config)
    result, _ = _login(relay, path)
    with relay.http() as http:
        who = flow.whoami(http, path, clock=clock)
    assert (who.role, who.client_kind) == ("client", "human")
    assert who.client_id == result.profile.client_id
    assert who.safety_code == result.safety_code
    assert profiles.load(path).refresh_token == result.profile.refresh_token  # nothing to refresh

    clock.now += 3600
    with relay.http() as http:
        flow.whoami(http, path, clock=clock)
    saved = profiles.load(path)
    assert result.profile.refresh_token in relay.spent
    assert saved.refresh_token != result.profile.refresh_token
    assert saved.refresh_token in relay.refresh
    assert saved.expires_at == int(clock()) + 3600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_whoami_after_the_session_ended_says_log_in_again(config: Path, clock: Clock) -> None:
    relay = FakeRelay(clock)
    path = _path(config)
    result, _ = _login(relay, path)
    relay.revoked.append(result.profile.refresh_token)
    with relay.http() as http, pytest.raises(NotLoggedIn, match="no longer accepts") as info:
        flow.whoami(http, path, clock=clock)
    assert "Log in again" in info.value.hint
    clock.now += 3600  # expired: the refresh is refused too
    with relay.http() as http, pytest.raises(NotLoggedIn, match="session has ended"):
        flow.whoami(http, path, clock=clock)
    with relay.http() as http, pytest.raises(NotLoggedIn, match="not logged in"):
        flow.whoami(http, _path(config, "other"), clock=clock)


def _grow(relay: FakeRelay) -> Approver:
    second = _approver("bo")
    link = dirs.append_link(relay.directory, "add", second.record,
                            signer=relay.approver.record.id, key=relay.approver.sig,
                            now=NOW)  # fmt: skip
    relay.links.append(link)
    return second


def test_whoami_caches_the_new_head_then_detects_rollback_and_fork(
    config: Path, clock: Clock
) -> None:
    relay = FakeRelay(clock)
    path = _path(config)
    _login(relay, path)
    _grow(relay)
    with relay.http() as http:
        assert flow.whoami(http, path, clock=clock).directory_head == 1
    assert profiles.load(path).head == relay.directory.head

    relay.served_links = relay.links[:1]  # hides the newer link
    with relay.http() as http, pytest.raises(DirectoryRollback):
        flow.whoami(http, path, clock=clock)

    forked = FakeRelay(clock, vault=relay.vault, approver=relay.approver, links=relay.links[:1])
    _grow(forked)  # another link 1 on the same link 0
    relay.served_links = forked.links
    with relay.http() as http, pytest.raises(DirectoryFork):
        flow.whoami(http, path, clock=clock)

    relay.served_links = _vault(relay.vault, _approver("mallory"))  # another link 0
    with relay.http() as http, pytest.raises(DirectoryBroken, match="pinned"):
        flow.whoami(http, path, clock=clock)


# --- logout and the profile file ----------------------------------------------------------------


def test_logout_revokes_and_deletes_even_when_the_relay_is_away(config: Path, clock: Clock) -> None:
    relay = FakeRelay(clock)
    path = _path(config)
    result, _ = _login(relay, path)
    with relay.http() as http:
        assert flow.logout(http, path) is True
    assert relay.revoked == [result.profile.refresh_token]
    assert not path.exists()
    with relay.http() as http, pytest.raises(NotLoggedIn):
        flow.logout(http, path)

    relay.polls = ["ok"]
    _login(relay, path)
    relay.reachable = False
    with relay.http() as http:
        assert flow.logout(http, path) is False
    assert not path.exists()


def test_a_profile_readable_by_others_or_altered_is_refused(config: Path, clock: Clock) -> None:
    path = _path(config)
    _login(FakeRelay(clock), path)
    path.chmod(0o644)
    with pytest.raises(MalformedInput, match="owner only") as info:
        profiles.load(path)
    assert "chmod 600" in info.value.hint
    path.chmod(0o600)
    document = json.loads(path.read_text())
    del document["refresh_token"]
    path.write_text(json.dumps(document))
    with pytest.raises(MalformedInput, match="not a readable sealbox profile"):
        profiles.load(path)


def test_profile_names_come_from_the_option_or_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert profiles.profile_name() == "default"
    monkeypatch.setenv("SEALBOX_PROFILE", "work")
    assert profiles.profile_name() == "work"
    assert profiles.profile_name("ci-1") == "ci-1"
    assert profiles.profile_path("ci-1") == config / "profiles" / "ci-1.json"
    for bad in ("../x", ".hidden", "a/b", "x" * 65):
        with pytest.raises(MalformedInput):
            profiles.profile_name(bad)


# --- the command, in process --------------------------------------------------------------------


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> FakeRelay:
    relay = FakeRelay(Clock(time.time()))  # the command tells the time with the real clock
    monkeypatch.setattr(cli, "_http", relay.http)
    monkeypatch.setattr(cli, "_sleep", lambda seconds: None)
    return relay


def test_cli_login_whoami_logout_print_no_secret(
    config: Path, fake_cli: FakeRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = fake_cli
    relay.polls = ["authorization_pending", "slow_down", "ok"]
    assert cli.main(["login", "--server", SERVER, "--name", "bo@laptop"]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert relay.client is not None
    assert "BCDF-GHJK" in out
    assert f"{SERVER}/device?user_code=BCDF-GHJK" in out
    assert relay.client.sig_pk.fingerprint() in out
    assert relay.client.sig_pk.safety_code() in out
    assert "every 10 s" in out  # the slow_down is shown
    assert f"Vault safety code: {dirs.vault_safety_code(relay.links[0])}" in out

    assert cli.main(["whoami"]) == cli.EXIT_OK
    who, _ = capsys.readouterr()
    assert "role:         client" in who
    assert relay.client.id in who

    saved = profiles.load(_path(config))
    secrets_ = [*relay.issued, relay.device_code, saved.key.to_text()]
    assert cli.main(["logout"]) == cli.EXIT_OK
    bye, bye_err = capsys.readouterr()
    assert "revoked" in bye
    for secret in secrets_:
        assert secret not in out + err + who + bye + bye_err


def test_cli_exit_codes(
    config: Path, fake_cli: FakeRelay, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cli.polls = ["access_denied"]
    assert cli.main(["login", "--server", SERVER]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("sealbox: an approver denied this login\n  ")

    assert cli.main(["whoami", "--profile", "nope"]) == 6  # exits.NOT_LOGGED_IN
    err = capsys.readouterr().err
    assert "not logged in (no profile 'nope')" in err
    assert "sealbox login" in err

    assert cli.main(["whoami", "--profile", "../etc"]) == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["login"])  # --server is required
    assert exit_info.value.code == cli.EXIT_USAGE

    fake_cli.reachable = False
    assert cli.main(["login", "--server", SERVER]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "could not reach the relay at http://relay.test: connection refused" in err
    assert "Check the server URL" in err
