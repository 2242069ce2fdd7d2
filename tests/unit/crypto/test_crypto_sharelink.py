"""Share links' sealing and passphrase hashing (sealbox.crypto.sharelink), pure."""

from __future__ import annotations

import pytest

from sealbox.crypto import sharelink
from sealbox.crypto.encoding import b64u_decode
from sealbox.errors import DecryptionFailed, MalformedInput, NotAuthorized

SHARE_ID = "shr_aaaaaaaaaaaaaaaaaaaaaaaaaa"
KEY = bytes(range(32))
NONCE = bytes(range(100, 112))
# The same vector tests/js/crypto/share.test.mjs opens with WebCrypto.
CIPHERTEXT = "IH6yChbFdu1WAy2N-of2bn_nMmZDAgBr9vX2ys-Sqt4"
AAD = (
    "000000157365616c626f782f76312f616561642f73686172650000001e"
    + "7368725f6161616161616161616161616161616161616161616161616161"
)


def test_the_vector_both_implementations_check() -> None:
    assert sharelink.share_aad(SHARE_ID).hex() == AAD
    nonce, ciphertext = sharelink.seal_share(
        KEY, "hello, share ✓".encode(), share_id=SHARE_ID, random=lambda _: NONCE
    )
    assert nonce == NONCE
    assert ciphertext == b64u_decode(CIPHERTEXT)
    assert (
        sharelink.open_share(KEY, NONCE, ciphertext, share_id=SHARE_ID) == "hello, share ✓".encode()
    )


def test_fresh_keys_and_nonces_round_trip() -> None:
    key = sharelink.new_share_key()
    assert len(key) == 32
    a = sharelink.seal_share(key, b"v", share_id=SHARE_ID)
    b = sharelink.seal_share(key, b"v", share_id=SHARE_ID)
    assert a[0] != b[0]
    assert sharelink.open_share(key, *a, share_id=SHARE_ID) == b"v"
    with pytest.raises(ValueError, match="wrong length"):
        sharelink.new_share_key(lambda n: b"\0" * (n - 1))
    with pytest.raises(ValueError, match="wrong length"):
        sharelink.seal_share(key, b"v", share_id=SHARE_ID, random=lambda n: b"\0" * (n + 1))


def test_what_does_not_open() -> None:
    nonce, ciphertext = sharelink.seal_share(KEY, b"value", share_id=SHARE_ID)
    other_key = bytes([KEY[0] ^ 1]) + KEY[1:]
    with pytest.raises(DecryptionFailed):
        sharelink.open_share(other_key, nonce, ciphertext, share_id=SHARE_ID)
    # Moved under another share's id by the relay: the aad binds the id.
    with pytest.raises(DecryptionFailed):
        sharelink.open_share(KEY, nonce, ciphertext, share_id="shr_baaaaaaaaaaaaaaaaaaaaaaaaa")
    altered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    with pytest.raises(DecryptionFailed):
        sharelink.open_share(KEY, nonce, altered, share_id=SHARE_ID)
    with pytest.raises(DecryptionFailed, match="too short"):
        sharelink.open_share(KEY, nonce, ciphertext[:15], share_id=SHARE_ID)
    with pytest.raises(MalformedInput, match="nonce"):
        sharelink.open_share(KEY, nonce[:11], ciphertext, share_id=SHARE_ID)
    with pytest.raises(MalformedInput, match="key"):
        sharelink.open_share(KEY[:16], nonce, ciphertext, share_id=SHARE_ID)


def test_passphrases_hash_and_verify() -> None:
    encoded = sharelink.hash_passphrase("correct horse battery")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "correct" not in encoded
    assert sharelink.hash_passphrase("correct horse battery") != encoded  # fresh salt
    sharelink.verify_passphrase(encoded, "correct horse battery")
    with pytest.raises(NotAuthorized):
        sharelink.verify_passphrase(encoded, "correct horse batterx")
    # The same text typed in another Unicode form is the same passphrase.
    composed = sharelink.hash_passphrase("caf\u00e9 au lait")
    sharelink.verify_passphrase(composed, "cafe\u0301 au lait")
    with pytest.raises(ValueError, match="empty"):
        sharelink.hash_passphrase("")


def test_only_hashes_this_relay_writes_are_verified() -> None:
    from argon2 import PasswordHasher

    costly = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("a passphrase")
    with pytest.raises(MalformedInput, match="not one this relay writes"):
        sharelink.verify_passphrase(costly, "a passphrase")
    with pytest.raises(MalformedInput, match="does not parse"):
        sharelink.verify_passphrase("$argon2id$v=19$m=19456,t=2,p=1$bm90$", "a passphrase")


# The open token of the vector's key and id (tests/js/crypto/share.test.mjs derives the same).
OPEN_TOKEN = "LS8qNWj8ejVfXrx1t_Va_MIIE3jNlU3AJiD_Yz06moI"
OPEN_TOKEN_HASH = "9372e4e0b3c622c512c4bda158bdb595c119735281ae151cb53c97c2a4679d4d"


def test_the_open_token_vector_and_its_check() -> None:
    token = sharelink.open_token(KEY, share_id=SHARE_ID)
    assert token == b64u_decode(OPEN_TOKEN)
    stored = sharelink.open_token_hash(token)
    assert stored.hex() == OPEN_TOKEN_HASH
    assert sharelink.check_open_token(stored, token)
    # Bound to the id and the key; never the key itself.
    assert sharelink.open_token(KEY, share_id="shr_baaaaaaaaaaaaaaaaaaaaaaaaa") != token
    assert sharelink.open_token(bytes(32), share_id=SHARE_ID) != token
    assert token != KEY
    for wrong in (None, b"", token[:-1], bytes(32), stored):
        assert not sharelink.check_open_token(stored, wrong)
    with pytest.raises(MalformedInput, match="32 bytes"):
        sharelink.open_token_hash(token[:31])
    with pytest.raises(MalformedInput, match="32 bytes"):
        sharelink.open_token(KEY[:31], share_id=SHARE_ID)
