"""The console's Policies page sets every policy axis, and an approval card shows the policy
that applies (Debian's Chromium with a virtual passkey, a real `sealbox up` and the CLI)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import World, browser, log_in, set_up, store_in_cli
from test_e2e_browser_pages import open_page, policies_of

from sealbox.protocol.policy_rules import DAYS

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(tmp_path: Path, browser: Any) -> Iterator[World]:
    w = World(tmp_path, browser)
    try:
        set_up(w)
        log_in(w)
        yield w
    finally:
        w.close()


def test_the_policies_page_sets_every_axis_and_a_card_shows_it(world: World) -> None:
    tab = world.tab
    store_in_cli(world, "app/prod/db", "password", "policy-axes-browser-value")
    page = open_page(tab, "policies")
    me = page.locator('meta[name="sealbox-approver"]').get_attribute("content")

    def save(**fields: str) -> str:
        page.get_by_label("Pattern (project/environment/item", exact=False).fill("app/prod/*")
        page.locator(f'input.policy-approver[value="{me}"]').set_checked(True)
        page.get_by_label("How many of them must approve").fill("1")
        page.locator("#policy-hours").fill(fields.get("hours", ""))
        page.locator("#policy-cidrs").fill(fields.get("cidrs", ""))
        page.locator("#policy-max-reads").fill(fields.get("max_reads", ""))
        page.locator("#policy-destroy-at").fill(fields.get("destroy_at", ""))
        page.locator("#policy-rotate-after").fill(fields.get("rotate_after", ""))
        page.get_by_role("button", name="Save the policy").click()
        page.wait_for_function("() => !document.querySelector('#policy-save').disabled")
        return tab.status()

    # Bad input: a clear error from the page or the relay, and nothing stored.
    assert "not a time window" in save(hours="mon-fri 9-17 UTC")
    assert "is not a day" in save(hours="mon-fry 09:00-17:00 UTC")  # the relay's strict parser
    assert "N/PERIOD" in save(max_reads="10 per hour")
    assert "at least 1" in save(rotate_after="0")
    assert policies_of(world) == {}

    today = DAYS[datetime.now(UTC).weekday()]
    later = datetime.fromtimestamp(time.time() + 86400 * 30).strftime("%Y-%m-%dT%H:%M")
    said = save(hours=f"{today} 00:00-24:00 UTC\nsat,sun 10:00-12:00 Europe/Berlin",
                cidrs="127.0.0.0/8", max_reads="100/60m", destroy_at=later,
                rotate_after="50")  # fmt: skip
    assert said.startswith("Saved: app/prod/*"), said
    stored = policies_of(world)["app/prod/*"]
    assert stored["hours"][1] == "sat-sun 10:00-12:00 Europe/Berlin"  # canonical
    assert (stored["max_reads"], stored["rotate_after"], stored["cidrs"]) == (
        "100/h", 50, ["127.0.0.0/8"],
    )  # fmt: skip
    assert stored["destroy_at"] > time.time() + 86400 * 29
    assert stored["signed"] is False
    row = page.locator('#policies tbody tr[data-pattern="app/prod/*"]')
    conditions = row.locator("td.conditions").inner_text()
    assert "at most 100/h per item" in conditions
    assert "rotate after 50 releases" in conditions
    assert "not signed" in conditions
    tab.screenshot("policies-axes")

    # Editing fills every field back.
    page.get_by_role("button", name="Edit policy app/prod/*").click()
    assert page.input_value("#policy-max-reads") == "100/h"
    assert page.input_value("#policy-rotate-after") == "50"
    assert "Europe/Berlin" in page.input_value("#policy-hours")

    # A read request's card shows the policy that applies, as reported by the server.
    reading = world.start("read", "sealbox://app/prod/db/password")
    try:
        card = world.wait_card("Read request")
        policy = card.locator("ul.policies li").first
        policy.wait_for()
        text = policy.inner_text()
        assert text.startswith("app/prod/db: app/prod/*: 1 of 1"), text
        assert "at most 100/h" in text
        assert "not signed" in text
        tab.screenshot("approval-policy")
        card.get_by_role("button", name=re.compile("^Approve")).click()
        tab.wait_status("Approved")
        out, err = reading.communicate(timeout=60)
    finally:
        if reading.poll() is None:
            reading.kill()
            reading.communicate()
    assert reading.returncode == 0, err
    assert out.strip() == "policy-axes-browser-value"
