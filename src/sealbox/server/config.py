"""Relay settings: command-line options, then ``SEALBOX_*`` environment variables, then defaults."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from sealbox.server import alert_network as _alert_network
from sealbox.server.networks import parse_networks

__all__ = [
    "DEFAULT_HOST", "DEFAULT_PORT", "Settings", "origin_of", "parse_origins", "parse_proxies",
]  # fmt: skip

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8300


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    """Holds the SQLite database and the at-rest key file (both 0600)."""
    db_url: str
    """SQLAlchemy URL: ``sqlite+aiosqlite:///…`` (default) or ``sqlite:///…``, both run on the
    relay's event loop (``store/engine.py``), or ``postgresql+asyncpg://…``."""
    db_schema: str | None = None
    """PostgreSQL schema to use (default: the server's search path)."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_url: str | None = None
    """The URL people and clients use to reach the relay (default: http://host:port)."""
    max_body_bytes: int = 1 << 20
    """Largest request body accepted; larger bodies get 413 before they are read."""
    pending_cap: int = 20
    """Most pending requests (access and store) one client may have at once; an approver may
    set another for one client (``sealbox approver requesters limits``)."""
    prompts_per_minute: int = 60
    """Most new requests (prompts to approvers) one client may make in any 60 seconds,
    counted in the database (so across replicas); an approver may set another for one
    client.  Past it: 429 ``too_many_prompts`` with ``Retry-After``, nothing created."""
    storm_prompts: int = 20
    """More prompts than this from one client within 60 seconds is a prompt storm: one
    ``requests.storm`` audit event (severity alert) per client and minute."""
    lockout_denials: int = 5
    """After this many denials in a row (no approval between them, each within
    ``lockout_window_seconds`` of the one before) a client is locked out: its new requests
    are refused (403 ``locked_out``) until an approver unlocks it.  0: never."""
    lockout_window_seconds: int = 3600
    """Denials further apart than this do not count as in a row."""
    delivery_seconds: int = 300
    """How long a released request waits for its client to fetch it before it expires."""
    waiter_grace_seconds: int = 60
    """How long a pending request outlives its client's last wait before it is abandoned: no
    approver may answer it any more, and the sweeper expires it.  A waiting client is seen at
    least every long poll (the SDK polls every 25 s), so this is what it has to reconnect in
    (through a relay restart, say); it counts wall-clock time, kept in the database."""
    sweep_seconds: float = 5.0
    """How often each replica runs the housekeeping (expiring and purging requests)."""
    retention_seconds: int = 31 * 86400
    """How long finished requests are kept (longer than the longest cache window, 30 days,
    so cache hits can still be reported against them); expired tokens are purged after a day."""
    rate_per_second: float = 50.0
    """Sustained requests per second one authenticated caller may make (per replica)."""
    rate_burst: int = 200
    """Requests one caller may make at once before the rate applies."""
    console_origins: tuple[str, ...] = ()
    """Origins besides the relay's own public URL that may run the browser console against it
    (WebAuthn ceremonies and session calls): e.g. ``http://localhost:8400`` for ``sealbox
    console``.  Each is ``scheme://host[:port]``, no path."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks (CIDRs) of the proxies in front of the relay whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` it believes; empty (the default): it believes no forwarded header
    and the source of a request is the address of its connection."""

    smtp_host: str | None = None
    """SMTP server for email alerts (none: email targets fail and are retried)."""
    smtp_port: int = 25
    smtp_from: str | None = None
    """The alerts' From address (default: sealbox@<smtp host>)."""
    smtp_user: str | None = None
    """Login for the SMTP server; its password comes from ``SEALBOX_SMTP_PASSWORD`` only, and
    is sent only over TLS."""
    smtp_ca_file: str | None = None
    """CA certificates (PEM) to trust for the SMTP server's STARTTLS, instead of the system's."""
    alert_retry_base: float = 10.0
    """Seconds before the first retry of a failed alert delivery; each failure in a row doubles
    it (full jitter), up to ``alert_retry_cap``."""
    alert_retry_cap: float = 3600.0
    alert_timeout: float = 10.0
    """Seconds one webhook call or SMTP session may take."""
    alert_poll_seconds: float = 1.0
    """How often each replica looks for alert deliveries to send."""
    alert_lease_seconds: float = 60.0
    """How long a replica's claim on a target's deliveries holds if it dies while sending."""
    smtp_require_tls: bool = False
    """Send alert mail only over STARTTLS: a server that does not offer it is a failed try."""
    alert_allow_networks: tuple[str, ...] = ()
    """Networks (CIDR) webhooks may reach although they are not public (loopback, private...);
    none by default.  See :mod:`sealbox.server.alert_network`."""

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("127.0.0.1", "::1", "0.0.0.0") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def console_origin_list(self) -> tuple[str, ...]:
        """Every origin the console may run on: the relay's own, then the configured ones."""
        return tuple(dict.fromkeys((origin_of(self.base_url), *self.console_origins)))

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @classmethod
    def load(
        cls,
        *,
        data_dir: str | None = None,
        db_url: str | None = None,
        db_schema: str | None = None,
        host: str | None = None,
        port: int | None = None,
        public_url: str | None = None,
        console_origins: Sequence[str] | None = None,
        trusted_proxies: Sequence[str] | None = None,
        pending_cap: int | None = None,
        prompts_per_minute: int | None = None,
        storm_prompts: int | None = None,
        lockout_denials: int | None = None,
        lockout_window_seconds: int | None = None,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        smtp_from: str | None = None,
        smtp_user: str | None = None,
        smtp_ca_file: str | None = None,
        alert_retry_base: float | None = None,
        alert_retry_cap: float | None = None,
        alert_timeout: float | None = None,
        smtp_require_tls: bool | None = None,
        alert_allow_networks: Sequence[str] | None = None,
    ) -> Settings:
        env = os.environ
        root = Path(
            data_dir or env.get("SEALBOX_DATA_DIR") or platformdirs.user_data_dir("sealbox")
        ).expanduser()
        url = db_url or env.get("SEALBOX_DB_URL") or f"sqlite+aiosqlite:///{root / 'sealbox.db'}"
        return cls(
            data_dir=root,
            db_url=normalise_db_url(url),
            db_schema=db_schema or env.get("SEALBOX_DB_SCHEMA") or None,
            host=host or env.get("SEALBOX_HOST") or DEFAULT_HOST,
            port=int(port or env.get("SEALBOX_PORT") or DEFAULT_PORT),
            public_url=public_url or env.get("SEALBOX_PUBLIC_URL") or None,
            console_origins=parse_origins(
                console_origins or (env.get("SEALBOX_CONSOLE_ORIGINS") or "").split(",")
            ),
            trusted_proxies=parse_proxies(
                trusted_proxies or (env.get("SEALBOX_TRUSTED_PROXIES") or "").split(",")
            ),
            pending_cap=_count(pending_cap, "SEALBOX_PENDING_CAP", cls.pending_cap, least=1),
            prompts_per_minute=_count(prompts_per_minute, "SEALBOX_PROMPTS_PER_MINUTE",
                                      cls.prompts_per_minute, least=1),
            storm_prompts=_count(storm_prompts, "SEALBOX_STORM_PROMPTS", cls.storm_prompts,
                                 least=1),
            lockout_denials=_count(lockout_denials, "SEALBOX_LOCKOUT_DENIALS",
                                   cls.lockout_denials, least=0),
            lockout_window_seconds=_count(lockout_window_seconds, "SEALBOX_LOCKOUT_WINDOW",
                                          cls.lockout_window_seconds, least=1),
            smtp_host=smtp_host or env.get("SEALBOX_SMTP_HOST") or None,
            smtp_port=_count(smtp_port, "SEALBOX_SMTP_PORT", cls.smtp_port, least=1),
            smtp_from=smtp_from or env.get("SEALBOX_SMTP_FROM") or None,
            smtp_user=smtp_user or env.get("SEALBOX_SMTP_USER") or None,
            smtp_ca_file=smtp_ca_file or env.get("SEALBOX_SMTP_CA_FILE") or None,
            alert_retry_base=_seconds(alert_retry_base, "SEALBOX_ALERT_RETRY_BASE",
                                      cls.alert_retry_base),
            alert_retry_cap=_seconds(alert_retry_cap, "SEALBOX_ALERT_RETRY_CAP",
                                     cls.alert_retry_cap),
            alert_timeout=_seconds(alert_timeout, "SEALBOX_ALERT_TIMEOUT", cls.alert_timeout),
            smtp_require_tls=_alert_network.require_tls_setting(smtp_require_tls),
            alert_allow_networks=_alert_network.networks_setting(alert_allow_networks),
        )  # fmt: skip


def _seconds(given: float | None, env: str, default: float) -> float:
    """A duration in seconds (more than 0, at most a day) from its option, else ``env``."""
    if given is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        try:
            given = float(text)
        except ValueError:
            raise ValueError(f"{env} must be a number of seconds, not {text!r}") from None
    if not 0 < given <= 86400:
        raise ValueError(f"{env} (or its option) must be more than 0 and at most 86400 seconds")
    return given


def _count(given: int | None, env: str, default: int, *, least: int) -> int:
    """A whole-number setting from its option, else ``env``, else ``default``; at least ``least``.

    Raises :class:`ValueError` (one line for the operator) for anything else.
    """
    if given is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        try:
            given = int(text)
        except ValueError:
            raise ValueError(f"{env} must be a whole number, not {text!r}") from None
    if given < least:
        raise ValueError(f"{env} (or its option) must be at least {least}, not {given}")
    return given


def normalise_db_url(url: str) -> str:
    """Accept the URLs operators write (``postgresql://``) and pick the async driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def origin_of(url: str) -> str:
    """The origin (``scheme://host[:port]``, lower case, no default port) of an absolute URL.

    Raises :class:`ValueError` for anything but an http(s) URL with a host: an origin is
    compared as a string with the browser's ``Origin`` header, so it must be in that form.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"an origin has no credentials, query or fragment: {url!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"an origin has no path: {url!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def parse_origins(values: Sequence[str]) -> tuple[str, ...]:
    """Console origins from options or ``SEALBOX_CONSOLE_ORIGINS`` (comma-separated)."""
    found = [origin_of(part) for value in values for part in value.split(",") if part.strip()]
    return tuple(dict.fromkeys(found))


def parse_proxies(values: Sequence[str]) -> tuple[str, ...]:
    """Trusted proxy networks from options or ``SEALBOX_TRUSTED_PROXIES`` (comma-separated),
    in canonical form; raises :class:`ValueError` for anything that is not a network."""
    parts = [part for value in values for part in value.split(",") if part.strip()]
    return tuple(str(network) for network in parse_networks(parts))
