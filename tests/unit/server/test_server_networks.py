"""Networks and source addresses: strict parsing, matching, and forwarded headers."""

from __future__ import annotations

import pytest

from sealbox.server.config import Settings, parse_proxies
from sealbox.server.networks import (
    address_of,
    forwarded_source,
    inside,
    parse_network,
    parse_networks,
)

PROXIES = parse_networks(["10.9.0.0/16", "2001:db8:9::/48"])


def test_networks_are_parsed_strictly_and_canonically() -> None:
    assert str(parse_network(" 10.1.0.0/16 ")) == "10.1.0.0/16"
    assert str(parse_network("192.0.2.7")) == "192.0.2.7/32"
    assert str(parse_network("2001:DB8::/32")) == "2001:db8::/32"
    assert str(parse_network("::1")) == "::1/128"
    assert [str(n) for n in parse_networks(["10.0.0.0/8", "10.0.0.0/8 ", "::/0"])] == [
        "10.0.0.0/8", "::/0",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"did you mean 10\.1\.0\.0/16"):
        parse_network("10.1.2.3/16")
    for bad in ("", "10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0", "1" * 70, "10/8x"):
        with pytest.raises(ValueError, match="not a network"):
            parse_network(bad)


def test_addresses_match_their_own_family_and_mapped_ipv4_counts_as_ipv4() -> None:
    nets = parse_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert inside("10.2.3.4", nets)
    assert inside("::ffff:10.2.3.4", nets)  # an IPv4 client of a dual-stack listener
    assert inside("2001:db8::5", nets)
    assert not inside("11.0.0.1", nets)
    assert not inside("2001:db9::1", nets)
    assert not inside(None, nets)
    assert not inside("testclient", nets)  # not an address: in no network
    assert not inside("10.0.0.1", ())
    assert str(address_of("::ffff:192.0.2.1")) == "192.0.2.1"
    assert address_of("fe80::1%eth0") is None


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored() -> None:
    assert forwarded_source("203.0.113.9", ["10.1.2.3"], PROXIES) == "203.0.113.9"
    assert forwarded_source("203.0.113.9", ["10.1.2.3"], ()) == "203.0.113.9"
    assert forwarded_source(None, ["10.1.2.3"], PROXIES) is None


def test_from_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_source() -> None:
    assert forwarded_source("10.9.0.1", ["198.51.100.7"], PROXIES) == "198.51.100.7"
    # Two proxies: the inner one appended the outer one's address.
    assert forwarded_source("10.9.0.1", ["198.51.100.7, 10.9.0.2"], PROXIES) == "198.51.100.7"
    # A spoofed left-most entry (the client wrote it) is never the source.
    assert forwarded_source("10.9.0.1", ["10.1.1.1, 198.51.100.7"], PROXIES) == "198.51.100.7"
    assert forwarded_source("10.9.0.1", ["1.1.1.1", "198.51.100.7"], PROXIES) == "198.51.100.7"
    assert forwarded_source("2001:db8:9::1", ["[2001:db8:1::5]:443"], PROXIES) == "2001:db8:1::5"
    assert forwarded_source("10.9.0.1", ["198.51.100.7:5123"], PROXIES) == "198.51.100.7"
    assert forwarded_source("10.9.0.1", ["::ffff:198.51.100.7"], PROXIES) == "198.51.100.7"
    # Every hop a trusted proxy: the farthest one.
    assert forwarded_source("10.9.0.1", ["10.9.0.3, 10.9.0.2"], PROXIES) == "10.9.0.3"
    # No header, or an empty one: the proxy itself.
    assert forwarded_source("10.9.0.1", [], PROXIES) == "10.9.0.1"
    assert forwarded_source("10.9.0.1", [" , "], PROXIES) == "10.9.0.1"
    # Garbage where the walk needs an address: unknown (an allowlist refuses it).
    assert forwarded_source("10.9.0.1", ["198.51.100.7, unknown"], PROXIES) is None
    # Garbage left of the source is the sender's own business.
    assert forwarded_source("10.9.0.1", ["<script>, 198.51.100.7"], PROXIES) == "198.51.100.7"


def test_trusted_proxies_come_from_options_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    assert Settings.load(data_dir=str(tmp_path)).trusted_proxies == ()
    monkeypatch.setenv("SEALBOX_TRUSTED_PROXIES", "10.9.0.0/16, 2001:db8:9::/48")
    assert Settings.load(data_dir=str(tmp_path)).trusted_proxies == (
        "10.9.0.0/16", "2001:db8:9::/48",
    )  # fmt: skip
    loaded = Settings.load(data_dir=str(tmp_path), trusted_proxies=["192.0.2.1"])
    assert loaded.trusted_proxies == ("192.0.2.1/32",)
    with pytest.raises(ValueError, match="host bits"):
        parse_proxies(["10.9.1.0/16"])


def test_a_certificates_networks_hold_mapped_ipv4_and_skip_what_is_not_a_network() -> None:
    from sealbox.server.networks import certified_networks

    nets = certified_networks(("10.0.0.1/8", "not-a-network", "2001:db8::/32"))
    assert [str(n) for n in nets] == ["10.0.0.0/8", "2001:db8::/32"]
    assert inside("::ffff:10.1.1.1", nets)
    assert not inside("192.0.2.1", certified_networks(("junk",)))
