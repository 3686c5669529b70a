"""Bearer tokens: random, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "flg_"  # noqa: S105 -- a public marker that starts every token, not a secret


def new_token() -> str:
    """A new bearer token. The prefix keeps it from starting with '-' (which a command line
    would take for an option) and lets secret scanners recognise it."""
    # 32 random bytes: far beyond guessing, so a fast hash (not a password hash) is enough.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
