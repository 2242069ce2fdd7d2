"""The relay's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every table but ``settings`` is keyed by ``vault_id`` first, and every query
in :mod:`the store modules` filters by it: there is no code path that
reads another vault's rows.  Times are integer Unix seconds.  Tokens are
stored only as SHA-256 hashes.  Signed statements are stored verbatim, as the
exact bytes that were signed.

Changing this file needs a new Alembic revision in ``migrations/versions``;
a test compares the two.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


def _created_at(context: Any) -> Any:
    """A request inserted without ``waiter_until`` was last seen when it was made.

    The relay always sets it; rows written directly (``bench/waiters.py``) rely on this.
    """
    return context.get_current_parameters()["created_at"]


ID = String(40)
HASH = String(64)

vaults = Table(
    "vaults",
    metadata,
    Column("id", ID, primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("setup_token_hash", HASH, nullable=True),
    # SHA-256 of the one-time setup token; null once the vault has its link 0.
    Column("fingerprint", HASH, nullable=True),
)

directory_links = Table(
    "directory_links",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("token", Text, nullable=False),
    Column("hash", HASH, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("sig_pk", String(80), nullable=False),
    Column("certificate", Text, nullable=False),
    Column("enrollment", Text, nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("limits", JSON, nullable=False, server_default="[]"),
    # The item-path limits of the certificate's signed scopes and its enrollment, as
    # sealbox.protocol.scopes.limits gives them (a list of pattern lists; empty: none).
    # Written only from a verified certificate chain, read on every item decision.
)

device_codes = Table(
    "device_codes",
    metadata,
    Column("device_code_hash", HASH, primary_key=True),
    Column("vault_id", ID, nullable=False),
    Column("user_code", String(16), nullable=False, unique=True),
    Column("client_id", ID, nullable=False),
    Column("client_name", String(128), nullable=False),
    Column("sig_pk", String(80), nullable=False),
    Column("state", String(16), nullable=False),
    # pending, approved, denied, used.
    Column("certificate", Text, nullable=True),
    Column("interval", Integer, nullable=False),
    Column("last_poll", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # A login started with an invite (teams): the invite's id, and the project and role
    # it offers, shown to the approver; the approved certificate must give exactly that role.
    Column("invite_id", String(24), nullable=True),
    Column("invite_project", String(64), nullable=True),
    Column("invite_role", String(16), nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("hash", HASH, primary_key=True),
    Column("vault_id", ID, nullable=False),
    Column("client_id", ID, nullable=False),
    Column("kind", String(8), nullable=False),
    # access or refresh.
    Column("family", ID, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Index("ix_tokens_family", "family"),
)

items = Table(
    "items",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    Column("path", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("latest_version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("vault_id", "path", name="uq_items_path"),
)

item_versions = Table(
    "item_versions",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("item_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("manifest", Text, nullable=False),
    Column("manifest_hash", HASH, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("item_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("holder", ID, primary_key=True),
    # ``""`` for a field ciphertext, else the approver id whose wrapped share this is.
    Column("field", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    # Encrypted at rest under the vault's data key, with the row identity as aad.
)

grants = Table(
    "grants",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("client_id", ID, primary_key=True),
    Column("pattern", String(200), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("pattern", String(200), primary_key=True),
    Column("approvers", JSON, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("expiry_seconds", Integer, nullable=False),
    Column("max_cache_seconds", Integer, nullable=False),
    Column("store_needs_approval", Boolean, nullable=False),
    Column("cidrs", JSON, nullable=False, server_default="[]"),
    # Networks (canonical CIDR text) an access or store request for a matching item must come
    # from; empty: any.
    # The further axes (sealbox.protocol.policy_rules): time windows (canonical text), a
    # read-rate cap per item (N/PERIOD), a co-signer, a destroy date, rotate-after-N, and the
    # approver-signed sealbox.policy.v1 it was set with (null: set by a member, the relay's word).
    Column("hours", JSON, nullable=False, server_default="[]"),
    Column("max_reads", String(16), nullable=True),
    Column("cosigner", ID, nullable=True),
    Column("destroy_at", BigInteger, nullable=True),
    Column("rotate_after", Integer, nullable=True),
    Column("statement", Text, nullable=True),
)

requests = Table(
    "requests",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", HASH, primary_key=True),
    # The statement hash (digest text without its ``sha256:`` prefix).
    Column("kind", String(8), nullable=False),
    # access or store.
    Column("client_id", ID, nullable=False),
    Column("statement", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    # What approvers need beside the statement (item paths, store blobs' location).
    Column("state", String(16), nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("source_ip", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("waiter_until", BigInteger, nullable=False, default=_created_at),
    # Until when the requesting client is known to be waiting for the answer: the end of its
    # latest long poll (or the request's creation).  A pending request whose client has not
    # been seen for longer than the waiter grace is abandoned (services/access.py).
    Index("ix_requests_state", "vault_id", "state"),
    Index("ix_requests_client", "vault_id", "client_id", "state"),
    Index("ix_requests_client_created", "vault_id", "client_id", "created_at"),
    # How many prompts one client raised lately (services/fatigue.py): a range of this index.
)

answers = Table(
    "answers",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("request_id", HASH, primary_key=True),
    Column("approver_id", ID, primary_key=True),
    Column("kind", String(8), nullable=False),
    # release, deny or manifest.
    Column("token", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

replay = Table(
    "replay",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("scope", String(8), primary_key=True),
    # jti or nonce.
    Column("key", String(200), primary_key=True),
    # The jti, or ``keyid nonce`` for an RFC 9421 signature.
    Column("expires_at", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("client_id", ID, nullable=True),
    Column("item_id", ID, nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", HASH, nullable=False),
    Column("hash", HASH, nullable=False),
)

data_keys = Table(
    "data_keys",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("project", String(64), primary_key=True),
    Column("wrapped", LargeBinary, nullable=False),
    # The project's data key, AES-GCM-wrapped by the master key.
    Column("kek_id", HASH, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("vault_id", ID, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", BigInteger, nullable=False),
)

pairing_requests = Table(
    "pairing_requests",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", String(32), primary_key=True),
    # Random, handed only to the new device: it polls its pairing by this id.
    Column("approver", JSON, nullable=False),
    # The new device's directory record (id, name, kind, tier, public keys).
    Column("state", String(16), nullable=False),
    # pending, approved (its record was added to the directory), denied.
    Column("source_ip", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

console_challenges = Table(
    "console_challenges",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("challenge", String(64), primary_key=True),
    # The WebAuthn challenge (base64url of 32 random bytes): single use, deleted when spent.
    Column("purpose", String(16), nullable=False),
    # setup, signin or passkey.
    Column("approver_id", ID, nullable=True),
    # Whom the passkey is made for (setup, passkey); null for a sign-in.
    Column("rp_id", String(253), nullable=False),
    # The host name of the console origin the options were asked from.
    Column("expires_at", BigInteger, nullable=False),
)

console_credentials = Table(
    "console_credentials",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", String(1400), primary_key=True),
    # The credential id, base64url (at most 1023 bytes by WebAuthn).
    Column("approver_id", ID, nullable=False),
    Column("sig_pk", String(80), nullable=False),
    # The approver's signing key (text form) as the passkey was made for it: the passkey signs
    # in only while the directory lists this approver with this very key.
    Column("public_key", LargeBinary, nullable=False),
    # COSE_Key bytes as the authenticator gave them.
    Column("sign_count", BigInteger, nullable=False),
    Column("transports", JSON, nullable=False),
    Column("rp_id", String(253), nullable=False),
    # The RP ID it was registered under: it signs in only on an origin of that host.
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Index("ix_console_credentials_approver", "vault_id", "approver_id"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("hash", HASH, primary_key=True),
    # SHA-256 of the session token; the token itself lives only in the browser's cookie.
    Column("vault_id", ID, nullable=False),
    Column("approver_id", ID, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_console_sessions_approver", "vault_id", "approver_id"),
)

# --- machines: bootstrap tokens and the registrations they start --------------------------------

bootstrap_tokens = Table(
    "bootstrap_tokens",
    metadata,
    Column("hash", HASH, primary_key=True),
    # The token's labelled SHA-256 hash; the token itself is shown once, to the approver.
    Column("vault_id", ID, nullable=False),
    Column("name", String(128), nullable=False),
    # The machine's name, as the approver gave it.
    Column("grants", JSON, nullable=False),
    # The item patterns the machine will ask for (its certificate carries them as items: scopes).
    Column("scopes", JSON, nullable=False),
    # read and/or write.
    Column("created_by", ID, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    # Set, compare-and-set, by the one registration that spends the token; a spent token
    # is kept (as its hash) only so a second use is told apart and audited, then purged.
    Column("used_by", ID, nullable=True),
)

machine_registrations = Table(
    "machine_registrations",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("client_id", ID, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("token_name", String(128), nullable=False),
    Column("sig_pk", String(80), nullable=False),
    # The public key the machine made and sent; its private half never leaves the machine.
    Column("user_code", String(16), nullable=False),
    Column("grants", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("token_created_by", ID, nullable=False),
    Column("state", String(16), nullable=False),
    # pending, approved, denied (sealbox.protocol.state.MACHINE_REGISTRATION).
    Column("certificate", Text, nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# --- CI enrollments ----------------------------------------------------------------------------

enrollments = Table(
    "enrollments",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    # The enr_ id: the kid of every machine certificate its delegation key signs.
    Column("statement", Text, nullable=False),
    # The approver-signed sealbox.enrollment.v1, verbatim; the relay never sees the
    # delegation private key, only the public key inside this statement.
    Column("issuer", ID, nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False),
    # Machines registered under it so far; raised by compare-and-set, never past max_uses.
    Column("not_after", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoked_by", ID, nullable=True),
)

# --- network allowlists -------------------------------------------------------------------------

network_allowlists = Table(
    "network_allowlists",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("cidrs", JSON, nullable=False),
    # The networks machines and agents may call from (canonical CIDR text, sorted).
    Column("version", BigInteger, nullable=False),
    # Raised by every change: relay replicas compare it to know their cached copy is current.
    Column("updated_at", BigInteger, nullable=False),
)

# --- teams: invites and members' roles ---------------------------------------------------------

invites = Table(
    "invites",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", String(24), primary_key=True),
    Column("code_hash", HASH, nullable=False, unique=True),
    # SHA-256 of the invite code; the code itself is shown once, to the approver who made it.
    Column("project", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("issuer", ID, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    # Set by the first login that presents the code (one use: a second one is refused).
    Column("used_by", ID, nullable=True),
)

member_roles = Table(
    "member_roles",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("client_id", ID, primary_key=True),
    Column("project", String(64), primary_key=True),
    Column("role", String(16), primary_key=True),
    # The role scopes of the client's stored certificate, written only from a verified one
    # (with it, in one transaction), read on every item decision about the client.
    Index("ix_member_roles_project", "vault_id", "project"),
)

# --- agents: clients for automation that a person asks for and an approver certifies ----------

agents = Table(
    "agents",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("client_id", ID, primary_key=True),
    # The agent's client id; it is its OAuth client_id too, so it is unique across vaults.
    Column("name", String(128), nullable=False),
    Column("sig_pk", String(80), nullable=False),
    # The agent's public key, made on the person's machine; its private key never comes here.
    Column("requested_by", ID, nullable=False),
    # The person's client that asked for it.
    Column("scopes", JSON, nullable=False),
    # What was asked for (read, write, items:…); the certificate says what was granted.
    Column("state", String(16), nullable=False),
    # pending, approved, denied or revoked (for good).
    Column("secret_hash", HASH, nullable=True),
    # Labelled SHA-256 of the optional client secret (made by the person's machine); null: none.
    Column("certificate", Text, nullable=True),
    Column("answered_by", ID, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # Until when a pending request may be approved.
    UniqueConstraint("client_id", name="uq_agents_client_id"),
)

consent_requests = Table(
    "consent_requests",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", HASH, primary_key=True),
    # The consent request statement's hash without "sha256:".
    Column("client_id", ID, nullable=False),
    Column("statement", Text, nullable=False),
    Column("action", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("answer", Text, nullable=True),
    # The approver's signed consent or deny, once answered.
    Column("answered_by", ID, nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_consent_requests_pending", "vault_id", "state", "expires_at"),
    # Counting a client's prompts lately (against approval fatigue).
    Index("ix_consent_requests_client_created", "vault_id", "client_id", "created_at"),
)


# --- against approval fatigue: per-requester limits, lockout, storm reports ------------------

requester_guards = Table(
    "requester_guards",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("client_id", ID, primary_key=True),
    Column("per_minute", Integer, nullable=True),
    # An approver's override of the relay's prompts-per-minute limit for this client; null: none.
    Column("pending_cap", Integer, nullable=True),
    # An approver's override of the relay's pending cap for this client; null: none.
    Column("denials", Integer, nullable=False, server_default="0"),
    # Denials in a row (no release or store between them), each within the lockout window
    # of the one before.
    Column("last_denial_at", BigInteger, nullable=True),
    Column("locked_at", BigInteger, nullable=True),
    # Set when the denials in a row reached the lockout count; null: not locked.  Only an
    # approver clears it.
    Column("storm_at", BigInteger, nullable=True),
    # When the latest requests.storm event for this client was written (one per minute).
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", ID, nullable=True),
    # The approver that last set an override or cleared a lockout.
)


# --- policy axes: read counts, releases since a version, destroyed items -----------------------

item_reads = Table(
    "item_reads",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("item_id", ID, primary_key=True),
    Column("request_id", HASH, primary_key=True),
    Column("at", BigInteger, nullable=False),
    # One row per access request naming the item: what a read-rate cap counts.
    Index("ix_item_reads_at", "vault_id", "item_id", "at"),
)

item_releases = Table(
    "item_releases",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("item_id", ID, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("releases", Integer, nullable=False),
    Column("rotation_due_at", BigInteger, nullable=True),
    # Per version: a new version starts at 0 releases, which is what clears "rotation due".
)

destroyed_items = Table(
    "destroyed_items",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("item_id", ID, primary_key=True),
    Column("path", String(200), nullable=False),
    Column("pattern", String(200), nullable=False),
    Column("destroyed_at", BigInteger, nullable=False),
)


# --- frozen projects (an approver's freeze, or a canary's release) ---------------------------

project_freezes = Table(
    "project_freezes",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("project", String(64), primary_key=True),
    # The first segment of an item path.  A row here: the project is frozen; unfreezing
    # deletes it (the audit log keeps the history).
    Column("frozen_at", BigInteger, nullable=False),
    Column("frozen_by", String(64), nullable=False),
    # The approver that froze it, or "relay" when a canary's release did.
    Column("cause", String(16), nullable=False),
    # approver or canary.
    Column("reason", String(500), nullable=True),
    Column("request_id", HASH, nullable=True),
    # For a canary: the access request whose release froze it.
)


# --- alerts: targets (webhooks, email) and the outbox of deliveries ---------------------------

alert_targets = Table(
    "alert_targets",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", String(40), primary_key=True),
    Column("kind", String(8), nullable=False),
    # "webhook" or "email".
    Column("url", Text, nullable=True),
    # A webhook's URL (http or https).
    Column("addresses", JSON, nullable=True),
    # An email target's recipients.
    Column("secret_sealed", LargeBinary, nullable=True),
    # A webhook's signing secret, sealed under the vault's alerts data key (at-rest layer).
    Column("events", JSON, nullable=False),
    # Action patterns the target selects (empty: any action).
    Column("min_severity", String(8), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),
    # Failed deliveries in a row; at 10 the target is disabled.
    Column("retry_at_ms", BigInteger, nullable=True),
    # After a failure: no delivery to this target before this time (Unix milliseconds).
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("lease_owner", String(40), nullable=True),
    # The relay process delivering to this target now, and until when its claim holds: one
    # replica sends a target's deliveries, in order.
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", ID, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", String(200), nullable=True),
    # Why the last delivery failed (a status code or an error class; never a body).
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    # Order of writing: a target's deliveries are sent oldest first.
    Column("vault_id", ID, nullable=False),
    Column("target_id", String(40), nullable=False),
    Column("delivery_id", String(40), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=True),
    # The audit event's sequence number (null for a test delivery).
    Column("event", JSON, nullable=False),
    # What is sent: the audit event's fields (never a value, token or key).
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_alert_outbox_target", "vault_id", "target_id", "id"),
)  # fmt: skip


# --- audit checkpoints: approvers' signatures over the audit chain's head ---------------------

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    # The audit event the checkpoint names; its hash equalled ``head`` when stored.
    Column("approver_id", ID, primary_key=True),
    Column("head", String(64), nullable=False),
    # The checkpoint's head, as signed (``sha256:`` and base64url of the event's hash).
    Column("statement", Text, nullable=False),
    # The compact JWS, verbatim.
    Column("at", BigInteger, nullable=False),
    # When the approver signed it (its claim).
    Column("created_at", BigInteger, nullable=False),
)


# --- share links: one value for someone outside the vault, opened once ---------------------

shares = Table(
    "shares",
    metadata,
    Column("vault_id", ID, primary_key=True),
    Column("id", ID, primary_key=True),
    # "shr_…", made by the sender's client (it is bound into the ciphertext's aad).
    Column("created_by", ID, nullable=False),
    Column("state", String(16), nullable=False),
    # live, opened, destroyed or expired (protocol/shares.py); only live has a ciphertext.
    Column("nonce", LargeBinary, nullable=True),
    Column("ciphertext", LargeBinary, nullable=True),
    # Sealed by the sender under a key the relay never receives; deleted when it leaves live.
    Column("passphrase_hash", String(128), nullable=True),
    # Argon2id of the optional passphrase; null without one, and once the share is spent.
    Column("open_token_hash", LargeBinary, nullable=True),
    # SHA-256 of the open token the link's key derives (null once spent, and in rows made
    # before open tokens existed, which can no longer be opened).
    Column("size", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_shares_state_expires", "state", "expires_at"),
)
