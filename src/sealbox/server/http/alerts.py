"""``/v1/vaults/{vault}/alerts``: alert targets (webhooks, email), for approvers only.

The work is done by :mod:`sealbox.server.services.alerts`; deliveries are sent
by :mod:`sealbox.server.alert_delivery`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import alerts
from sealbox.server.services.alerts import TargetView

router = APIRouter(prefix="/v1/vaults/{vault}/alerts", tags=["alerts"])

TargetId = Annotated[str, Path(max_length=40, pattern=r"^alt_[a-z2-7]{26}$")]
Pattern = Annotated[str, Field(max_length=64)]
Severity = Annotated[str, Field(max_length=8)]


class Selection(BaseModel):
    # Strict: a list of patterns is a list of strings, nothing coerced.
    model_config = ConfigDict(strict=True, extra="forbid")

    events: list[Pattern] = Field(
        default_factory=list, max_length=32,
        description="action patterns: canary.read, canary.*, *",
    )  # fmt: skip
    min_severity: Severity | None = Field(
        default=None,
        description="least severity selected (default: alert, or info when events are named)",
    )


class WebhookBody(Selection):
    url: str = Field(max_length=2048, description="http(s) URL the events are POSTed to")


class EmailBody(Selection):
    addresses: list[Annotated[str, Field(max_length=254)]] = Field(
        min_length=1, max_length=alerts.MAX_ADDRESSES, description="recipients"
    )


def _json(view: TargetView) -> dict[str, Any]:
    found = asdict(view)
    found["addresses"] = list(view.addresses)
    found["events"] = list(view.events)
    return found


@router.get("")
async def list_targets(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """The vault's alert targets (never a webhook's secret)."""
    relay = relay_of(request)
    return {"targets": [_json(v) for v in await alerts.list_targets(relay, vault=vault)]}


@router.post("/webhooks", status_code=201)
async def add_webhook(
    vault: str, body: WebhookBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Add a webhook; the answer carries its signing secret, this once."""
    relay = relay_of(request)
    view, secret = await alerts.add_webhook(
        relay, relay.now(), vault=vault, url=body.url, events=body.events,
        min_severity=body.min_severity, approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return {**_json(view), "secret": secret}


@router.post("/emails", status_code=201)
async def add_email(
    vault: str, body: EmailBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Add an email target (sent through the relay's SMTP server)."""
    relay = relay_of(request)
    view = await alerts.add_email(
        relay, relay.now(), vault=vault, addresses=body.addresses, events=body.events,
        min_severity=body.min_severity, approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return _json(view)


@router.delete("/{target}")
async def remove(
    vault: str, target: TargetId, principal: Approver, request: Request
) -> dict[str, Any]:
    """Remove a target and the deliveries still waiting for it."""
    relay = relay_of(request)
    view = await alerts.remove(relay, relay.now(), vault=vault, target=target,
                               approver=principal, source_ip=source_ip(request))  # fmt: skip
    return _json(view)


@router.post("/{target}/enable")
async def enable(
    vault: str, target: TargetId, principal: Approver, request: Request
) -> dict[str, Any]:
    """Enable a target again (after it was disabled for failing); its waiting deliveries go."""
    relay = relay_of(request)
    view, changed = await alerts.enable(
        relay, relay.now(), vault=vault, target=target, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {**_json(view), "changed": changed}


@router.post("/{target}/test", status_code=202)
async def test(vault: str, target: TargetId, principal: Approver, request: Request) -> JSONResponse:
    """Queue a test event (action ``alert.test``) for this target only."""
    relay = relay_of(request)
    delivery = await alerts.test(relay, relay.now(), vault=vault, target=target,
                                 approver=principal, source_ip=source_ip(request))  # fmt: skip
    return JSONResponse({"target": target, "delivery": delivery}, status_code=202)
