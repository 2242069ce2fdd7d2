"""A canary in the browser console: the approval card says CANARY, and a frozen project is
lifted from the approvals page.  A real `sealbox up` and CLI, Debian's Chromium with a
virtual passkey as the vault's only approver.

The card's banner comes from the manifest verified in the browser.  Approving still hands
the value to the CLI; the relay then freezes the project, which the approvals page lists with
an Unfreeze button that lifts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium
from test_e2e_browser import World, log_in, set_up

pytestmark = pytest.mark.timeout(300)

BAIT = "AKIA-browser-canary-2b7c"


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


def _frozen(world: World) -> list[dict[str, Any]]:
    found: dict[str, Any] = world.tab.page.evaluate(
        "async (v) => (await fetch(`/v1/vaults/${v}/projects/frozen`)).json()", world.vault
    )
    return list(found["frozen"])


def test_the_card_says_canary_and_the_console_unfreezes(world: World) -> None:
    set_up(world)
    log_in(world)
    bait = world.tmp / "bait"
    bait.write_text(BAIT)
    storing = world.start("store", "sealbox://app/prod/aws-root", "--type", "canary",
                          "--field", f"key=@{bait}")  # fmt: skip
    world.wait_card("Store request").get_by_role("button", name=re.compile("^Approve")).click()
    world.tab.wait_status("Approved")
    out, err = storing.communicate(timeout=60)
    assert storing.returncode == 0, out + err

    reading = world.start("read", "sealbox://app/prod/aws-root/key")
    card = world.wait_card("Read request")
    banner = card.locator(".canary-banner")
    assert "CANARY: this request reads app/prod/aws-root." in str(banner.text_content())
    assert banner.get_attribute("role") == "alert"
    world.tab.screenshot("canary-approval")
    card.get_by_role("button", name=re.compile("^Approve")).click()
    world.tab.wait_status("Approved")
    out, err = reading.communicate(timeout=60)
    assert reading.returncode == 0, out + err
    assert out == BAIT + "\n"  # the reader keeps going

    [held] = _frozen(world)
    assert held["project"] == "app"
    assert held["cause"] == "canary"
    world.tab.open("/console/approvals")
    frozen = world.tab.page.locator('#frozen [data-project="app"]')
    frozen.wait_for()
    assert "app is FROZEN" in str(frozen.text_content())
    assert "a canary was released" in str(frozen.text_content())
    world.tab.screenshot("canary-frozen")
    frozen.get_by_role("button", name="Unfreeze app").click()
    world.tab.wait_status("Unfroze app")
    assert _frozen(world) == []
    assert world.tab.page.locator("#frozen [data-project]").count() == 0
    world.tab.check_clean()
