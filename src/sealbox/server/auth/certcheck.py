"""Every authenticated client request re-checks the client's certificate.

Disabling a client is immediate through ``clients.disabled``; this covers the
rest: a certificate past its ``not_after``, or whose issuing approver has been
removed from the directory.  The verdict is cached per (certificate, directory
head) until the certificate's own end, so the common case costs a dict lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sealbox.crypto import jws
from sealbox.errors import SealboxError
from sealbox.protocol.certificates import verify_certificate
from sealbox.server.errors import Unauthenticated

if TYPE_CHECKING:
    from sealbox.server.relay import Relay

__all__ = ["check_client_certificate"]

_MAX_CACHED = 50_000


async def check_client_certificate(
    relay: Relay, conn: Any, vault: str, certificate: str, enrollment: str | None, now: int
) -> None:
    directory = await relay.directories.load(conn, vault)
    key = (jws.statement_hash(certificate), directory.head.hash)
    _valid_until = relay.certificate_verdicts
    until = _valid_until.get(key)
    if until is not None and now <= until:
        return
    try:
        cert = verify_certificate(certificate, directory, now=now, enrollment=enrollment)
    except SealboxError:
        _valid_until.pop(key, None)
        raise Unauthenticated(
            "certificate_invalid",
            "this client's certificate has expired or its issuer is no longer an approver",
            "Log in again (people) or re-enrol (machines).",
        ) from None  # fmt: skip
    if len(_valid_until) >= _MAX_CACHED:
        _valid_until.clear()
    _valid_until[key] = cert.constraints.not_after
