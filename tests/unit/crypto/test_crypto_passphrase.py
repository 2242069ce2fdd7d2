"""Passphrase-sealed files: Argon2id + AES-256-GCM, bounded parameters, bound context."""

from __future__ import annotations

import copy

import pytest

from sealbox.crypto.passphrase import KdfParams, open_with_passphrase, seal_with_passphrase
from sealbox.errors import DecryptionFailed, MalformedInput

FAST = KdfParams(time_cost=1, memory_kib=8 * 1024)


def test_round_trip_and_refusals() -> None:
    env = seal_with_passphrase(b"keys", "pass phrase", context="vlt apv", params=FAST)
    assert env["kdf"] == {**env["kdf"], "alg": "argon2id", "t": 1, "m": 8192, "p": 1}
    assert open_with_passphrase(env, "pass phrase", context="vlt apv") == b"keys"
    with pytest.raises(DecryptionFailed, match="wrong passphrase"):
        open_with_passphrase(env, "pass phrasE", context="vlt apv")
    with pytest.raises(DecryptionFailed):
        open_with_passphrase(env, "pass phrase", context="vlt other")  # another approver's file
    altered = copy.deepcopy(env)
    altered["ciphertext"] = "A" + altered["ciphertext"][1:]
    with pytest.raises((DecryptionFailed, MalformedInput)):
        open_with_passphrase(altered, "pass phrase", context="vlt apv")


def test_default_cost_is_rfc_9106_second_option() -> None:
    assert KdfParams() == KdfParams(time_cost=3, memory_kib=65536, parallelism=1)


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other"},
        {"kdf": {"alg": "scrypt"}},
        {"kdf": None},
        {"nonce": "short"},
        {"kdf": {"alg": "argon2id", "t": 1, "m": 8192, "p": 1, "salt": "AAAA"}},
    ],
    ids=["format", "alg", "no-kdf", "nonce", "salt"],
)
def test_malformed_envelopes(change: dict[str, object]) -> None:
    env = seal_with_passphrase(b"keys", "pass phrase", context="c", params=FAST)
    with pytest.raises(MalformedInput):
        open_with_passphrase({**env, **change}, "pass phrase", context="c")
    with pytest.raises(MalformedInput):
        open_with_passphrase("not a dict", "pass phrase", context="c")


@pytest.mark.parametrize(
    "kdf", [{"t": 100}, {"m": 1024}, {"m": 4 * 1024 * 1024}, {"p": 64}], ids=str
)
def test_costs_out_of_range_are_refused_before_any_work(kdf: dict[str, int]) -> None:
    env = seal_with_passphrase(b"keys", "pass phrase", context="c", params=FAST)
    env["kdf"] = {**env["kdf"], **kdf}
    with pytest.raises(MalformedInput, match="out of range"):
        open_with_passphrase(env, "pass phrase", context="c")


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        seal_with_passphrase(b"k", "", context="c")
