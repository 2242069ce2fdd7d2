"""For receivers of sealbox's alert webhooks: check that a delivery came from your relay.

::

    from sealbox.alerts import verify_webhook
    from sealbox.errors import SignatureInvalid

    try:
        verify_webhook(secret, request_body_bytes, request.headers["X-Sealbox-Signature"])
    except SignatureInvalid:
        return 400  # not from the relay, changed on the way, or replayed

The recipe (HMAC-SHA256 over ``"<t>." + body``, a five-minute window) is in
docs/protocol.md, so a receiver in another language can check it the same way.
"""

from __future__ import annotations

import time

from sealbox.protocol import alerts as _alerts

__all__ = ["SIGNATURE_HEADER", "verify_webhook"]

SIGNATURE_HEADER = _alerts.SIGNATURE_HEADER


def verify_webhook(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: int = _alerts.TOLERANCE_SECONDS,
    now: int | None = None,
) -> int:
    """Check a delivery's ``X-Sealbox-Signature`` over the raw ``body``; return its timestamp.

    ``secret`` is the ``whsec_…`` text ``sealbox approver alerts add-webhook``
    printed.  Raises :class:`sealbox.errors.SignatureInvalid` if the header is
    malformed, the signature does not match, or its timestamp is more than
    ``tolerance`` seconds from ``now`` (default: this machine's clock).
    """
    at = int(time.time()) if now is None else now
    return _alerts.verify(secret, body, header, now=at, tolerance=tolerance)
