"""The relay's OpenAPI document: valid, and declaring who may call each operation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from sealbox.server.auth.openapi import BEARER, SESSION, SIGNATURE

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["sqlite"])]

#: Operations under a vault that need no transport authentication.  Appending a
#: directory link is authenticated by the link's own approver signature instead.
ANONYMOUS = {
    ("post", "/v1/vaults/{vault}/setup"),
    ("get", "/v1/vaults/{vault}/directory"),
    ("post", "/v1/vaults/{vault}/directory"),
    ("post", "/v1/vaults/{vault}/pairing-requests"),
    ("get", "/v1/vaults/{vault}/pairing-requests/{pairing_id}"),
    # The console's passkey ceremonies, which start sessions.
    ("post", "/v1/vaults/{vault}/console/setup/options"),
    ("post", "/v1/vaults/{vault}/console/setup"),
    ("post", "/v1/vaults/{vault}/console/pairing/options"),
    ("post", "/v1/vaults/{vault}/console/pairing"),
    ("post", "/v1/vaults/{vault}/console/signin/options"),
    ("post", "/v1/vaults/{vault}/console/signin"),
}
#: A machine registering, and polling its registration: signed by the key it registers
#: (checked against that key, not a current client's), declared as a signature alone.
OWN_KEY = {
    ("post", "/v1/vaults/{vault}/machine-registrations"),
    ("get", "/v1/vaults/{vault}/machine-registrations/{client_id}"),
}
EITHER = [{SIGNATURE: []}, {BEARER: []}, {SESSION: []}]
SIGNED = [{SIGNATURE: []}, {SESSION: []}]  # an approver: signed, or its console session
SESSION_ONLY = [{SESSION: []}]
SIGNATURE_ONLY = [{SIGNATURE: []}]  # a CI runner: signed by an enrollment's delegation key
ENROLLMENT_SIGNED = {
    ("get", "/v1/vaults/{vault}/enrollments/{enrollment_id}/statement"),
    ("post", "/v1/vaults/{vault}/enrollments/{enrollment_id}/machines"),
}


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def test_a_machine_signs_its_registration_with_the_key_it_registers(
    client: httpx.AsyncClient,
) -> None:
    operations = _operations(await _document(client))
    for key in sorted(OWN_KEY):
        assert operations[key]["security"] == [{SIGNATURE: []}], key


async def test_document_passes_an_independent_validator(client: httpx.AsyncClient) -> None:
    validate(await _document(client))


async def test_both_schemes_are_declared(client: httpx.AsyncClient) -> None:
    schemes = (await _document(client))["components"]["securitySchemes"]
    assert schemes[BEARER]["type"] == "http"
    assert schemes[BEARER]["scheme"] == "bearer"
    assert (schemes[SIGNATURE]["type"], schemes[SIGNATURE]["in"]) == ("apiKey", "header")
    assert schemes[SIGNATURE]["name"] == "Signature"
    assert "RFC 9421" in schemes[SIGNATURE]["description"]
    assert "docs/protocol.md" in schemes[SIGNATURE]["description"]
    assert (schemes[SESSION]["type"], schemes[SESSION]["in"]) == ("apiKey", "cookie")
    assert schemes[SESSION]["name"] == "sealbox_console"


async def test_every_vault_operation_but_the_anonymous_ones_declares_security(
    client: httpx.AsyncClient,
) -> None:
    operations = _operations(await _document(client))
    vault_operations = {key for key in operations if key[1].startswith("/v1/vaults/{vault}/")}
    assert vault_operations >= ANONYMOUS
    for key in sorted(vault_operations - ANONYMOUS - OWN_KEY - ENROLLMENT_SIGNED):
        assert operations[key].get("security") in (EITHER, SIGNED, SESSION_ONLY), key
    for key in sorted(ENROLLMENT_SIGNED):
        assert operations[key].get("security") == SIGNATURE_ONLY, key
    for key in sorted(ANONYMOUS):
        assert "security" not in operations[key], key
    # Outside vaults: discovery, health and the OAuth endpoints take no credentials here.
    for key in [("get", "/v1/vault"), ("get", "/healthz"), ("post", "/oauth/token"),
                ("get", "/.well-known/oauth-authorization-server"),
                # A share link is its own credential (a machine's is refused, not asked for).
                ("get", "/v1/shares/{share_id}"),
                ("post", "/v1/shares/{share_id}/open")]:  # fmt: skip
        assert "security" not in operations[key], key
    assert "security" not in await _document(client)  # no blanket requirement


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # Anyone: a signature, a bearer token or a console session.
        ("get", "/v1/vaults/{vault}/whoami", EITHER),
        ("get", "/v1/vaults/{vault}/items", EITHER),
        # Clients: machine clients sign, people's CLIs use a session.
        ("post", "/v1/vaults/{vault}/access-requests", EITHER),
        ("post", "/v1/vaults/{vault}/shares", EITHER),
        # Approvers sign, or use a console session; the audit routes wrap the approver check.
        ("post", "/v1/vaults/{vault}/access-requests/{request_id}/release", SIGNED),
        ("get", "/v1/vaults/{vault}/clients", SIGNED),
        ("get", "/v1/vaults/{vault}/audit", SIGNED),
        ("get", "/v1/vaults/{vault}/audit/stream", SIGNED),
        # The console's own calls: its session only.
        ("get", "/v1/vaults/{vault}/console/session", SESSION_ONLY),
        ("post", "/v1/vaults/{vault}/console/signout", SESSION_ONLY),
    ],
)
async def test_requirement_follows_the_dependency(
    client: httpx.AsyncClient, method: str, path: str, expected: list[dict[str, list[str]]]
) -> None:
    assert _operations(await _document(client))[(method, path)]["security"] == expected
