"""A mistyped ``sealbox://`` reference gets an error that says what is wrong and how to write it.

References are typed by people, so the error is :class:`InvalidInput` (still a
:class:`MalformedInput`), never the hint meant for bytes a peer sent.
"""

from __future__ import annotations

import pytest

from sealbox.errors import InvalidInput, MalformedInput
from sealbox.protocol import ids

SYNTAX = "expected sealbox://PROJECT/ENV/ITEM[/FIELD], e.g. sealbox://shop/prod/db/password"


@pytest.mark.parametrize(
    ("text", "problem", "meant"),
    [
        ("sealbx://shop/prod/db", "'sealbx://shop/prod/db' does not start with sealbox://",
         "sealbox://shop/prod/db"),
        ("shop/prod/db", "'shop/prod/db' is an item path, not a reference",
         "sealbox://shop/prod/db"),
        ("shop/prod/db/password", "is an item path", "sealbox://shop/prod/db/password"),
        ("/shop/prod/db/", "is an item path", "sealbox://shop/prod/db"),
        ("SEALBOX://shop/prod/db", "does not start with sealbox://", "sealbox://shop/prod/db"),
        ("sealbox:/shop/prod/db", "does not start with sealbox://", "sealbox://shop/prod/db"),
        ("https://vault.example/x", "does not start with sealbox://", None),
        ("hunter2", "'hunter2' does not start with sealbox://", None),
        ("sealbox://shop/prod", "has 2 part(s) after sealbox://, not 3 or 4", None),
        ("sealbox://shop/prod/db/password/x", "has 5 part(s)", None),
        ("sealbox://shop/prod/db/", "the field part is empty", None),
        ("sealbox://shop/../db", "the environment part may hold only letters", None),
        ("sealbox://shop/prod/db/pass word", "the field part may hold only", None),
        (7, "a reference must be text, not int", None),
    ],
)  # fmt: skip
def test_a_bad_reference_says_what_is_wrong_and_shows_the_syntax(
    text: object, problem: str, meant: str | None
) -> None:
    with pytest.raises(InvalidInput) as caught:
        ids.parse_reference(text)
    error = caught.value
    assert isinstance(error, MalformedInput)  # callers that catch that still catch this
    assert error.code == "invalid_input"
    assert problem in error.message
    assert error.message.endswith(SYNTAX)
    assert MalformedInput.hint not in error.hint
    if meant is None:
        assert "Did you mean" not in error.hint
    else:
        assert error.hint == f"Did you mean {meant}?"
        assert ids.parse_reference(meant)  # the suggestion itself is valid


def test_a_long_reference_is_cut_short_and_shown_escaped() -> None:
    with pytest.raises(InvalidInput) as caught:
        ids.parse_reference("\x1b[2J" + "x" * 500)
    assert "\x1b" not in caught.value.message
    assert len(caught.value.message) < 250


@pytest.mark.parametrize(
    ("text", "path"),
    [("sealbox://shop/prod/db", "shop/prod/db"), ("shop/prod/db", "shop/prod/db")],
)
def test_an_item_is_named_with_or_without_the_scheme(text: str, path: str) -> None:
    assert ids.parse_item_path(text) == path


@pytest.mark.parametrize(
    ("text", "says", "hint"),
    [
        ("sealbx://shop/prod/db", "does not start with sealbox://",
         "Did you mean sealbox://shop/prod/db?"),
        ("sealbox://shop/prod/db/password", "names a field; this command takes a whole item",
         "Use sealbox://shop/prod/db."),
        ("shop/prod", "is not an item", "letters, digits"),
        ("sealbox://shop/prod/db b", "is not an item", "letters, digits"),
    ],
)  # fmt: skip
def test_a_mistyped_item_says_what_is_wrong_and_the_form(text: str, says: str, hint: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ids.parse_item_path(text)
    assert says in caught.value.message
    assert (
        "expected sealbox://PROJECT/ENV/ITEM, e.g. sealbox://shop/prod/db" in caught.value.message
    )
    assert hint in caught.value.hint
    assert "conforming" not in caught.value.hint
