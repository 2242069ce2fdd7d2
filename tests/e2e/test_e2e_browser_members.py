"""Teams in the console: an invited login approved on the logins page, roles set and revoked.

A real `sealbox up` whose only approver is a browser (Chromium, a virtual passkey with PRF);
the person runs a real `sealbox login --invite`.  Everything the browser signs (the member's
certificate, the new one a role change makes) is signed there, with the passkey-held key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_e2e_browser import World, browser, set_up
from test_e2e_browser_pages import client_card, open_page, relay_get
from test_e2e_login import Login

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared by name

pytestmark = pytest.mark.timeout(300)


def test_an_invited_member_is_approved_and_its_role_changed_in_the_console(
    tmp_path: Path, browser: Any
) -> None:
    world = World(tmp_path, browser)
    try:
        set_up(world)
        tab = world.tab
        # The logins page makes the invite; the code is shown there once, with the command.
        page = open_page(tab, "logins")
        page.get_by_label("Project", exact=True).fill("sh/op")
        page.get_by_role("button", name="Make an invite").click()
        tab.wait_status("A project is letters")
        assert relay_get(world, "/invites")["invites"] == []
        page.get_by_label("Project", exact=True).fill("shop")
        page.get_by_label("Role", exact=True).select_option("writer")
        page.get_by_role("button", name="Make an invite").click()
        tab.wait_status("Invite to shop as writer made")
        command = str(page.locator("#invite-code").text_content())
        found = re.fullmatch(r"sealbox login --server (\S+) --invite (sbx_inv_\S+)", command)
        assert found, command
        assert found.group(1) == world.url
        [listed] = relay_get(world, "/invites")["invites"]
        assert (listed["project"], listed["role"], "code" in listed) == ("shop", "writer", False)
        tab.screenshot("logins-invite")
        login = Login(world.relay, world.client_config, "--invite", found.group(2))  # type: ignore[arg-type]
        url = login.wait_for(r"Approve at:\s+(\S+)").group(1)
        code = login.wait_for(r"User code:\s+([A-Z]{4}-[A-Z]{4})").group(1)
        login.wait_for(r"Invited as:\s+writer of project shop")

        # The logins page shows the role and the scopes it will sign, and asks for no grant.
        page = tab.page
        page.goto(url)
        card = page.locator(f'article[data-user-code="{code}"]')
        card.wait_for()
        text = str(card.text_content())
        assert "writer of project shop" in text
        assert "items:shop/*/* read role:shop:writer write" in text
        assert card.locator("input").count() == 0  # no grant field
        page.fill("#user-code", code)
        tab.screenshot("logins-invited")
        card.get_by_role("button", name=f"Approve login {code}").click()
        tab.wait_status(f"Login {code} approved")
        rc, out, err = login.finish()
        assert rc == 0, out + err
        assert "role:shop:writer" in out
        client = re.search(r"Logged in as (cli_\w+)", out)
        assert client
        client_id = client.group(1)
        assert relay_get(world, f"/clients/{client_id}/grants")["grants"] == []

        # The clients page reads the roles from the certificate it verifies, and changes them.
        page = open_page(tab, "clients")
        card, shown = client_card(page)
        assert shown["Roles"].split()[:2] == ["shop:", "writer"]
        card.get_by_label("Project to give bo@laptop a role in").fill("shop")
        role = card.get_by_label("Role (no role reads a value: reading is always a release)")
        role.select_option("viewer")
        card.get_by_role("button", name=f"Set bo@laptop ({client_id})'s role").click()
        tab.wait_status("bo@laptop is now viewer of shop")
        [member] = relay_get(world, "/members")["members"]
        assert (member["client_id"], member["roles"]) == (client_id, {"shop": ["viewer"]})
        viewing = world.cli("ls")  # a viewer still lists the project (empty here)
        assert viewing.returncode == 0, viewing.stderr
        events = relay_get(world, "/audit?action=client.recertified")["events"]
        assert events[-1]["detail"]["roles_after"] == {"shop": ["viewer"]}

        # Revoking the last role re-certifies without any scope and disables the client.
        card, _ = client_card(page)
        card.get_by_role("button", name=f"Revoke bo@laptop ({client_id})'s roles in shop").click()
        tab.wait_status("holds no role any more and is disabled")
        assert relay_get(world, "/members")["members"] == []
        [listed] = relay_get(world, "/clients")["clients"]
        assert listed["disabled"] is True
        gone = world.cli("whoami")
        assert gone.returncode == 6
        tab.check_clean()
    finally:
        world.close()
