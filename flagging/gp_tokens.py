"""GP systems' bearer tokens, each scoped to one or more practices, and the check of a request's
token against the practice it names.

A token never reads another practice's documents. A practice outside a token's scope answers
exactly as one that does not exist (NotFound), so that a GP system cannot learn which
practices exist elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, insert, select
from sqlalchemy.orm import Session

from flagging.errors import FlaggingError, InvalidInput, NotFound
from flagging.models import (
    GPToken,
    GPTokenPractice,
    Practice,
)
from flagging.organisations import get_practice
from flagging.tokens import hash_token, new_token, revoke


class NotAuthenticated(FlaggingError):
    """No bearer token, or one that is unknown or revoked."""


# Tokens --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is stored
    practices: tuple[str, ...]


def issue_token(
    session: Session, ods_codes: list[str], *, name: str = "", now: datetime
) -> IssuedToken:
    """A bearer token for a GP system, scoped to the practices named (all must be registered)."""
    if not ods_codes:
        raise InvalidInput("a token must be scoped to at least one practice")
    practices = {p.ods_code: p.id for p in (get_practice(session, code) for code in ods_codes)}
    token = new_token()
    row = GPToken(token_hash=hash_token(token), name=name.strip()[:200], created_at=now)
    session.add(row)
    session.flush()
    session.execute(
        insert(GPTokenPractice),
        [{"token_id": row.id, "practice_id": pid} for pid in practices.values()],
    )
    return IssuedToken(row.id, token, tuple(sorted(practices)))


def revoke_token(session: Session, token_id: int, *, now: datetime) -> GPToken:
    """Revoke a token at once; requests made with it are refused from the next one on."""
    return revoke(session, GPToken, token_id, now, "GP token")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    practices: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token with its scope (never the token itself: it is not stored)."""
    scopes: dict[int, list[str]] = {}
    for token_id, ods_code in session.execute(
        select(GPTokenPractice.token_id, Practice.ods_code)
        .join(Practice, Practice.id == GPTokenPractice.practice_id)
        .order_by(Practice.ods_code)
    ):
        scopes.setdefault(token_id, []).append(ods_code)
    return [
        TokenInfo(t.id, t.name, tuple(scopes.get(t.id, [])), t.created_at, t.revoked_at)
        for t in session.scalars(select(GPToken).order_by(GPToken.id))
    ]


@dataclass(frozen=True)
class PracticeAccess:
    """A request's proven right to read one practice's feed and documents."""

    token_id: int
    practice_id: int
    ods_code: str


# One statement, built once (a GP poll is the hottest path of the service): the token, and the
# practice only if it is in the token's scope. A token without that practice gets a row with
# no practice id; an unknown or revoked one gets no row.
_SCOPE = (
    select(GPToken.id, Practice.id)
    .select_from(
        GPToken.__table__.outerjoin(
            GPTokenPractice.__table__.join(
                Practice.__table__,
                and_(
                    Practice.id == GPTokenPractice.practice_id,
                    Practice.ods_code == bindparam("ods_code"),
                ),
            ),
            GPTokenPractice.token_id == GPToken.id,
        )
    )
    .where(GPToken.token_hash == bindparam("token_hash"), GPToken.revoked_at.is_(None))
)


def authorize(session: Session, token: str, ods_code: str) -> PracticeAccess:
    """Check a bearer token and that its scope includes the practice.

    Raises NotAuthenticated for a missing, unknown or revoked token, and NotFound, the same as
    for a practice that does not exist, when the practice is outside the token's scope.
    """
    if not token:
        raise NotAuthenticated("a GP bearer token is required")
    code = ods_code.strip().upper()
    # Core on the session's connection: the ORM's result machinery has nothing to add here.
    row = (
        session.connection()
        .execute(_SCOPE, {"token_hash": hash_token(token), "ods_code": code})
        .first()
    )
    if row is None:
        raise NotAuthenticated("the bearer token is unknown or revoked")
    if row[1] is None:
        raise NotFound(f"no practice {code} for this token")
    return PracticeAccess(int(row[0]), int(row[1]), code)
