"""The alerts' I/O edge against real servers in this process: SMTP (aiosmtpd) and HTTP.

SMTP: STARTTLS whenever offered, a login only over TLS (its password from the
environment), a certificate the relay does not trust refused.  Webhooks: a
redirect is a failure and is not followed; a slow receiver times out; the
body is signed.  Also the relay's alert settings: options, then SEALBOX_*
variables, then defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sealbox.alerts import verify_webhook
from sealbox.server.config import Settings
from sealbox.server.store.alerts import Delivery, Target

controller = pytest.importorskip("aiosmtpd.controller")
smtp_auth = pytest.importorskip("aiosmtpd.smtp")

EVENT = {
    "vault": "vlt_" + "a" * 26, "seq": 7, "at": 1_800_000_000, "action": "canary.read",
    "severity": "critical", "actor": "relay", "client_id": None, "item_id": None,
    "detail": {"item": "itm_x"}, "hash": "0" * 64,
}  # fmt: skip
PASSWORD = "smtp-password-4f1c9e"


def target(kind: str, url: str | None = None) -> Target:
    return Target(vault=EVENT["vault"], id="alt_" + "b" * 26, kind=kind, url=url,  # type: ignore[arg-type]
                  addresses=("ops@example.test",), events=(), min_severity="alert", enabled=True,
                  failures=0, created_at=0, created_by="apv_x", disabled_at=None,
                  delivered_at=None, last_error=None)  # fmt: skip


DELIVERY = Delivery(row=1, delivery_id="dlv_" + "c" * 32, seq=7, event=dict(EVENT), attempts=0)


def cert_files(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealbox test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    key_file.write_bytes(pem)
    return cert_file, key_file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((bytes(envelope.original_content), session.ssl is not None,
                              session.auth_data))  # fmt: skip
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    ok = auth.login == b"relay" and auth.password == PASSWORD.encode()
    return AuthResult(success=ok, auth_data=auth.login if ok else None)


@contextlib.contextmanager
def smtp(tmp_path: Path, *, tls: bool, auth: bool = False) -> Iterator[tuple[int, Path, Mailbox]]:
    cert, key = cert_files(tmp_path)
    kwargs: dict[str, Any] = {}
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs.update(tls_context=context, require_starttls=True)
    if auth:
        kwargs.update(authenticator=_authenticator, auth_require_tls=True)
    mailbox = Mailbox()
    port = free_port()
    server = controller.Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    server.start()
    try:
        yield port, cert, mailbox
    finally:
        server.stop()


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path, db_url="sqlite+aiosqlite:///unused", smtp_host="127.0.0.1",
                    smtp_from="sealbox@relay.test", alert_timeout=5.0, **kw)  # fmt: skip


def send(s: Settings, password: str | None = None) -> None:
    from sealbox.server.alert_delivery import email_message, send_email

    send_email(s, email_message(s, target("email"), DELIVERY), password)


def test_starttls_and_a_login_over_it(tmp_path: Path) -> None:
    with smtp(tmp_path, tls=True, auth=True) as (port, cert, mailbox):
        s = settings(tmp_path, smtp_port=port, smtp_ca_file=str(cert), smtp_user="relay")
        send(s, PASSWORD)
        [(raw, over_tls, login)] = mailbox.messages
        assert over_tls
        assert login == b"relay"
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == "[sealbox] critical: canary.read"
        assert message["To"] == "ops@example.test"
        assert message["X-Sealbox-Delivery"] == DELIVERY.delivery_id
        assert '"action": "canary.read"' in message.get_content()
        assert PASSWORD.encode() not in raw


def test_a_wrong_password_is_a_failed_delivery(tmp_path: Path) -> None:
    import smtplib

    with smtp(tmp_path, tls=True, auth=True) as (port, cert, mailbox):
        s = settings(tmp_path, smtp_port=port, smtp_ca_file=str(cert), smtp_user="relay")
        s = dataclasses.replace(s, alert_timeout=2.0)
        # Refused (or, as aiosmtpd does after a failed AUTH, left hanging): a failure either way.
        with pytest.raises(smtplib.SMTPException):
            send(s, "wrong")
        assert mailbox.messages == []


def test_without_starttls_mail_goes_plain_but_a_login_is_never_sent(tmp_path: Path) -> None:
    with smtp(tmp_path, tls=False) as (port, _, mailbox):
        send(settings(tmp_path, smtp_port=port))
        assert [over_tls for _, over_tls, _ in mailbox.messages] == [False]
        with pytest.raises(RuntimeError, match="no STARTTLS: the login is not sent"):
            send(settings(tmp_path, smtp_port=port, smtp_user="relay"), PASSWORD)
        assert len(mailbox.messages) == 1


def test_a_certificate_the_relay_does_not_trust_is_refused(tmp_path: Path) -> None:
    with smtp(tmp_path, tls=True) as (port, _, mailbox):
        with pytest.raises(ssl.SSLCertVerificationError):
            send(settings(tmp_path, smtp_port=port))  # the system's CAs only
        assert mailbox.messages == []


def test_no_smtp_server_configured_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no SMTP server"):
        send(Settings(data_dir=tmp_path, db_url="sqlite+aiosqlite:///unused"))


# --- webhooks ------------------------------------------------------------------------------------


class Hook:
    def __init__(self, status: int, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hook.calls.append((self.path, body, dict(self.headers.items())))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("location", "/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST  # noqa: N815 - http.server's name

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


LOOPBACK = ("127.0.0.0/8",)


class FakeRelay:
    """What the webhook sender uses of the relay: settings, the time, the secret's opening."""

    def __init__(self, s: Settings) -> None:
        self.settings = s

    def now(self) -> int:
        return int(time.time())


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    from sealbox.server import alert_delivery

    value = "whsec_test"

    async def opened(relay: Any, target: Target) -> str:
        return value

    monkeypatch.setattr(alert_delivery.service, "secret_of", opened)
    return value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "delay", "timeout", "ok", "error"),
    [(204, 0.0, 5.0, True, ""), (302, 0.0, 5.0, False, "HTTP 302"),
     (500, 0.0, 5.0, False, "HTTP 500"), (200, 1.5, 0.3, False, "timeout")],
)  # fmt: skip
async def test_webhook_outcomes(
    tmp_path: Path, secret: str, status: int, delay: float, timeout: float, ok: bool, error: str
) -> None:
    from sealbox.server.alert_delivery import send_webhook

    hook = Hook(status, delay)
    try:
        relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=timeout,
                                   alert_allow_networks=LOOPBACK))  # fmt: skip
        outcome = await send_webhook(relay, target("webhook", hook.url), DELIVERY)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.error) == (ok, error)
        # One POST to the hook's own path: a redirect is never followed.
        assert [path for path, _, _ in hook.calls] == ["/hook"]
        [(_, body, headers)] = hook.calls
        assert verify_webhook(secret, body, headers["X-Sealbox-Signature"]) > 0
        assert headers["Content-Type"] == "application/json"
    finally:
        hook.close()


@pytest.mark.anyio
async def test_an_unreachable_webhook_fails_with_the_error_class_only(
    tmp_path: Path, secret: str
) -> None:
    from sealbox.server.alert_delivery import send_webhook

    relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=2.0,
                               alert_allow_networks=LOOPBACK))  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}/hook?token=do-not-log"
    outcome = await send_webhook(relay, target("webhook", url), DELIVERY)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.error) == (False, "connect failed")


@pytest.mark.anyio
async def test_a_receiver_that_trickles_bytes_is_cut_off_at_the_deadline(
    tmp_path: Path, secret: str
) -> None:
    from alert_tarpit import Tarpit
    from sealbox.server.alert_delivery import send_webhook

    # Each byte comes well inside the per-read timeout (1 s): only an overall deadline ends it.
    tarpit = Tarpit(every=0.3)
    try:
        relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=1.0,
                                   alert_allow_networks=LOOPBACK))  # fmt: skip
        start = time.monotonic()
        outcome = await asyncio.wait_for(
            send_webhook(relay, target("webhook", tarpit.url), DELIVERY),  # type: ignore[arg-type]
            15,
        )
        assert (outcome.ok, outcome.error) == (False, "timeout")
        assert time.monotonic() - start < 3
        assert tarpit.connections == 1
    finally:
        tarpit.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:{port}/hook", "http://localhost:{port}/hook",
     "http://0x7f000001:{port}/hook", "http://2130706433:{port}/hook",
     "http://[::ffff:127.0.0.1]:{port}/hook"],
)  # fmt: skip
async def test_a_webhook_to_a_non_public_address_is_refused_at_send_time(
    tmp_path: Path, secret: str, url: str
) -> None:
    from sealbox.server.alert_delivery import send_webhook

    hook = Hook(204)
    try:
        port = hook.server.server_address[1]
        relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=2.0))
        outcome = await send_webhook(relay, target("webhook", url.format(port=port)), DELIVERY)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.error) == (False, "refused address")
        assert hook.calls == []
    finally:
        hook.close()


@pytest.mark.anyio
async def test_the_checked_address_is_the_one_connected_to_with_the_host_kept(
    tmp_path: Path, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolves once; a later, different answer is never used."""
    from sealbox.server.alert_delivery import send_webhook

    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])
    asked: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        if host == "hooks.rebind.test":
            asked.append(host)
            host = next(answers)
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    hook = Hook(204)
    try:
        port = hook.server.server_address[1]
        relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=2.0,
                                   alert_allow_networks=("127.0.0.1/32",)))  # fmt: skip
        url = f"http://hooks.rebind.test:{port}/hook"
        outcome = await send_webhook(relay, target("webhook", url), DELIVERY)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.error) == (True, "")
        assert asked == ["hooks.rebind.test"]
        [(_, _, headers)] = hook.calls
        assert headers["Host"] == f"hooks.rebind.test:{port}"
        # The next answer (127.0.0.2) is outside the allowed network: refused, nothing sent.
        outcome = await send_webhook(relay, target("webhook", url), DELIVERY)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.error) == (False, "refused address")
        assert len(hook.calls) == 1
    finally:
        hook.close()


def _name_cert(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


@pytest.mark.anyio
@pytest.mark.parametrize(("served", "ok"), [("hooks.rebind.test", True), ("other.test", False)])
async def test_https_to_the_checked_address_keeps_sni_and_the_certificate_check_for_the_name(
    tmp_path: Path, secret: str, monkeypatch: pytest.MonkeyPatch, served: str, ok: bool
) -> None:
    """Connected by address, TLS still checks the URL's name: a certificate for another is
    refused, and the receiver sees the name in SNI."""
    from sealbox.server import alert_network
    from sealbox.server.alert_delivery import send_webhook

    real = socket.getaddrinfo

    def resolving(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        return real("127.0.0.1" if host == "hooks.rebind.test" else host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", resolving)
    cert, key = _name_cert(tmp_path, served)
    monkeypatch.setattr(alert_network.httpx, "create_ssl_context",
                        lambda: ssl.create_default_context(cafile=str(cert)))  # fmt: skip
    names: list[str | None] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,func-returns-value]
    hook = Hook(204)
    hook.server.socket = server_context.wrap_socket(hook.server.socket, server_side=True)
    try:
        port = hook.server.server_address[1]
        relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=3.0,
                                   alert_allow_networks=("127.0.0.1/32",)))  # fmt: skip
        url = f"https://hooks.rebind.test:{port}/hook"
        outcome = await send_webhook(relay, target("webhook", url), DELIVERY)  # type: ignore[arg-type]
        assert outcome.ok is ok
        assert names == ["hooks.rebind.test"]
        if ok:
            [(_, _, headers)] = hook.calls
            assert headers["Host"] == f"hooks.rebind.test:{port}"
        else:
            assert outcome.error == "connect failed"
            assert hook.calls == []
    finally:
        hook.close()


@pytest.mark.anyio
async def test_a_url_httpx_refuses_is_a_failed_try(tmp_path: Path, secret: str) -> None:
    from sealbox.server.alert_delivery import send_webhook

    relay = FakeRelay(Settings(data_dir=tmp_path, db_url="sqlite:///x", alert_timeout=2.0))
    url = "http://exa\u0301mple\u200b.com/"
    outcome = await send_webhook(relay, target("webhook", url), DELIVERY)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.error) == (False, "invalid URL")


@pytest.mark.anyio
async def test_smtp_require_tls_refuses_a_server_without_starttls(tmp_path: Path) -> None:
    from sealbox.server.alert_delivery import TLSRequired, send_mail

    with smtp(tmp_path, tls=False) as (port, _, mailbox):
        s = settings(tmp_path, smtp_port=port, smtp_require_tls=True)
        with pytest.raises(TLSRequired, match="offers no STARTTLS and TLS is required"):
            send(s)
        outcome = await send_mail(FakeRelay(s), target("email"), DELIVERY)  # type: ignore[arg-type]
        assert (outcome.ok, outcome.error) == (False, "no STARTTLS (TLS required)")
        assert mailbox.messages == []


def test_smtp_require_tls_still_sends_over_starttls(tmp_path: Path) -> None:
    with smtp(tmp_path, tls=True) as (port, cert, mailbox):
        send(settings(tmp_path, smtp_port=port, smtp_ca_file=str(cert), smtp_require_tls=True))
        assert [over_tls for _, over_tls, _ in mailbox.messages] == [True]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- settings ------------------------------------------------------------------------------------

ENV = ("SEALBOX_SMTP_HOST", "SEALBOX_SMTP_PORT", "SEALBOX_SMTP_FROM", "SEALBOX_SMTP_USER",
       "SEALBOX_SMTP_CA_FILE", "SEALBOX_ALERT_RETRY_BASE", "SEALBOX_ALERT_RETRY_CAP",
       "SEALBOX_ALERT_TIMEOUT")  # fmt: skip


def test_alert_settings_from_options_then_environment_then_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.alert_retry_base, s.alert_retry_cap,
            s.alert_timeout) == (None, 25, None, 10.0, 3600.0, 10.0)  # fmt: skip
    for name, value in zip(ENV, ("mail.test", "587", "a@b.test", "relay", "/ca.pem", "0.5", "9",
                                 "3"), strict=True):  # fmt: skip
        monkeypatch.setenv(name, value)
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.smtp_host, s.smtp_port, s.smtp_from, s.smtp_user, s.smtp_ca_file,
            s.alert_retry_base, s.alert_retry_cap, s.alert_timeout) == (
        "mail.test", 587, "a@b.test", "relay", "/ca.pem", 0.5, 9.0, 3.0)  # fmt: skip
    s = Settings.load(data_dir=str(tmp_path), smtp_host="other.test", alert_retry_base=2.0)
    assert (s.smtp_host, s.alert_retry_base) == ("other.test", 2.0)
    assert "SMTP_PASSWORD" not in repr(s)


def test_require_tls_and_allowed_networks_from_options_then_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SEALBOX_SMTP_REQUIRE_TLS", raising=False)
    monkeypatch.delenv("SEALBOX_ALERT_ALLOW_NETWORKS", raising=False)
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.smtp_require_tls, s.alert_allow_networks) == (False, ())
    monkeypatch.setenv("SEALBOX_SMTP_REQUIRE_TLS", "true")
    monkeypatch.setenv("SEALBOX_ALERT_ALLOW_NETWORKS", "10.0.0.0/8, 127.0.0.1")
    s = Settings.load(data_dir=str(tmp_path))
    assert (s.smtp_require_tls, s.alert_allow_networks) == (True, ("10.0.0.0/8", "127.0.0.1/32"))
    s = Settings.load(data_dir=str(tmp_path), smtp_require_tls=False,
                      alert_allow_networks=["192.168.0.0/16"])  # fmt: skip
    assert (s.smtp_require_tls, s.alert_allow_networks) == (False, ("192.168.0.0/16",))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("SEALBOX_SMTP_REQUIRE_TLS", "maybe", "must be 1/true/yes"),
     ("SEALBOX_ALERT_ALLOW_NETWORKS", "10.1.2.3/8", "host bits set"),
     ("SEALBOX_ALERT_RETRY_BASE", "soon", "must be a number of seconds"),
     ("SEALBOX_ALERT_TIMEOUT", "0", "more than 0"),
     ("SEALBOX_ALERT_RETRY_CAP", "100000", "at most 86400"),
     ("SEALBOX_SMTP_PORT", "0", "at least 1")],
)  # fmt: skip
def test_bad_alert_settings_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Settings.load(data_dir=str(tmp_path))
