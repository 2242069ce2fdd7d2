"""Identifiers, item paths, field names and sealbox:// references."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbox.errors import MalformedInput
from sealbox.protocol import ids

KINDS = [ids.VAULT, ids.APPROVER, ids.CLIENT, ids.ENROLLMENT, ids.ITEM, ids.JTI]


@pytest.mark.parametrize("kind", KINDS)
def test_new_id_has_kind_prefix_and_26_base32_characters(kind: str) -> None:
    value = ids.new_id(kind)
    assert re.fullmatch(rf"{kind}_[a-z2-7]{{26}}", value)
    assert ids.check_id(value, kind) == value


@pytest.mark.parametrize("kind", KINDS)
def test_new_id_is_fresh_each_time(kind: str) -> None:
    assert len({ids.new_id(kind) for _ in range(20)}) == 20


def test_new_id_uses_the_injected_randomness() -> None:
    assert ids.new_id(ids.ITEM, lambda n: bytes(n)) == "itm_" + "a" * 26
    assert ids.new_id(ids.ITEM, lambda n: b"\xff" * n) == "itm_" + "7" * 25 + "4"


def test_new_id_refuses_unknown_kind_and_short_randomness() -> None:
    with pytest.raises(ValueError, match="kind"):
        ids.new_id("usr")
    with pytest.raises(ValueError, match="length"):
        ids.new_id(ids.ITEM, lambda n: bytes(n - 1))


@given(kind=st.sampled_from(KINDS), raw=st.binary(min_size=16, max_size=16))
def test_every_new_id_checks_as_its_kind_and_no_other(kind: str, raw: bytes) -> None:
    value = ids.new_id(kind, lambda n: raw[:n])
    assert ids.check_id(value, kind) == value
    for other in KINDS:
        if other != kind:
            with pytest.raises(MalformedInput):
                ids.check_id(value, other)


GOOD_APV = "apv_" + "abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    "value",
    [
        "cli_abcdefghijklmnopqrstuvwxyz",  # another kind
        "APV_abcdefghijklmnopqrstuvwxyz",  # uppercase prefix
        "apv_ABCDEFGHIJKLMNOPQRSTUVWXYZ",  # uppercase body
        "apv_abcdefghijklmnopqrstuvwxy",  # 25 characters
        "apv_abcdefghijklmnopqrstuvwxyza",  # 27 characters
        "apv_abcdefghijklmnopqrstuvwx01",  # 0 and 1 are not base32
        "apv-abcdefghijklmnopqrstuvwxyz",  # wrong separator
        "usr_abcdefghijklmnopqrstuvwxyz",  # unknown kind
        " apv_abcdefghijklmnopqrstuvwxyz",
        "apv_abcdefghijklmnopqrstuvwxyz\n",
        "",
        None,
        42,
        b"apv_abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_check_id_rejects(value: object) -> None:
    with pytest.raises(MalformedInput, match="apv_ identifier"):
        ids.check_id(value, ids.APPROVER)


def test_check_id_accepts_a_well_formed_id_and_names_what_in_the_error() -> None:
    assert ids.check_id(GOOD_APV, ids.APPROVER) == GOOD_APV
    with pytest.raises(MalformedInput, match=r"^key set approver:"):
        ids.check_id("nope", ids.APPROVER, what="key set approver")


@pytest.mark.parametrize(
    "path",
    ["app/prod/db", "a/b/c", "A-1/prod.eu/db_main", "x" * 64 + "/y/z", "9/8/7", "a.b/c-d/e_"],
)
def test_check_path_accepts(path: str) -> None:
    assert ids.check_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "app/prod",  # two segments
        "app/prod/db/password",  # four segments
        "app",
        "",
        "/app/prod/db",
        "app/prod/db/",
        "app//db",  # empty segment
        "app/../db",  # dot-dot
        "../prod/db",
        "app/prod/..",
        "app/./db",
        ".hidden/prod/db",
        "-app/prod/db",
        "_app/prod/db",
        "app/pr od/db",  # white space
        "app/prod/d$b",
        "app/prod/db\n",
        "app/prod/d\u00e9",  # non-ASCII letter
        "app\\prod\\db",
        "x" * 65 + "/y/z",  # segment too long
        None,
        ["app", "prod", "db"],
    ],
)
def test_check_path_rejects(path: object) -> None:
    with pytest.raises(MalformedInput):
        ids.check_path(path)


@pytest.mark.parametrize("name", ["password", "user", "API_KEY", "tls.crt", "a", "0", "x" * 64])
def test_check_field_name_accepts(name: str) -> None:
    assert ids.check_field_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".env", "a/b", "a b", "x" * 65, None, 3])
def test_check_field_name_rejects(name: object) -> None:
    with pytest.raises(MalformedInput, match="field name"):
        ids.check_field_name(name)


def test_parse_reference_without_field() -> None:
    ref = ids.parse_reference("sealbox://app/prod/db")
    assert ref == ids.Reference(path="app/prod/db", field=None)
    assert str(ref) == "sealbox://app/prod/db"


def test_parse_reference_with_field() -> None:
    ref = ids.parse_reference("sealbox://app/prod/db/password")
    assert ref.path == "app/prod/db"
    assert ref.field == "password"
    assert str(ref) == "sealbox://app/prod/db/password"


@pytest.mark.parametrize(
    "text",
    [
        "https://app/prod/db",  # another scheme
        "sealbox:/app/prod/db",
        "SEALBOX://app/prod/db",
        "sealbox//app/prod/db",
        "app/prod/db",
        "sealbox://app/prod",  # too few parts
        "sealbox://app/prod/db/password/extra",  # too many parts
        "sealbox://app/prod/db/",  # empty field
        "sealbox://app/../db",
        "sealbox://app/prod/db/..",
        "sealbox://app/prod/db/pass word",
        "sealbox://",
        None,
        7,
    ],
)
def test_parse_reference_rejects(text: object) -> None:
    with pytest.raises(MalformedInput):
        ids.parse_reference(text)


segment = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(
    project=segment,
    env=segment,
    item=segment,
    field=st.none() | segment,
)
def test_reference_round_trips_through_str(
    project: str, env: str, item: str, field: str | None
) -> None:
    ref = ids.Reference(path=f"{project}/{env}/{item}", field=field)
    assert ids.parse_reference(str(ref)) == ref
