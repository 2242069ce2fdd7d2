"""The strict payload reader and the display-text rules."""

from __future__ import annotations

from typing import Any

import pytest

from sealbox.errors import MalformedInput
from sealbox.protocol._reader import (
    MAX_INT,
    MAX_LIST,
    MAX_TEXT,
    Reader,
    bytes_map,
    check_display_text,
    nested_bytes_map,
)

DIGEST = "sha256:" + "A" * 43


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "Ana's laptop",
        "caf\u00e9 \u65e5\u672c \U0001f511",
        "tab-free text with punctuation: ;,./<>?",
        "x" * MAX_TEXT,
    ],
)
def test_display_text_accepts_ordinary_text(text: str) -> None:
    assert check_display_text(text, "t") == text


@pytest.mark.parametrize(
    "bad",
    [
        "\x1b",  # ESC: starts ANSI sequences
        "\x00",  # NUL
        "\x7f",  # DEL
        "\x9b",  # C1 CSI
        "\x85",  # C1 NEL
        "\n",
        "\r",
        "\t",
        "\u202a",  # LRE
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",  # RLO
        "\u2066",  # LRI
        "\u2067",
        "\u2068",
        "\u2069",  # PDI
        "\u200e",  # LRM
        "\u200f",  # RLM
        "\u061c",  # ALM
        "\u2028",  # line separator: renders as a line break
        "\u2029",  # paragraph separator
        "\u200b",  # zero-width space
        "\ufeff",  # zero-width no-break space
        "\U000e0041",  # invisible tag character
        "\u3164",  # Hangul filler: blank
        "\u2800",  # blank braille pattern
        "\ufe0f",  # variation selector
        "\U000e0100",  # variation selector supplement
        "\ue000",  # private use
    ],
)
@pytest.mark.parametrize("where", ["alone", "start", "middle", "end"])
def test_display_text_rejects_control_and_bidi_characters(bad: str, where: str) -> None:
    text = {
        "alone": bad,
        "start": bad + "approve me",
        "middle": "approve" + bad + "me",
        "end": "approve me" + bad,
    }[where]
    with pytest.raises(MalformedInput, match="control, format or line-separator"):
        check_display_text(text, "purpose")


def test_display_text_rejects_ansi_sequence_that_hides_text() -> None:
    with pytest.raises(MalformedInput, match=r"^purpose:"):
        check_display_text("deploy\x1b[2K\x1b[1Gread-only check", "purpose")


def test_display_text_length_and_type() -> None:
    with pytest.raises(MalformedInput, match="longer than"):
        check_display_text("x" * (MAX_TEXT + 1), "t")
    assert check_display_text("x" * 10, "t", max_len=10) == "x" * 10
    with pytest.raises(MalformedInput, match="longer than 9"):
        check_display_text("x" * 10, "t", max_len=9)
    for value in (None, 1, b"bytes", ["x"]):
        with pytest.raises(MalformedInput, match="expected text"):
            check_display_text(value, "t")


def test_reader_requires_an_object() -> None:
    for value in (None, [], "x", 1):
        with pytest.raises(MalformedInput, match="expected a JSON object"):
            Reader(value, "thing")


def test_done_rejects_unknown_keys_and_accepts_when_all_taken() -> None:
    r = Reader({"a": 1, "b": 2, "evil": 3}, "thing")
    assert r.integer("a") == 1
    assert r.integer("b") == 2
    with pytest.raises(MalformedInput, match=r"unknown keys \['evil'\]"):
        r.done()
    r2 = Reader({"a": 1}, "thing")
    r2.raw("a")
    r2.done()


def test_missing_key() -> None:
    r = Reader({}, "thing")
    with pytest.raises(MalformedInput, match="missing 'a'"):
        r.integer("a")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (0, True),
        (MAX_INT, True),
        (MAX_INT + 1, False),
        (-1, False),
        (True, False),
        (False, False),
        (1.0, False),
        ("1", False),
        (None, False),
    ],
)
def test_integer_bounds_and_types(value: Any, ok: bool) -> None:
    r = Reader({"n": value}, "thing")
    if ok:
        assert r.integer("n") == value
    else:
        with pytest.raises(MalformedInput, match="expected an integer"):
            r.integer("n")


def test_integer_custom_bounds() -> None:
    assert Reader({"n": 5}, "t").integer("n", low=5, high=5) == 5
    with pytest.raises(MalformedInput, match=r"in 5\.\.5"):
        Reader({"n": 4}, "t").integer("n", low=5, high=5)
    with pytest.raises(MalformedInput):
        Reader({"n": 6}, "t").integer("n", low=5, high=5)


def test_nullable_accessors() -> None:
    r = Reader({"t": None, "n": None, "d": None}, "thing")
    assert r.text("t", nullable=True) is None
    assert r.integer("n", nullable=True) is None
    assert r.digest("d", nullable=True) is None
    r.done()
    # Not nullable: null is a type error.
    r = Reader({"t": None, "n": None, "d": None}, "thing")
    with pytest.raises(MalformedInput):
        r.text("t")
    with pytest.raises(MalformedInput):
        r.integer("n")
    with pytest.raises(MalformedInput):
        r.digest("d")
    # Nullable does not relax the checks on a present value.
    with pytest.raises(MalformedInput):
        Reader({"t": "\x1b"}, "thing").text("t", nullable=True)
    with pytest.raises(MalformedInput):
        Reader({"n": -1}, "thing").integer("n", nullable=True)
    with pytest.raises(MalformedInput):
        Reader({"d": "sha256:x"}, "thing").digest("d", nullable=True)


def test_text_accessor_applies_display_rules_and_names_the_key() -> None:
    assert Reader({"name": "ok"}, "approver").text("name") == "ok"
    with pytest.raises(MalformedInput, match=r"^approver\.name:"):
        Reader({"name": "a\u202eb"}, "approver").text("name")
    with pytest.raises(MalformedInput, match="longer than 3"):
        Reader({"name": "abcd"}, "approver").text("name", max_len=3)


def test_choice() -> None:
    allowed = frozenset({"add", "remove"})
    assert Reader({"op": "add"}, "t").choice("op", allowed) == "add"
    for bad in ("ADD", "", None, 1, ["add"]):
        with pytest.raises(MalformedInput, match="expected one of"):
            Reader({"op": bad}, "t").choice("op", allowed)


def test_digest() -> None:
    assert Reader({"h": DIGEST}, "t").digest("h") == DIGEST
    for bad in ("sha256:" + "A" * 42, "sha512:" + "A" * 43, DIGEST + "=", 1):
        with pytest.raises(MalformedInput):
            Reader({"h": bad}, "t").digest("h")


def test_b64() -> None:
    assert Reader({"b": "AAEC"}, "t").b64("b") == b"\x00\x01\x02"
    assert Reader({"b": "AAEC"}, "t").b64("b", length=3) == b"\x00\x01\x02"
    with pytest.raises(MalformedInput, match="expected 4 bytes"):
        Reader({"b": "AAEC"}, "t").b64("b", length=4)
    with pytest.raises(MalformedInput, match="too long"):
        Reader({"b": "A" * 40}, "t").b64("b", max_len=8)
    for bad in ("AAEC==", "AA+/", 5, None):
        with pytest.raises(MalformedInput):
            Reader({"b": bad}, "t").b64("b")


def test_items() -> None:
    assert Reader({"l": [1, 2]}, "t").items("l", lambda v: v * 2) == [2, 4]
    with pytest.raises(MalformedInput, match="expected a list"):
        Reader({"l": {"a": 1}}, "t").items("l", lambda v: v)
    with pytest.raises(MalformedInput, match="more than 2 entries"):
        Reader({"l": [1, 2, 3]}, "t").items("l", lambda v: v, max_len=2)
    assert len(Reader({"l": [0] * MAX_LIST}, "t").items("l", lambda v: v)) == MAX_LIST
    with pytest.raises(MalformedInput):
        Reader({"l": [0] * (MAX_LIST + 1)}, "t").items("l", lambda v: v)


def test_mapping() -> None:
    assert Reader({"m": {"a": 1}}, "t").mapping("m", str.upper, lambda v: v + 1) == {"A": 2}
    with pytest.raises(MalformedInput, match="expected an object"):
        Reader({"m": [1]}, "t").mapping("m", str, lambda v: v)
    too_many = {str(i): i for i in range(MAX_LIST + 1)}
    with pytest.raises(MalformedInput, match="more than"):
        Reader({"m": too_many}, "t").mapping("m", str, lambda v: v)


def test_parsed_passes_the_raw_value_and_marks_it_taken() -> None:
    r = Reader({"x": {"y": 1}}, "t")
    assert r.parsed("x", lambda v: v["y"]) == 1
    r.done()


@pytest.mark.parametrize(
    "value",
    [None, [], {"f": "text"}, {1: b"x"}, {"f": bytearray(b"x")}],
    ids=["none", "list", "str-value", "int-key", "bytearray"],
)
def test_bytes_map_refuses_other_shapes(value: object) -> None:
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        bytes_map(value, "wraps")


def test_nested_bytes_map_checks_both_levels() -> None:
    good = {"apv": {"f": b"x"}}
    assert nested_bytes_map(good, "wraps") is good
    with pytest.raises(MalformedInput, match="mapping of names to mappings"):
        nested_bytes_map({1: {}}, "wraps")
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        nested_bytes_map({"apv": {"f": "x"}}, "wraps")
