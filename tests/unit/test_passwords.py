"""Password hashing: argon2id with RFC 9106's parameters, and verification that never raises."""

from __future__ import annotations

import importlib

from flagging import passwords


def test_real_parameters_are_argon2id_with_64_mib_three_passes_and_four_lanes() -> None:
    real = importlib.reload(passwords)  # the module as shipped, not the tests' cheap hasher
    hashed = real.hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert real.verify_password(hashed, "correct horse battery staple")
    assert not real.verify_password(hashed, "Correct horse battery staple")
    assert not real.needs_rehash(hashed)


def test_a_malformed_hash_never_verifies_and_asks_for_a_rehash() -> None:
    assert not passwords.verify_password("not-a-hash", "anything")
    assert passwords.needs_rehash("not-a-hash")
