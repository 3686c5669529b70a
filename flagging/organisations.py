"""Use cases for registering senders (hospital systems) and practices."""

from __future__ import annotations

import re

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import Practice, Sender
from flagging.tokens import hash_token, new_token

PRACTICE_CODE = re.compile(r"^[A-Z]\d{5}$")
UNKNOWN_PRACTICE = "V81999"  # the national code for "practice not known"


def add_sender(session: Session, ods_code: str, name: str, application: str = "") -> str:
    """Register a sender and return its HTTP bearer token (shown once, stored hashed)."""
    ods_code, application = ods_code.strip().upper(), application.strip()
    if not ods_code:
        raise InvalidInput("a sender needs an ODS code (the value it sends in MSH-4)")
    token = new_token()
    session.add(
        Sender(
            ods_code=ods_code,
            application=application,
            name=name.strip() or ods_code,
            token_hash=hash_token(token),
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"sender {ods_code} {application} is already registered".strip()) from None
    return token


def list_senders(session: Session) -> list[Sender]:
    return list(session.scalars(select(Sender).order_by(Sender.ods_code, Sender.application)))


def find_sender(session: Session, facility: str, application: str = "") -> Sender | None:
    """The sender registered for an MSH-4 value, preferring one registered for this MSH-3."""
    rows = session.scalars(
        select(Sender)
        .where(Sender.ods_code == facility.upper())
        .where(or_(Sender.application == application, Sender.application == ""))
        .order_by(Sender.application.desc())
        .limit(1)
    )
    return rows.first()


def sender_by_token(session: Session, token: str) -> Sender | None:
    return session.scalars(select(Sender).where(Sender.token_hash == hash_token(token))).first()


def add_practice(session: Session, ods_code: str, name: str) -> Practice:
    """Register a GP practice by its ODS code (a letter and five digits)."""
    ods_code = ods_code.strip().upper()
    if not PRACTICE_CODE.match(ods_code):
        raise InvalidInput(f"{ods_code!r} is not a GP practice ODS code (a letter and 5 digits)")
    if ods_code == UNKNOWN_PRACTICE:
        raise InvalidInput(f"{UNKNOWN_PRACTICE} means 'practice not known' and cannot be added")
    practice = Practice(ods_code=ods_code, name=name.strip() or ods_code)
    session.add(practice)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"practice {ods_code} is already registered") from None
    return practice


def list_practices(session: Session) -> list[Practice]:
    return list(session.scalars(select(Practice).order_by(Practice.ods_code)))


def get_practice(session: Session, ods_code: str) -> Practice:
    practice = session.scalars(
        select(Practice).where(Practice.ods_code == ods_code.strip().upper())
    ).first()
    if practice is None:
        raise NotFound(f"no practice {ods_code}")
    return practice


def routable_practice_id(session: Session, ods_code: str) -> int | None:
    """The practice a document goes to, or None when it must be held as unroutable."""
    if not ods_code or ods_code == UNKNOWN_PRACTICE:
        return None
    return session.scalar(select(Practice.id).where(Practice.ods_code == ods_code))
