"""The secrets key with rotation (workflows.domain.secretbox): several keys, the first encrypting; ciphertext
under an older key stays readable once a new key is put first; `rotate` re-encrypts under the current key, after
which the old key can go; a malformed key list is refused with the fix."""

from __future__ import annotations

import pytest

from workflows.domain.secretbox import SecretBox, SecretBoxError, split_keys

OLD, NEW = SecretBox.generate_key(), SecretBox.generate_key()


def test_old_ciphertext_is_readable_after_a_new_key_is_added() -> None:
    token = SecretBox(OLD).seal({"A": "1"})
    both = SecretBox(f"{NEW}, {OLD}")
    assert both.open(token) == {"A": "1"}
    assert not both.is_current(token)
    fresh = both.seal({"B": "2"})
    assert both.is_current(fresh) and SecretBox(NEW).open(fresh) == {"B": "2"}
    with pytest.raises(SecretBoxError):
        SecretBox(OLD).open(fresh)


def test_rotated_ciphertext_needs_only_the_new_key() -> None:
    token = SecretBox(OLD).seal({"A": "1"})
    rotated = SecretBox(f"{NEW},{OLD}").rotate(token)
    assert SecretBox(NEW).open(rotated) == {"A": "1"}
    with pytest.raises(SecretBoxError, match="any configured secrets key"):
        SecretBox(NEW).rotate(token)


def test_key_lists_keep_their_order_and_bad_keys_are_refused() -> None:
    assert split_keys(f" {NEW} ,\n{OLD},,") == [NEW, OLD]
    assert SecretBox(f"{NEW}\n{OLD}").keys == [NEW, OLD]
    for bad in ("", " , ", f"{NEW},not-a-key"):
        with pytest.raises(SecretBoxError, match="comma-separated, the current one first"):
            SecretBox(bad)


def test_digests_follow_the_current_key() -> None:
    assert SecretBox(f"{NEW},{OLD}").digest(b"x") == SecretBox(NEW).digest(b"x") != SecretBox(OLD).digest(b"x")
