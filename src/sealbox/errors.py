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
    "CertificateInvalid",
    "DecryptionFailed",
    "DirectoryBroken",
    "DirectoryFork",
    "DirectoryRollback",
    "Expired",
    "IllegalTransition",
    "MalformedInput",
    "ManifestMismatch",
    "NotAuthorized",
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
