"""Masking of released values in `sealbox run` output, streamed chunk by chunk."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbox.client.masking import MASK, WORD_ONLY_BELOW, Masker, forms, notice

SECRET = b"pa55:w/rd+&more"
# Every character a JSON encoder escapes one way or another.
JSON_SECRET = 'k\u00e9y/"quoted"\\<tag>&\u2028\n\t\x01\U0001f511'
ALNUM = re.compile(rb"[A-Za-z0-9]")


def _through(masker: Masker, chunks: list[bytes]) -> bytes:
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])")


def _is_word_char(data: bytes, i: int) -> bool:
    return 0 <= i < len(data) and ALNUM.match(data, i) is not None


def _ends_escape(data: bytes, i: int) -> bool:
    """Whether ``data[i]`` is the last byte of a terminal escape sequence."""
    return any(m.end() == i + 1 for m in ESCAPE.finditer(data, max(0, i - 63), i + 1))


def _whole_word(data: bytes, i: int, form: bytes) -> bool:
    """Whether ``form`` at ``data[i]`` has no letter or digit stuck to either side."""
    starts = not (
        ALNUM.match(form) and _is_word_char(data, i - 1) and not _ends_escape(data, i - 1)
    )
    ends = not (ALNUM.match(form, len(form) - 1) and _is_word_char(data, i + len(form)))
    return starts and ends


def reference(values: list[bytes], data: bytes) -> bytes:
    """Masking the whole text at once, one position at a time: the longest form there wins."""
    patterns = set().union(*(forms(v) for v in values)) if values else set()
    out, i = [], 0
    while i < len(data):
        found = [p for p in patterns if data.startswith(p, i)
                 and (len(p) >= WORD_ONLY_BELOW or _whole_word(data, i, p))]  # fmt: skip
        if found:
            out.append(MASK)
            i += max(map(len, found))
        else:
            out.append(data[i : i + 1])
            i += 1
    return b"".join(out)


# --- long values: every form, anywhere ------------------------------------------------------


def test_every_form_is_masked() -> None:
    for form in (
        SECRET,
        base64.b64encode(SECRET),
        base64.urlsafe_b64encode(SECRET).rstrip(b"="),
        SECRET.hex().encode(),
        SECRET.hex().upper().encode(),
        quote(SECRET.decode(), safe="").encode(),
        json.dumps(SECRET.decode())[1:-1].encode(),
    ):
        out = _through(Masker([SECRET]), [b"before " + form + b" after"])
        assert out == b"before " + MASK + b" after", form


def test_long_values_are_masked_inside_words() -> None:
    out = _through(Masker([b"longsecret"]), [b"xlongsecretx longsecret1 9longsecret"])
    assert out == b"x" + MASK + b"x " + MASK + b"1 9" + MASK


def test_a_value_inside_a_longer_base64_text_is_masked() -> None:
    for prefix in (b"", b"u", b"us", b"user:"):
        encoded = base64.b64encode(prefix + SECRET + b"!")
        out = _through(Masker([SECRET]), [encoded])
        assert MASK in out
        # What is left of the encoding does not hold enough to rebuild the value.
        assert base64.b64encode(SECRET)[2:-2] not in out


# --- JSON -----------------------------------------------------------------------------------


def _json_encodings(text: str) -> list[str]:
    """The inside of a JSON string as the encoders people use write it."""
    python_ascii = json.dumps(text)[1:-1]
    javascript = json.dumps(text, ensure_ascii=False)[1:-1]  # JSON.stringify
    go = (
        javascript.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
    )
    php = python_ascii.replace("/", "\\/")  # json_encode escapes slashes
    upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), python_ascii)
    return [python_ascii, javascript, php, upper, go.replace("\u2028", "\\u2028")]


@pytest.mark.parametrize("index", range(5))
def test_json_escaped_forms_are_masked(index: int) -> None:
    value = JSON_SECRET.encode()
    inside = _json_encodings(JSON_SECRET)[index]
    assert inside.encode() != value  # the test is about the escaped form
    document = '{"password": "' + inside + '", "user": "me"}'
    out = _through(Masker([value]), [document.encode()])
    assert out == b'{"password": "' + MASK + b'", "user": "me"}'


def test_a_json_document_from_json_dumps_never_shows_the_value() -> None:
    value = JSON_SECRET.encode()
    for ensure_ascii in (True, False):
        document = json.dumps({"v": JSON_SECRET, "n": 1}, ensure_ascii=ensure_ascii).encode()
        out = _through(Masker([value]), [document])
        assert out == b'{"v": "' + MASK + b'", "n": 1}'


def test_json_forms_of_a_value_with_slashes_are_masked() -> None:
    out = _through(Masker([b"https://x.example/hook"]), [b'{"url":"https:\\/\\/x.example\\/hook"}'])
    assert out == b'{"url":"' + MASK + b'"}'


# --- short values: whole words only ---------------------------------------------------------


def test_a_short_value_leaves_ordinary_words_alone() -> None:
    text = b"my application is happy; apps, snapp, app1 and 1app are not it\n"
    assert _through(Masker([b"app", SECRET]), [text]) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"app", MASK),
        (b"user=app\n", b"user=" + MASK + b"\n"),
        (b"(app)", b"(" + MASK + b")"),
        (b"app-name app_name", MASK + b"-name " + MASK + b"_name"),
        (b'{"user":"app"}', b'{"user":"' + MASK + b'"}'),
        (b"\x1b[31mapp\x1b[0m", b"\x1b[31m" + MASK + b"\x1b[0m"),
        (b"\x1b[38;2;255;0;0mapp", b"\x1b[38;2;255;0;0m" + MASK),
        (b"\x1b(Bapp \x1b31mapp", b"\x1b(B" + MASK + b" \x1b31mapp"),
        (b"caf\xc3\xa9 app\xc3\xa9", b"caf\xc3\xa9 " + MASK + b"\xc3\xa9"),
    ],
)
def test_a_short_value_is_masked_as_a_whole_word(text: bytes, expected: bytes) -> None:
    assert _through(Masker([b"app"]), [text]) == expected


def test_the_short_value_rule_counts_bytes_of_the_value() -> None:
    # 7 bytes: whole words only; 8 bytes: anywhere.
    assert _through(Masker([b"1234567"]), [b"x1234567x 1234567"]) == b"x1234567x " + MASK
    assert _through(Masker([b"12345678"]), [b"x12345678x"]) == b"x" + MASK + b"x"


def test_edges_that_are_punctuation_are_word_edges_already() -> None:
    assert _through(Masker([b"=ab1"]), [b"x=ab1 x=ab1c"]) == b"x" + MASK + b" x=ab1c"
    assert _through(Masker([b"ab1!"]), [b"ab1!x xab1!"]) == MASK + b"x xab1!"


def test_encodings_of_a_short_value_are_whole_words_too_when_short() -> None:
    # base64 of "app" is "YXBw": masked alone, not inside other base64.
    out = _through(Masker([b"app"]), [b"YXBw and QYXBwZ"])
    assert out == MASK + b" and QYXBwZ"


def test_values_under_3_bytes_are_not_masked() -> None:
    assert forms(b"ab") == set()
    assert _through(Masker([b"ab"]), [b"ab abc"]) == b"ab abc"
    assert _through(Masker([]), [b"anything"]) == b"anything"


def test_the_notice_counts_short_values_and_names_none() -> None:
    assert notice([SECRET]) is None
    assert notice([]) is None
    assert notice([b"app", SECRET]) == "1 value shorter than 8 bytes is masked only as a whole word"
    said = notice([b"app", b"5432", b"ab", SECRET])
    assert said == (
        "2 values shorter than 8 bytes are masked only as whole words; "
        "1 value shorter than 3 bytes is not masked"
    )
    for value in ("app", "5432", "ab"):
        assert value not in said


# --- streaming ------------------------------------------------------------------------------

STREAM_VALUES = [SECRET, b"app", JSON_SECRET.encode()]
STREAM = (
    b"my application: user=app; "
    + SECRET
    + b" b64="
    + base64.b64encode(SECRET)
    + b' json="'
    + json.dumps(JSON_SECRET)[1:-1].encode()
    + b'" happy app'
)


def test_every_split_point_gives_the_same_output() -> None:
    whole = reference(STREAM_VALUES, STREAM)
    assert whole.count(MASK) == 5
    assert b"my application" in whole
    for i in range(len(STREAM) + 1):
        for j in range(i, len(STREAM) + 1, 7):
            chunks = [STREAM[:i], STREAM[i:j], STREAM[j:]]
            assert _through(Masker(STREAM_VALUES), chunks) == whole, (i, j)


def test_byte_by_byte() -> None:
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert _through(Masker(STREAM_VALUES), chunks) == reference(STREAM_VALUES, STREAM)


def test_only_what_could_still_become_a_form_is_held_back() -> None:
    masker = Masker([SECRET, b"app"])
    assert masker.feed(b"hello world\n") == b"hello world\n"
    # A possible start of a long value waits for the next chunk, even inside a word ...
    assert masker.feed(b"log: xpa55") == b"log: x"
    # ... and is let out once it turns out not to be the value.
    assert masker.feed(b"port\n") == b"pa55port\n"
    masker = Masker([b"app"])
    # A short value can only start a word: "ap" inside "map" is let out at once.
    assert masker.feed(b"map") == b"map"
    assert masker.feed(b" ap") == b" "
    # A whole short value at the end waits for the byte that says if it is a word.
    assert masker.feed(b"p") == b""
    assert masker.feed(b"le") == b"apple"
    assert masker.feed(b" app") == b" "
    assert masker.feed(b".") == MASK + b"."
    # An escape sequence in an earlier chunk still counts as the start of a word.
    assert masker.feed(b"\x1b[1;31m") == b"\x1b[1;31m"
    assert masker.feed(b"app\x1b(B") == MASK + b"\x1b(B"


def test_the_end_of_the_stream_decides_what_was_held() -> None:
    masker = Masker([SECRET, b"app"])
    assert masker.feed(b"user app") == b"user "
    assert masker.flush() == MASK
    masker = Masker([SECRET, b"app"])
    assert masker.feed(b"tail pa55:w") == b"tail "
    assert masker.flush() == b"pa55:w"
    assert masker.flush() == b""


def test_nothing_is_held_without_values() -> None:
    masker = Masker([])
    assert masker.feed(b"pa55") == b"pa55"
    assert masker.flush() == b""


def test_a_long_value_of_thousands_of_bytes() -> None:
    key = bytes(range(256)) * 12  # like a private key: its hex form is 6 KiB
    data = b"k=" + key.hex().encode() + b"\n" + base64.b64encode(key) + b"\n"
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert _through(Masker([key]), chunks) == b"k=" + MASK + b"\n" + MASK + b"\n"


# --- properties -----------------------------------------------------------------------------

_pieces = st.sampled_from([b"a", b"p", b"app", b" ", b"=", b"x", b"\n", b"\xc3\xa9", b"\\",
                           b"\x1b[31m", b"\x1b(B", b"\x1b[", b"m"])  # fmt: skip


@st.composite
def _streams(draw: st.DrawFn) -> tuple[list[bytes], bytes, list[int]]:
    values = draw(st.lists(st.one_of(st.binary(min_size=3, max_size=12),
                                     st.sampled_from([b"app", b"apple pie", SECRET])),
                           min_size=1, max_size=3))  # fmt: skip
    parts = draw(st.lists(st.one_of(_pieces, st.sampled_from(values),
                                    st.sampled_from(values).map(base64.b64encode),
                                    st.sampled_from(values).map(lambda v: v.hex().encode()),
                                    st.binary(max_size=4)), max_size=12))  # fmt: skip
    data = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return values, data, cuts


@given(_streams())
def test_chunks_never_change_the_output(stream: tuple[list[bytes], bytes, list[int]]) -> None:
    values, data, cuts = stream
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert _through(Masker(values), chunks) == reference(values, data)


@given(st.binary(min_size=WORD_ONLY_BELOW, max_size=40), st.binary(max_size=60),
       st.binary(max_size=60), st.integers(min_value=1, max_value=17))  # fmt: skip
def test_a_long_value_never_survives(secret: bytes, before: bytes, after: bytes, size: int) -> None:
    data = before + secret + after
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    # Split on the mask: a value that happens to be part of the mask's own text is not a leak.
    assert all(secret not in piece for piece in _through(Masker([secret]), chunks).split(MASK))


@given(st.from_regex(rb"\A[a-z0-9]{3,7}\Z"), st.lists(st.sampled_from([b" ", b"=", b"(", b"\n"]),
       min_size=1, max_size=5), st.integers(min_value=1, max_value=5))  # fmt: skip
def test_a_short_value_never_survives_as_a_word(
    secret: bytes, seps: list[bytes], size: int
) -> None:
    data = b"".join(sep + secret for sep in seps) + seps[0]
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    out = _through(Masker([secret]), chunks)
    assert not re.search(rb"(?<![A-Za-z0-9])" + re.escape(secret) + rb"(?![A-Za-z0-9])", out)
    assert out.count(MASK) == len(seps)
