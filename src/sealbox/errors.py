"""One exception hierarchy for all of sealbox.

Every error carries a stable machine-readable ``code`` (documented in
``docs/protocol.md``, section "Errors") and a ``hint`` that says what to do
next.  Messages never contain secret values, keys, tokens or passphrases:
they name *what* failed, never *with which bytes*.

This module is a leaf: it imports nothing of ours, so the pure layers
(``crypto``, ``protocol``) may raise these errors without depending on the
rest of the package.
"""

from __future__ import annotations

__all__ = [
    "BindingMismatch",
    "Cancelled",
    "CertificateInvalid",
    "DecryptionFailed",
    "Denied",
    "DirectoryBroken",
    "DirectoryFork",
    "DirectoryRollback",
    "Expired",
    "IllegalTransition",
    "InvalidInput",
    "KeyringUnavailable",
    "LoginFailed",
    "MalformedInput",
    "ManifestMismatch",
    "NotAuthorized",
    "NotLoggedIn",
    "ProfileExists",
    "RefusedByApprover",
    "RelayRefused",
    "RelayUnreachable",
    "RequestExpired",
    "SealboxError",
    "SignatureInvalid",
    "ThresholdNotMet",
    "VerificationError",
    "VersionRollback",
]


class SealboxError(Exception):
    """Base of every error sealbox raises on purpose."""

    code: str = "sealbox_error"
    hint: str = "This is a bug in sealbox if you see it; please report it."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class MalformedInput(SealboxError):
    """Input is not in the one canonical encoding the protocol allows."""

    code = "malformed"
    hint = "The data was not produced by a conforming sealbox peer, or it was altered in transit."


class InvalidInput(MalformedInput):
    """Something a person wrote (a ``sealbox://`` reference, a rules file) is not in the form
    sealbox expects.

    A :class:`MalformedInput` too, so code that catches that still catches this; but its own
    code and hints, because "a peer sent bad bytes" is the wrong thing to tell someone who
    mistyped a reference.  Each raise says what is wrong and shows the expected form.
    """

    code = "invalid_input"
    hint = "Check what you typed against the command's --help."


class VerificationError(SealboxError):
    """Base for every failed check of authenticity or binding."""

    code = "verification_failed"
    hint = (
        "Do not trust this data. The relay or the network may be tampering; "
        "compare the vault safety code with an approver."
    )


class SignatureInvalid(VerificationError):
    """A JWS signature, header or statement type does not verify."""

    code = "signature_invalid"


class DecryptionFailed(VerificationError):
    """An AEAD or HPKE open failed: wrong key, wrong context, or altered bytes."""

    code = "decryption_failed"


class BindingMismatch(VerificationError):
    """Two things that must refer to each other do not (request hash, vault, key, item...)."""

    code = "binding_mismatch"


class CertificateInvalid(VerificationError):
    """A client certificate or enrollment does not verify or does not permit this use."""

    code = "certificate_invalid"


class NotAuthorized(VerificationError):
    """A statement is signed by a key that is not allowed to sign it."""

    code = "not_authorized"


class ManifestMismatch(VerificationError):
    """Ciphertexts or wrapped keys do not match the approver-signed item manifest."""

    code = "manifest_mismatch"


class ThresholdNotMet(VerificationError):
    """Fewer valid shares than the item's threshold were available."""

    code = "threshold_not_met"


class Expired(VerificationError):
    """A statement is outside its validity window."""

    code = "expired"
    hint = "Start a new request; check that this machine's clock is correct."


class VersionRollback(VerificationError):
    """An item version older than one already seen was served."""

    code = "version_rollback"


class DirectoryBroken(VerificationError):
    """The approver directory chain does not verify from the pinned link 0."""

    code = "directory_broken"


class DirectoryRollback(DirectoryBroken):
    """The directory served is shorter than the head this client already saw."""

    code = "directory_rollback"


class DirectoryFork(DirectoryBroken):
    """The directory has another link at a sequence number this client already saw."""

    code = "directory_fork"


class IllegalTransition(SealboxError):
    """A request state change that the state table does not allow."""

    code = "illegal_transition"
    hint = "The request is already in a final state; start a new request."


# --- what a client or approver meets talking to its relay and approvers ---------------------


class RelayRefused(SealboxError):
    """The relay answered with an error.  Its message and hint (made safe to print) are kept,
    with the HTTP ``status`` and the relay's machine-readable ``error`` code."""

    code = "relay_refused"
    hint = "Check the command, and that this login or approver may do it."

    def __init__(
        self, message: str, *, hint: str | None = None, status: int | None = None,
        error: str | None = None, retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.status = status
        self.error = error
        self.retry_after = retry_after
        """Seconds the relay asked to wait before trying again (its ``Retry-After``), if any."""


class RelayUnreachable(SealboxError):
    """The relay could not be reached, or stopped answering, for longer than the call may wait."""

    code = "relay_unreachable"
    hint = "Check the server URL and that the relay is running."


class Denied(SealboxError):
    """An approver refused the request (its signed reason is in the message)."""

    code = "denied"
    hint = "Ask the approver, or make the request again with a clearer purpose."


class RefusedByApprover(VerificationError):
    """An approver found the request it was shown does not verify, and said so, signed.

    What the approver saw is not what this client sent: the relay (or something
    between this client and the relay) changed the request."""

    code = "refused_unverifiable"


class RequestExpired(SealboxError):
    """No approver answered before the request expired."""

    code = "request_expired"
    hint = "Make sure an approver is online (`sealbox approve`), then try again."


class Cancelled(SealboxError):
    """The request was withdrawn before it was answered."""

    code = "cancelled"
    hint = "Make the request again if it is still needed."


class NotLoggedIn(SealboxError):
    """There is no usable session for this profile."""

    code = "not_logged_in"
    hint = "Log in with `sealbox login --server URL`."


class ProfileExists(SealboxError):
    """A logged-in profile would be overwritten."""

    code = "profile_exists"
    hint = "Log out first with `sealbox logout`, pick another --profile, or pass --force."


class LoginFailed(SealboxError):
    """The device login did not complete (denied, expired, or the relay went away)."""

    code = "login_failed"
    hint = "Run `sealbox login` again."


class KeyringUnavailable(SealboxError):
    """No OS keyring that protects secrets is available here."""

    code = "keyring_unavailable"
    hint = "Use a passphrase instead (SEALBOX_PASSPHRASE, --passphrase-file, or the prompt)."
