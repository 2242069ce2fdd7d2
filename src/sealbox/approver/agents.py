"""An approver's acts on agents: certifying one a person asked for, listing, disabling, revoking.

Approving signs a client certificate of kind ``agent`` for exactly the id and
key the relay listed with the request (the person compares the key's safety
code with their terminal), with the scopes asked for or fewer, and grants the
agent the item patterns it may ask for.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import MalformedInput
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo

__all__ = [
    "CERTIFICATE_DAYS",
    "approve_agent",
    "deny_agent",
    "find_agent",
    "list_agents",
    "pending_agents",
    "revoke_agent",
    "set_disabled",
]

#: How long an agent's certificate lasts; its tokens never outlive it.
CERTIFICATE_DAYS = 90


def pending_agents(session: ApproverSession) -> list[dict[str, Any]]:
    waiting: list[dict[str, Any]] = session.ok("GET", "/agent-requests", "listing agents")[
        "agent_requests"
    ]
    return waiting


def approve_agent(
    session: ApproverSession, request: dict[str, Any], *, scopes: Sequence[str],
    grants: Sequence[str], days: int = CERTIFICATE_DAYS,
) -> str:  # fmt: skip
    """Certify the key of a waiting agent (as listed by the relay); grant ``grants``."""
    directory = session.directory(fresh=True)
    now = int(time.time())
    client = ClientInfo(
        id=ids.check_id(request.get("client_id"), ids.CLIENT, what="client id"), kind="agent",
        name=str(request.get("name"))[:128], sig_pk=VerifyKey.from_text(request.get("sig_pk")),
    )  # fmt: skip
    cert = issue_certificate(
        directory, issuer=session.id, key=session.keys.sig, client=client, scopes=scopes,
        constraints=ClientConstraints(not_after=now + days * 86400), now=now,
    )  # fmt: skip
    session.ok("POST", f"/agent-requests/{client.id}/approve", "approving the agent",
               json_body={"certificate": cert})  # fmt: skip
    for pattern in grants:
        session.ok("POST", f"/clients/{client.id}/grants", "granting access",
                   json_body={"pattern": pattern})  # fmt: skip
    return client.id


def deny_agent(session: ApproverSession, client_id: str) -> None:
    session.ok("POST", f"/agent-requests/{client_id}/deny", "denying the agent")


def list_agents(session: ApproverSession) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = session.ok("GET", "/agents", "listing agents")["agents"]
    return found


def find_agent(session: ApproverSession, name_or_id: str) -> dict[str, Any]:
    """The one agent with this client id, or else this name (or profile-style slug)."""
    agents = list_agents(session)
    by_id = [a for a in agents if a["client_id"] == name_or_id]
    if by_id:
        return by_id[0]
    wanted = name_or_id.strip().lower()
    by_name = [a for a in agents if str(a["name"]).lower() == wanted
               or ids.slug(str(a["name"])) == wanted]  # fmt: skip
    live = [a for a in by_name if a["state"] in ("active", "disabled")] or by_name
    if not live:
        raise MalformedInput(f"no agent is called {name_or_id!r}",
                             hint="See `sealbox agent list` for names and ids.")  # fmt: skip
    if len(live) > 1:
        raise MalformedInput(
            f"several agents are called {name_or_id!r}",
            hint="Name it by its client id (see `sealbox agent list`).",
        )
    return live[0]


def set_disabled(session: ApproverSession, client_id: str, *, disabled: bool) -> dict[str, Any]:
    action = "disable" if disabled else "enable"
    done: dict[str, Any] = session.ok("POST", f"/clients/{client_id}/{action}",
                                      f"{action} the agent")  # fmt: skip
    return done


def revoke_agent(session: ApproverSession, client_id: str) -> dict[str, Any]:
    done: dict[str, Any] = session.ok("POST", f"/agents/{client_id}/revoke", "revoking the agent")
    return done
