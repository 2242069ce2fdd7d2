"""Which webhook URLs an approver may add: no loopback, private, link-local or reserved address
(however it is spelled), only hosts httpx can send to; the operator's allowed networks."""

from __future__ import annotations

import pytest

from sealbox.server.errors import Invalid
from sealbox.server.services.alerts import check_url

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:5432/",
    "http://[::1]:6379/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://224.0.0.1/",
    "http://239.255.255.250:1900/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_non_public_literal_address_is_refused(url: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_url(url)
    assert refused.value.code == "webhook_address_refused"


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/sealbox", "https://93.184.216.34/hook",
            "https://[2606:4700::1111]/hook", "https://b\u00fccher.example/hook"],
)  # fmt: skip
def test_public_addresses_and_names_pass(url: str) -> None:
    assert check_url(url) == url


def test_an_allowed_network_lets_its_addresses_through_and_no_others() -> None:
    assert check_url("http://127.0.0.1:8080/hook", ("127.0.0.0/8",))
    assert check_url("http://0x7f000001:8080/hook", ("127.0.0.0/8",))
    assert check_url("http://10.1.2.3/hook", ("10.0.0.0/8", "127.0.0.0/8"))
    with pytest.raises(Invalid):
        check_url("http://169.254.169.254/", ("127.0.0.0/8",))
    with pytest.raises(Invalid):
        check_url("http://[::1]/", ("127.0.0.0/8",))


@pytest.mark.parametrize(
    "url", ["http://exa\u0301mple\u200b.com/", "http://xn--/", "http://0177.0.0.1/"],
)  # fmt: skip
def test_a_url_httpx_would_refuse_is_refused_when_added(url: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_url(url)
    assert refused.value.code == "invalid_webhook_url"
