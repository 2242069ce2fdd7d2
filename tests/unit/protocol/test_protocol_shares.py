"""Share ids, links, TTLs (sealbox.protocol.shares): one spelling each, the rest refused."""

from __future__ import annotations

import pytest

from sealbox.crypto.encoding import b64u_encode
from sealbox.errors import InvalidInput, MalformedInput
from sealbox.protocol import shares

KEY = bytes(range(32))
SHARE_ID = "shr_aaaaaaaaaaaaaaaaaaaaaaaaaa"


def test_ids() -> None:
    made = shares.new_share_id()
    assert shares.check_share_id(made) == made
    assert shares.new_share_id(lambda n: b"\0" * n) == SHARE_ID
    for bad in ("shr_" + "a" * 25, "shr_" + "a" * 27, "SHR_" + "a" * 26, "itm_" + "a" * 26,
                "shr_" + "A" * 26, "shr_" + "a" * 25 + "b", 7, None):  # fmt: skip
        with pytest.raises(MalformedInput):
            shares.check_share_id(bad)
    with pytest.raises(ValueError, match="wrong length"):
        shares.new_share_id(lambda n: b"\0" * (n - 1))


def test_links_round_trip_and_never_print_the_key() -> None:
    link = shares.ShareLink("https://relay.example:8443/base", SHARE_ID, KEY)
    assert link.url == f"https://relay.example:8443/base/s/{SHARE_ID}#{b64u_encode(KEY)}"
    assert shares.parse_link(link.url) == link
    assert shares.parse_link(f"  {link.url}\n") == link
    assert b64u_encode(KEY) not in repr(link)


@pytest.mark.parametrize(
    "text",
    [
        f"ftp://relay/s/{SHARE_ID}#{b64u_encode(KEY)}",
        f"/s/{SHARE_ID}#{b64u_encode(KEY)}",
        f"https://relay/s/{SHARE_ID}",
        f"https://relay/s/{SHARE_ID}#",
        f"https://relay/s/{SHARE_ID}#{b64u_encode(KEY)[:-1]}",
        f"https://relay/s/{SHARE_ID}#{b64u_encode(KEY)}A",
        f"https://relay/s/{SHARE_ID}#{b64u_encode(KEY)[:-1]}h",  # non-canonical trailing bits
        f"https://relay/s/{SHARE_ID}?x=1#{b64u_encode(KEY)}",
        f"https://user@relay/s/{SHARE_ID}#{b64u_encode(KEY)}",
        f"https://relay/x/{SHARE_ID}#{b64u_encode(KEY)}",
        f"https://relay/s/{SHARE_ID}/#{b64u_encode(KEY)}",
        f"https://relay/s/shr_short#{b64u_encode(KEY)}",
    ],
)
def test_links_are_parsed_strictly(text: str) -> None:
    with pytest.raises(MalformedInput):
        shares.parse_link(text)


def test_ttls() -> None:
    assert shares.parse_ttl("60") == 60
    assert shares.parse_ttl("90s") == 90
    assert shares.parse_ttl("15m") == 900
    assert shares.parse_ttl("1h") == 3600
    assert shares.parse_ttl("7d") == 7 * 86400
    for bad in ("59s", "8d", "0", "-1h", "1.5h", "1w", "", "1 h", "01h", "h"):
        with pytest.raises(InvalidInput):
            shares.parse_ttl(bad)
    with pytest.raises(InvalidInput):
        shares.check_ttl(True)  # type: ignore[arg-type]
