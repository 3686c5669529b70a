"""Bearer tokens: random, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from flagging.errors import NotFound
from flagging.models import GPToken, SenderToken

Token = TypeVar("Token", GPToken, SenderToken)

TOKEN_PREFIX = "flg_"  # noqa: S105 -- a public marker that starts every token, not a secret


def new_token() -> str:
    """A new bearer token. The prefix keeps it from starting with '-' (which a command line
    would take for an option) and lets secret scanners recognise it."""
    # 32 random bytes: far beyond guessing, so a fast hash (not a password hash) is enough.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def revoke(session: Session, model: type[Token], token_id: int, now: datetime, label: str) -> Token:
    """Revoke a stored token at once (its next request is refused); a second revoke keeps the
    first one's time. `label` names the kind in the error ("GP token 7")."""
    row = session.get(model, token_id)
    if row is None:
        raise NotFound(f"no {label} {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row
