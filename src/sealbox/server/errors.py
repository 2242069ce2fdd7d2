"""The relay's domain errors: what went wrong, in terms of sealbox, never of HTTP.

Services and the store raise these; the HTTP layer maps each kind to a status
code in one place (:mod:`sealbox.server.http.errors`), so a service can be
driven by any transport and a test can assert on the kind of refusal.  Every
error carries a stable machine-readable ``code``, a message that names *what*
failed (never with which secret bytes) and a hint that says what to do next.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "RelayError",
    "TooMany",
    "Unauthenticated",
    "Unavailable",
]


class RelayError(Exception):
    """Base of every refusal the relay answers as it is."""

    def __init__(
        self, code: str, message: str, hint: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.retry_after = retry_after
        """Seconds after which the same call may succeed (rate limits), if known."""


class Invalid(RelayError):
    """The request breaks a rule of the protocol or of the vault's policy."""


class Unauthenticated(RelayError):
    """The caller is not who it claims, or its credential is no longer good."""


class Forbidden(RelayError):
    """The caller is known but may not do this."""


class NotFound(RelayError):
    """No such thing, or none the caller may know of."""


class Conflict(RelayError):
    """The thing is not in a state that allows this (answered, taken, raced)."""


class Gone(RelayError):
    """It existed and was consumed (an envelope is delivered once)."""


class TooMany(RelayError):
    """A rate limit or a cap; ``retry_after`` says when to try again, if known."""


class Unavailable(RelayError):
    """The relay cannot do this now (not set up, or busy)."""
