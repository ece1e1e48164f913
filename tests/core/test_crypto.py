"""Sealing personal data at rest: round trip, context binding, rotation, lookup digests."""

from __future__ import annotations

import pytest

from tongban.core.crypto import Sealer, SealError, new_key


def test_seal_round_trip_and_ciphertext_hides_the_value() -> None:
    sealer = Sealer(new_key())
    sealed = sealer.seal("110105199003071234", "t:1:id")
    assert "110105199003071234" not in sealed
    assert sealed.startswith(f"v1.{sealer.key_id}.")
    assert sealer.open(sealed, "t:1:id") == "110105199003071234"
    # a fresh nonce every time: equal values do not give equal ciphertexts
    assert sealer.seal("x", "c") != sealer.seal("x", "c")


def test_a_value_moved_to_another_record_does_not_open() -> None:
    sealer = Sealer(new_key())
    sealed = sealer.seal("secret", "t:1:id")
    with pytest.raises(SealError, match="another record"):
        sealer.open(sealed, "t:2:id")
    with pytest.raises(SealError):
        sealer.open(sealed[:-4] + "AAAA", "t:1:id")
    with pytest.raises(SealError, match="not a sealed value"):
        sealer.open("plain text", "t:1:id")


def test_rotation_opens_old_values_and_flags_them_for_resealing() -> None:
    old_key, new = new_key(), new_key()
    old = Sealer(old_key).seal("value", "ctx")
    rotated = Sealer(new, retired=[old_key])
    assert rotated.open(old, "ctx") == "value"
    assert rotated.needs_reseal(old)
    assert not rotated.needs_reseal(rotated.seal("value", "ctx"))
    with pytest.raises(SealError, match="unknown key"):
        Sealer(new).open(old, "ctx")


def test_lookup_digest_is_stable_per_key_and_purpose() -> None:
    key = new_key()
    a, b = Sealer(key), Sealer(key)
    assert a.digest("91110000600037341L", "enterprise") == b.digest("91110000600037341L", "enterprise")
    assert a.digest("x", "person") != a.digest("x", "enterprise")
    assert a.digest("x", "person") != Sealer(new_key()).digest("x", "person")


@pytest.mark.parametrize("bad", ["", "not base64!", "c2hvcnQ="])
def test_bad_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="data key"):
        Sealer(bad)
