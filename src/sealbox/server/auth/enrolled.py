"""CI runners and the machines they enrol: what transport authentication holds them to.

Two things live here.

* A runner holding an enrollment token signs its calls to the enrollment's
  endpoints (fetch the statement, register a machine) with the enrollment's
  delegation key, ``keyid`` = the ``enr_…`` id (:func:`enrollment_key`, used by
  :func:`sealbox.server.auth.require_enrollment`).
  The relay knows that key only from the approver-signed statement it stores.
* A machine registered under an enrollment is checked on *every* call, when
  its key is looked up (as its certificate is, before the signature is
  checked): its enrollment must not be revoked (revoking also disables it;
  this holds even if an approver enabled it again), and the request must come
  from a network its certificate names (only the relay sees the address).  Its
  certificate's and enrollment's ``not_after`` are checked with the
  certificate chain (:mod:`.certcheck`).

Refusals are 401s, audited like every refused credential
(:mod:`.refusals`).
"""

from __future__ import annotations

import functools
from typing import Any

from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, parse_canonical_json
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids
from sealbox.protocol.statements import ClientConstraints, EnrollmentStatement
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Unauthenticated
from sealbox.server.networks import certified_networks, inside
from sealbox.server.relay import Relay
from sealbox.server.store import enrollments as enrollment_store
from sealbox.server.store.clients import ClientRow

__all__ = ["check_enrolled", "enrollment_key"]


def _payload(token: str) -> Any:
    # Only for statements the relay verified before it stored them.
    return parse_canonical_json(b64u_decode(token.split(".")[1], what="statement"))


@functools.lru_cache(maxsize=4096)
def _cidrs(certificate: str) -> tuple[str, ...]:
    return ClientConstraints.from_json(_payload(certificate)["constraints"]).cidrs


@functools.lru_cache(maxsize=1024)
def _delegation_key(statement: str) -> VerifyKey:
    return EnrollmentStatement.from_json(_payload(statement)).sig_pk


async def check_enrolled(conn: Any, vault: str, row: ClientRow, ip: str | None) -> None:
    """Refuse a call of a machine whose enrollment is revoked, or from outside its networks."""
    if row.enrollment is None:
        return
    enrollment_id = jws.read_header(row.certificate).kid
    found = await enrollment_store.get(conn, vault, enrollment_id)
    if found is None or found.revoked_at is not None:
        raise Unauthenticated(
            "enrollment_revoked", "the enrollment this machine was registered under is revoked",
            "Ask an approver for a new enrollment token; this machine cannot be used again.",
        )  # fmt: skip
    cidrs = _cidrs(row.certificate)
    if cidrs and not inside(ip, certified_networks(cidrs)):
        raise Unauthenticated(
            "source_not_allowed",
            "this machine's certificate does not allow requests from this address",
            "Call from a network the enrollment allows (`sealbox ci enrollment list`).",
        )  # fmt: skip


async def enrollment_key(
    relay: Relay, vault: str, key_id: str, source: str | None
) -> tuple[VerifyKey, Principal]:
    """The delegation key of the enrollment ``key_id``, for a runner's signed call.

    (``source`` is checked by the service, against the certificate the runner registers.)
    """
    try:
        enrollment_id = ids.check_id(key_id, ids.ENROLLMENT)
    except SealboxError:
        enrollment_id = None
    if enrollment_id is not None:
        async with relay.read() as conn:
            found = await enrollment_store.get(conn, vault, enrollment_id)
        if found is not None:
            # Revoked and expired enrollments still verify here: the service then says
            # so in words, to the holder of the key only.
            principal = Principal(vault=vault, id=enrollment_id, role="enrollment")
            return _delegation_key(found.statement), principal
    raise Unauthenticated(
        "unknown_key", "the signing key is not an enrollment of this vault",
        "Check SEALBOX_ENROLLMENT_TOKEN: it must be a token `sealbox ci enrollment create` "
        "printed for this relay.",
    )  # fmt: skip
