"""Alerts end to end: `sealbox up`, the approver's CLI, webhook receivers and a real SMTP server.

Three HTTP receivers run in this test: one that fails on purpose and then
recovers (its deliveries are retried and finally all arrive, in order, each
signed), one that always fails (the relay disables it after 10 failures in a
row and the approvers are told by email, never through it), and each body is
checked with :func:`sealbox.alerts.verify_webhook`.  Email goes to aiosmtpd
offering STARTTLS with a self-signed certificate the relay trusts through
``--smtp-ca-file`` (the server refuses mail before STARTTLS, so every message
here came over TLS).  The relay is stopped with deliveries waiting and started
again: they are delivered.  Real values are stored and read through the
automated approver, and no body or email holds a value, a token, the webhook
secret or a private key.
"""

from __future__ import annotations

import contextlib
import datetime
import email
import email.policy
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from e2e_support import PG_URL, RelayProcess, free_port, pg_schema
from loop_support import APPROVE_ALL, Deployment, outputs

from sealbox.alerts import verify_webhook

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

SECRET_VALUE = "alerts-e2e-value-7d41f0"
OTHER_VALUE = "alerts-e2e-other-9b22c3"
REF = "sealbox://shop/prod/db/password"


# --- a webhook receiver ------------------------------------------------------------------------


class Receiver:
    """An HTTP server recording every POST; ``answer`` says which status to give."""

    def __init__(self, answer: Callable[[int], int]) -> None:
        self.answer = answer
        self.calls: list[tuple[int, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    status = receiver.answer(len(receiver.calls))
                    receiver.calls.append((status, body, dict(self.headers.items())))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for status, body, _ in self.calls if status < 300]

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, body, _ in self.calls]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- an SMTP server offering STARTTLS with a self-signed certificate --------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
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


class Mailbox:
    """What aiosmtpd received: (recipients, raw message, whether it came over TLS)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes, bool]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.original_content),
                                  session.ssl is not None))  # fmt: skip
        return "250 OK"

    def texts(self) -> list[str]:
        with self.lock:
            return [raw.decode(errors="replace") for _, raw, _ in self.messages]


@contextlib.contextmanager
def smtp_server(directory: Path) -> Iterator[tuple[int, Path, Mailbox]]:
    import ssl

    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        yield port, cert, mailbox
    finally:
        controller.stop()


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def alerts(d: Deployment, *args: str) -> tuple[int, str, str]:
    done = d.approver_cli("approver", "alerts", *args)
    return done.returncode, done.stdout, done.stderr


def idle(d: Deployment, target: str) -> bool:
    """Whether ``sealbox approver alerts list`` shows nothing waiting for ``target``."""
    rc, out, err = alerts(d, "list")
    assert rc == 0, err
    lines = out.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith(target)]
    following = lines[at + 1 : at + 3]
    return ": enabled" in lines[at] and not any("waiting" in line for line in following
                                                if not line.startswith("alt_"))  # fmt: skip


def added(out: str) -> tuple[str, str | None]:
    target = re.search(r"^(alt_[a-z2-7]{26})  ", out, re.M)
    assert target, out
    secret = re.search(r"^(whsec_\S+)$", out, re.M)
    return target.group(1), secret.group(1) if secret else None


# --- the test ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    if request.param == "sqlite":
        yield ()
        return
    with pg_schema("sbx_e2e_alerts") as schema:
        assert PG_URL  # pg_schema has skipped (or failed, in CI) without it
        yield ("--db", PG_URL, "--db-schema", schema)


def test_webhooks_and_email_retried_disabled_restarted_and_never_carrying_a_secret(
    tmp_path: Path, database: tuple[str, ...]
) -> None:
    # The flaky receiver fails its first 3 calls, then accepts; while `down` is set it fails.
    down = threading.Event()
    flaky = Receiver(lambda n: 503 if n < 3 or down.is_set() else 200)
    broken = Receiver(lambda n: 500)
    with contextlib.ExitStack() as stack:
        stack.callback(flaky.close)
        stack.callback(broken.close)
        smtp_port, cert, mailbox = stack.enter_context(smtp_server(tmp_path))
        relay_args = (
            "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port),
            "--smtp-from", "sealbox@relay.test", "--smtp-ca-file", str(cert),
            "--alert-retry-base", "0.4", "--alert-retry-cap", "1", "--smtp-require-tls",
            # The receivers are on loopback, which webhooks may not reach unless allowed.
            "--alert-allow-network", "127.0.0.1/32", *database,
        )  # fmt: skip
        d = Deployment(tmp_path, *relay_args)
        stack.callback(d.close)
        bot = d.serve(APPROVE_ALL)

        # Only the allowed network: the metadata service and other loopback addresses are not.
        for url in ("http://169.254.169.254/latest/meta-data/", "http://[::1]:6379/",
                    "http://127.0.0.2:5432/"):  # fmt: skip
            rc, out, err = alerts(d, "add-webhook", url)
            assert rc != 0
            assert "webhook_address_refused" in out + err or "loopback" in out + err

        rc, out, err = alerts(d, "add-webhook", flaky.url, "--events", "*",
                              "--min-severity", "info")  # fmt: skip
        assert rc == 0, err
        flaky_id, flaky_secret = added(out)
        assert flaky_secret is not None
        assert "shown only now" in out
        rc, out, err = alerts(d, "add-email", "ops@example.test", "oncall@example.test")
        assert rc == 0, err
        mail_id, _ = added(out)
        assert "severity alert and up" in out

        # Real secrets through the real flows: stored, then read through the automated approver.
        stored = d.store("shop/prod/db", {"password": SECRET_VALUE, "user": OTHER_VALUE})
        assert stored.returncode == 0, outputs(stored)
        read = d.cli("read", REF, "--purpose", "alerts e2e")
        assert read.returncode == 0, outputs(read)
        assert read.stdout == SECRET_VALUE + "\n"

        # The flaky receiver failed 3 times, then got everything, in the order of the log.
        eventually(lambda: idle(d, flaky_id), "the flaky webhook's deliveries")
        assert [status for status, _, _ in flaky.calls[:3]] == [503, 503, 503]
        first = flaky.accepted()[0]
        assert (first["action"], first["detail"]["target"]) == ("alert.target_added", flaky_id)
        seqs = [e["seq"] for e in flaky.accepted()]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every event, in order
        assert len(seqs) >= 5
        for _, body, headers in flaky.calls:
            assert verify_webhook(flaky_secret, body, headers["X-Sealbox-Signature"]) > 0
            parsed = json.loads(body)
            assert headers["X-Sealbox-Delivery"] == parsed["delivery"]
            assert parsed["target"] == flaky_id
        retried = {json.loads(b)["delivery"] for s, b, _ in flaky.calls if s == 503}
        assert retried <= {e["delivery"] for e in flaky.accepted()}

        # The always-failing receiver: 10 tries, then disabled; email tells the approvers.
        rc, out, err = alerts(d, "add-webhook", broken.url, "--events", "item.*,alert.*",
                              "--min-severity", "info")  # fmt: skip
        assert rc == 0, err
        broken_id, broken_secret = added(out)
        assert broken_secret is not None
        eventually(lambda: any("alert.target_disabled" in t for t in mailbox.texts()),
                   "the email saying the webhook was disabled")  # fmt: skip
        assert len(broken.calls) == 10
        assert all("alert.target_disabled" not in b.decode() for b in broken.bodies())
        rc, out, err = alerts(d, "list")
        assert rc == 0, err
        assert f"{broken_id}  webhook {broken.url}: DISABLED" in out
        assert "10 failure(s) in a row" in out
        assert "last error: HTTP 500" in out
        [notice] = [m for m in mailbox.messages if b"alert.target_disabled" in m[1]]
        recipients, raw, over_tls = notice
        assert sorted(recipients) == ["oncall@example.test", "ops@example.test"]
        assert over_tls
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["Subject"] == "[sealbox] alert: alert.target_disabled"
        assert message["From"] == "sealbox@relay.test"
        text = message.get_content()
        assert f'"target": "{broken_id}"' in text
        assert "Action:   alert.target_disabled" in text
        assert f"Vault:    {d.vault}" in text
        # The flaky webhook (which selects everything) heard of it too.
        eventually(lambda: "alert.target_disabled" in [e["action"] for e in flaky.accepted()],
                   "the flaky webhook's copy of the notice")  # fmt: skip

        # A test event goes to the email target only.
        rc, out, err = alerts(d, "test", mail_id)
        assert rc == 0, err
        assert f"Test event queued for {mail_id}" in out
        eventually(lambda: any("alert.test" in t for t in mailbox.texts()), "the test email")
        assert all(m[2] for m in mailbox.messages)

        # Stopped with deliveries waiting (the receiver is down), started again: delivered.
        down.set()
        failed_before = len(flaky.calls)
        read = d.cli("read", REF, "--purpose", "while the receiver is down")
        assert read.returncode == 0, outputs(read)
        eventually(lambda: len(flaky.calls) > failed_before, "a failed try while down")
        bot.stop()
        port = d.relay.port
        d.relay.stop()
        rc, out, err = alerts(d, "list")
        assert rc != 0  # the relay is down
        down.clear()
        waiting = {e["delivery"] for s, b, _ in flaky.calls[failed_before:] if s >= 300
                   for e in [json.loads(b)]}  # fmt: skip
        assert waiting
        assert not waiting & {e["delivery"] for e in flaky.accepted()}
        d.relay = RelayProcess(tmp_path / "relay", *relay_args, port=port)
        eventually(lambda: waiting <= {e["delivery"] for e in flaky.accepted()},
                   "the waiting deliveries, after the restart")  # fmt: skip
        seqs = [e["seq"] for e in flaky.accepted() if e["seq"] is not None]
        assert seqs == sorted(seqs)

        # Enabled again, the broken one is tried again (and its count started over).
        rc, out, err = alerts(d, "enable", broken_id)
        assert rc == 0, err
        assert f"{broken_id}  webhook {broken.url}: enabled" in out
        eventually(lambda: len(broken.calls) > 10, "a new try after enabling")
        rc, out, err = alerts(d, "remove", broken_id)
        assert rc == 0, err
        rc, out, err = alerts(d, "list")
        assert broken_id not in out

        # No payload carries a value, a token, the webhook secrets or a private key.
        forbidden = [SECRET_VALUE, OTHER_VALUE, flaky_secret, broken_secret,
                     d.keys.sig.to_text(), d.keys.hpke.to_text()]  # fmt: skip
        forbidden += [t.split(":", 1)[-1] for t in forbidden[-2:]]
        for config in (d.client_config, d.approver_config):
            for path in config.rglob("*"):
                if path.is_file():
                    text = path.read_text(errors="replace")
                    forbidden += re.findall(r"sbx_(?:at|rt|st)_[A-Za-z0-9_-]{16,}", text)
                    forbidden += re.findall(r"sbx-[a-z0-9-]+-sk-v1:[A-Za-z0-9_-]+", text)
        token = d.relay.setup_token()
        if token:
            forbidden.append(token)
        mails = [email.message_from_bytes(raw, policy=email.policy.default)
                 for _, raw, _ in mailbox.messages]  # fmt: skip
        # Each email as sent and decoded (quoted-printable could split a string across lines).
        payloads = flaky.bodies() + broken.bodies() + [raw for _, raw, _ in mailbox.messages]
        payloads += [(str(m["Subject"]) + m.get_content()).encode() for m in mails]
        assert len(payloads) > 20
        assert len(forbidden) > 8
        for payload in payloads:
            for secret in forbidden:
                assert secret.encode() not in payload, "a payload carries secret material"
            assert b"sbx_at_" not in payload
            assert b"sbx_rt_" not in payload
