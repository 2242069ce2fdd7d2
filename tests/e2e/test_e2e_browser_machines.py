"""A machine approved in the browser console: a real `sealbox up`, a real `sealbox machine
register` process, Debian's Chromium with a virtual passkey as the vault's only approver.

The logins page lists the waiting machine with its key's safety code (computed in the
browser from the listed key), the patterns its token asked for and its source address as
reported by the relay; approving needs the registration code typed from the machine's output,
and signs a machine certificate whose items: scopes the relay checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium
from test_e2e_browser import World, set_up
from test_e2e_browser_pages import call
from test_e2e_machines import SEALBOX, Running, _check_identity_dir, _machine_env

pytestmark = pytest.mark.timeout(300)


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


def test_a_machine_is_approved_on_the_logins_page(world: World, tmp_path: Path) -> None:
    set_up(world)
    page = world.tab.open("/console/logins")
    page.locator("#no-machines").wait_for()
    # The token is made on the same page; it is shown once, with both ways to use it.
    page.fill("#machine-name", "api")
    page.fill("#machine-grants", "shop/dev/*")
    page.click("#make-token")
    world.tab.wait_status("Token made for api")
    token = str(page.locator("#token-value").text_content())
    assert token.startswith("sbx_bt_")
    assert f"SEALBOX_BOOTSTRAP_TOKEN={token} sealbox machine register --server {world.url}" in str(
        page.locator("#token-register").text_content()
    )
    assert f"/v1/bootstrap/{token}' | sh" in str(page.locator("#token-script").text_content())
    page.fill("#machine-grants", "shop/*")
    page.click("#make-token")
    world.tab.wait_status("pattern")  # the relay's words for a malformed pattern
    home = tmp_path / "machine"
    register = Running([*SEALBOX, "machine", "register", "--server", world.url],
                       _machine_env(home, SEALBOX_BOOTSTRAP_TOKEN=token))  # fmt: skip
    code = register.wait_for(r"Registration code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
    safety = register.wait_for(r"Machine key safety code:\s+([0-9 ]+\d)").group(1)

    card = page.locator(f'article[data-registration-code="{code}"]')
    card.wait_for(timeout=60_000)  # the approvals stream's device-requests event refreshes it
    text = str(card.text_content())
    assert safety in text
    assert "shop/dev/*" in text
    assert "reported by server" in text
    # Without the code typed from the machine's output, nothing is signed.
    card.get_by_role("button", name=f"Approve machine {code}").click()
    world.tab.wait_status("Type the registration code")
    page.fill("#user-code", code)
    world.tab.screenshot("machines")
    card.get_by_role("button", name=f"Approve machine {code}").click()
    world.tab.wait_status(f"Machine {code} approved")
    rc, out = register.finish()
    assert rc == 0, out
    identity = home / ".config" / "sealbox" / "identity"
    _check_identity_dir(identity)
    saved = json.loads((identity / "identity.json").read_text())
    status, client = call(world, "GET", f"/clients/{saved['client']['id']}")
    assert status == 200
    assert client["kind"] == "machine"
    assert client["grants"] == ["shop/dev/*"]
    world.tab.check_clean()
