"""Per-action consent answered in the browser console: a real `sealbox up`, a real `sealbox
consent request` process, Debian's Chromium with a virtual passkey as the vault's only approver.

The approvals page lists the consent request with the action and every line of the details as
the client signed them, verified in the browser (a bidi override in the details is shown as
U+FFFD, never applied); consenting signs a `sealbox.consent.v1` in the browser, which the CLI
verifies, and `sealbox consent verify` accepts offline.  Refusing reaches the CLI with its
reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium
from test_e2e_browser import World, log_in, set_up

pytestmark = pytest.mark.timeout(300)

PLAN = {"service": "api", "image": "api:1.4.2", "replicas": 3, "note": "ab\u202ecd"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def world(tmp_path: Path, browser: Any) -> Iterator[World]:
    w = World(tmp_path, browser)
    try:
        yield w
    finally:
        w.close()


def _profile(world: World) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (world.client_config / "profiles" / "default.json").read_text()
    )
    return document


def test_a_consent_given_in_the_browser_verifies_offline(world: World, tmp_path: Path) -> None:
    set_up(world)
    log_in(world)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    grant = tmp_path / "grant.json"
    asking = world.start(
        "consent", "request", "--action", "deploy", "--details", f"@{plan}", "--purpose",
        "release 1.4.2", "--ttl", "120", "--out", str(grant),
    )  # fmt: skip
    card = world.wait_card("Consent to deploy")
    text = str(card.text_content())
    assert "verified" in text
    assert "release 1.4.2" in text
    # Every line, as signed, laid out as JSON.
    assert '{\n  "image": "api:1.4.2",\n  "note"' in text
    assert '"replicas": 3' in text
    assert "\u202e" not in text  # the override is shown as U+FFFD, never applied
    assert "ab\ufffdcd" in text
    assert "120 s once given" in text
    assert "reported by server" in text
    # How often this requester asked lately: the relay's count, in the reported-by-server box
    # only, as on access request cards.
    listed = world.tab.page.evaluate(
        "async (v) => (await fetch(`/v1/vaults/${v}/consent-approvals`)).json()", world.vault
    )
    (entry,) = listed["consent_requests"]
    assert entry["reported_by_server"]["recent"] == {
        "window_seconds": 3600, "requests": 1, "denials": 0, "locked": False,
        "counted_up_to": 1000,
    }  # fmt: skip
    reported = card.locator(".reported-box")
    assert "reported by server (not verified)" in str(reported.text_content())
    assert reported.locator("dt", has_text="This requester").count() == 1
    assert "1 request in the last hour, 0 denied" in str(reported.text_content())
    assert text.count("in the last hour") == 1
    world.tab.screenshot("consent-approval")
    world.tab.screenshot("consent-approval", phone=True)
    card.get_by_role("button", name=re.compile("^Consent: deploy for")).click()
    world.tab.wait_status("Consented")
    out, err = asking.communicate(timeout=60)
    assert asking.returncode == 0, out + err

    profile = _profile(world)
    verify = world.cli("consent", "verify", str(grant), "--action", "deploy", "--details",
                       f"@{plan}", "--client", profile["client"]["id"], "--vault",
                       profile["fingerprint"])  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("valid: deploy for ")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**PLAN, "replicas": 30}))
    replay = world.cli("consent", "verify", str(grant), "--action", "deploy", "--details",
                       f"@{other}", "--client", profile["client"]["id"], "--vault",
                       profile["fingerprint"])  # fmt: skip
    assert replay.returncode == 5, replay.stderr
    world.tab.check_clean()


def test_a_refusal_in_the_browser_reaches_the_cli_with_its_reason(
    world: World, tmp_path: Path
) -> None:
    set_up(world)
    log_in(world)
    asking = world.start("consent", "request", "--action", "payment", "--details",
                         '{"to": "ACME", "cents": 125000}')  # fmt: skip
    card = world.wait_card("Consent to payment")
    card.get_by_label("Reason for a refusal (shown to the requester)").fill("not this vendor")
    card.get_by_role("button", name=re.compile("^Refuse consent: payment for")).click()
    world.tab.wait_status("Denied")
    out, err = asking.communicate(timeout=60)
    assert asking.returncode == 3, out + err
    assert "not this vendor" in err
    world.tab.check_clean()
