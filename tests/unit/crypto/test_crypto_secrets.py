"""Bearer tokens and the relay's at-rest layer."""

from __future__ import annotations

import pytest

from sealbox.crypto import secrets as sx
from sealbox.errors import DecryptionFailed, MalformedInput


def test_tokens_are_random_prefixed_and_stored_as_labelled_hashes() -> None:
    a, b = sx.new_token("sbx_at_"), sx.new_token("sbx_at_")
    assert a.startswith("sbx_at_")
    assert a != b
    assert len(a) == len("sbx_at_") + 43
    assert sx.token_hash(a) == sx.token_hash(a)
    assert sx.token_hash(a) != sx.token_hash(b)
    assert len(sx.token_hash(a)) == 64
    assert a not in sx.token_hash(a)
    assert sx.constant_time_equal(sx.token_hash(a), sx.token_hash(a))
    assert not sx.constant_time_equal(sx.token_hash(a), sx.token_hash(b))


def test_at_rest_round_trip_is_bound_to_the_row() -> None:
    key = sx.new_key()
    sealed = sx.seal_at_rest(key, b"ciphertext", "vlt", "itm", 3, "password")
    assert sx.open_at_rest(key, sealed, "vlt", "itm", 3, "password") == b"ciphertext"
    with pytest.raises(DecryptionFailed, match="does not open"):
        sx.open_at_rest(key, sealed, "vlt", "itm", 4, "password")  # moved to another row
    with pytest.raises(DecryptionFailed, match="does not open"):
        sx.open_at_rest(sx.new_key(), sealed, "vlt", "itm", 3, "password")
    with pytest.raises(DecryptionFailed, match="too short"):
        sx.open_at_rest(key, sealed[:20], "vlt", "itm", 3, "password")
    with pytest.raises(MalformedInput, match="32 bytes"):
        sx.seal_at_rest(b"short", b"x", "row")


def test_data_keys_wrap_under_the_master_key_and_its_id_reveals_nothing() -> None:
    kek, dek = sx.new_key(), sx.new_key()
    wrapped = sx.wrap_key(kek, dek, "vlt", "app")
    assert sx.unwrap_key(kek, wrapped, "vlt", "app") == dek
    with pytest.raises(DecryptionFailed):
        sx.unwrap_key(kek, wrapped, "vlt", "other-project")
    assert sx.key_id(kek) != sx.key_id(dek)
    assert kek.hex() not in sx.key_id(kek)
