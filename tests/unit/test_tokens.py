"""Bearer tokens: random, never mistaken for a command-line option, stored only hashed."""

from __future__ import annotations

from flagging.tokens import TOKEN_PREFIX, hash_token, new_token


def test_tokens_are_unique_and_never_start_with_a_hyphen() -> None:
    tokens = {new_token() for _ in range(500)}
    assert len(tokens) == 500
    assert all(t.startswith(TOKEN_PREFIX) for t in tokens)
    assert all(len(t) > 40 for t in tokens)


def test_a_token_is_stored_as_its_sha256_digest() -> None:
    token = new_token()
    digest = hash_token(token)
    assert len(digest) == 64
    assert token not in digest
    assert digest == hash_token(token)
    assert digest != hash_token(new_token())
