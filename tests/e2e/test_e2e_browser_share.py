"""A share link opened in Debian's Chromium: the CLI creates it, the page decrypts it.

The relay and `sealbox share create` are real processes; the browser reaches the
relay through a recording proxy, so the test also sees that the browser never
sends the fragment (the key) anywhere.  Loading the page spends nothing (a link
preview's fetch does not burn the share); the Reveal button does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from browser_support import chromium, console
from loop_support import Deployment, outputs
from test_e2e_share import RecordingProxy, assert_key_never_sent

from sealbox.cli.exits import OK
from sealbox.protocol.shares import parse_link

VALUE = "db-password: s3cr3t ✓\nsecond line"
PASSPHRASE = "lighthouse keeper 42"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("browser-share"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as found:
        yield found


def _create(d: Deployment, *args: str, **env: str) -> str:
    done = d.cli("share", "create", *args, stdin=VALUE, **env)
    assert done.returncode == OK, outputs(done)
    return done.stdout.strip()


def test_the_page_decrypts_a_share_made_by_the_cli(d: Deployment, browser: object) -> None:
    proxy = RecordingProxy(int(d.url.rsplit(":", 1)[1]))
    try:
        link = _create(d)
        share = parse_link(link)
        through_proxy = link.replace(d.url, proxy.url)
        with console(browser, proxy.url) as tab:
            page = tab.open(through_proxy.removeprefix(proxy.url))
            tab.wait_status(r"Available until")
            # Loaded and run: nothing is spent until Reveal.
            assert httpx.get(f"{d.url}/v1/shares/{share.share_id}").status_code == 200
            tab.screenshot("share-before-reveal")
            page.click("#reveal")
            tab.wait_status(r"^Revealed\.$")
            assert page.input_value("#value") == VALUE
            # The spent link's key is out of the address bar (and so of history).
            assert "#" not in page.url
            tab.screenshot("share-revealed")
            tab.check_clean()
            # Reloading shows that it is spent.
            page.reload()
            tab.wait_status(r"opened already")
            assert page.locator("#reveal").is_disabled()
        time.sleep(0.2)
        assert_key_never_sent(proxy.received(), link, VALUE)
        assert f"GET /s/{share.share_id} HTTP/1.1".encode() in proxy.received()
    finally:
        proxy.close()


def test_the_page_asks_for_the_passphrase(d: Deployment, browser: object) -> None:
    right = _create(d, "--passphrase", SEALBOX_SHARE_PASSPHRASE=PASSPHRASE)
    wrong = _create(d, "--passphrase", SEALBOX_SHARE_PASSPHRASE=PASSPHRASE)
    with console(browser, d.url) as tab:
        page = tab.open(right.removeprefix(d.url))
        tab.wait_status(r"Available until")
        assert page.locator("#passphrase").is_visible()
        page.fill("#passphrase", PASSPHRASE)
        tab.screenshot("share-passphrase")
        page.click("#reveal")
        tab.wait_status(r"^Revealed\.$")
        assert page.input_value("#value") == VALUE
        tab.check_clean()
    with console(browser, d.url) as tab:
        page = tab.open(wrong.removeprefix(d.url))
        tab.wait_status(r"Available until")
        page.fill("#passphrase", "not it at all")
        page.click("#reveal")
        tab.wait_status(r"wrong passphrase: the share link is destroyed")
        assert page.locator("#shown").is_hidden()
        tab.screenshot("share-destroyed")
        tab.check_clean()
    gone = httpx.get(f"{d.url}/v1/shares/{parse_link(wrong).share_id}")
    assert gone.status_code == 410


def test_a_cut_link_says_so(d: Deployment, browser: object) -> None:
    link = _create(d)
    with console(browser, d.url) as tab:
        tab.open(link.removeprefix(d.url).split("#")[0])
        tab.wait_status(r"missing or cut")
        tab.check_clean()
    assert httpx.get(f"{d.url}/v1/shares/{parse_link(link).share_id}").status_code == 200
