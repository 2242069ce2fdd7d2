"""A CI enrollment made in the console, used by a real `sealbox ci login`, approved in the console.

The vault's only approver is a browser (Chromium with a virtual passkey): it makes the
delegation key and signs the enrollment there, shows the token once, verifies the enrolled
machine's chain when its read arrives ("Enrolled by enr_… (approver …)"), and revokes the
enrollment, which stops the machine at once.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import SEALBOX
from loop_support import env_for
from test_e2e_browser import World, browser, set_up
from test_e2e_browser_pages import store_in_browser

from sealbox.protocol.enrollment_token import parse_token

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(tmp_path: Path, browser: Any) -> Iterator[World]:
    w = World(tmp_path, browser)
    try:
        set_up(w)
        yield w
    finally:
        w.close()


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEALBOX, *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env, stdin=subprocess.DEVNULL)  # fmt: skip


def test_an_enrollment_made_in_the_console_enrols_a_run_approved_there(world: World) -> None:
    tab = world.tab
    store_in_browser(tab, "web/ci/db", [("password", "ci-pw-7")])
    page = tab.open("/console/clients")
    page.locator("#enroll-form").wait_for()
    # Limits a verifier would refuse are refused here, before anything is signed.
    page.fill("#enroll-projects", "web")
    page.fill("#enroll-items", "shop/ci/*")
    page.click("#enroll-button")
    assert "outside the projects web" in tab.wait_status("outside")
    page.fill("#enroll-items", "web/ci/*")
    page.fill("#enroll-max-uses", "1")
    page.click("#enroll-button")
    tab.wait_status("made: copy its token now")
    token = page.locator("#enroll-token-text").inner_text().strip()
    parsed = parse_token(token)
    assert parsed.server == world.url
    assert parsed.vault == world.vault
    card = page.locator(f'article[data-enrollment="{parsed.enrollment}"]')
    shown = card.inner_text()
    # The limits shown are the statement's, verified in this browser.
    assert "0 of 1" in shown
    assert "web/ci/*" in shown
    assert re.search(r"apv_[a-z2-7]{26}", shown)
    tab.screenshot("enrollments")

    runner = world.tmp / "runner"
    identity = runner / "identity"
    login = _run("ci", "login", "--out", str(identity),
                 env=env_for(runner, SEALBOX_ENROLLMENT_TOKEN=token))  # fmt: skip
    assert login.returncode == 0, login.stderr
    reading = subprocess.Popen(
        [*SEALBOX, "read", "sealbox://web/ci/db/password"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        env=env_for(runner, SEALBOX_IDENTITY=str(identity)),
    )  # fmt: skip
    try:
        request = world.wait_card("Read request")
        shown = request.inner_text()
        assert f"Enrolled by\n{parsed.enrollment} (approver Ana's phone (apv_" in shown, shown
        request.get_by_role("button", name=re.compile("^Approve")).click()
        tab.wait_status("Approved")
        out, err = reading.communicate(timeout=60)
    finally:
        if reading.poll() is None:
            reading.kill()
            reading.communicate(timeout=10)
    assert reading.returncode == 0, err
    assert out.rstrip("\n") == "ci-pw-7"

    # Its one use is spent; then revoked in the console, its machine stops at once.
    again = _run("ci", "login", "--out", str(runner / "again"),
                 env=env_for(runner, SEALBOX_ENROLLMENT_TOKEN=token))  # fmt: skip
    assert again.returncode == 1
    assert "all the 1 machines it may" in again.stderr
    page = tab.open("/console/clients")
    page.get_by_role("button", name=f"Revoke enrollment {parsed.enrollment}").click()
    tab.wait_status(r"revoked; 1 machine\(s\) disabled")
    refused = _run("read", "sealbox://web/ci/db/password",
                   env=env_for(runner, SEALBOX_IDENTITY=str(identity)))  # fmt: skip
    assert refused.returncode != 0
    assert "ci-pw-7" not in refused.stdout
    tab.check_clean()
