"""Use cases for registering senders (hospital systems) and practices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import Practice, ReviewWindow, Sender, SenderToken
from flagging.models.base import utcnow
from flagging.storage.rawsql import Raw
from flagging.tokens import hash_token, new_token, revoke

PRACTICE_CODE = re.compile(r"^[A-Z]\d{5}$")
UNKNOWN_PRACTICE = "V81999"  # the national code for "practice not known"
TXA18_V_POLICIES = ("pending", "withheld")
MAX_REVIEW_WINDOW_MINUTES = 90 * 24 * 60


def add_sender(session: Session, ods_code: str, name: str, application: str = "") -> str:
    """Register a sender and return its HTTP bearer token (shown once, stored hashed)."""
    ods_code, application = ods_code.strip().upper(), application.strip()
    if not ods_code:
        raise InvalidInput("a sender needs an ODS code (the value it sends in MSH-4)")
    sender = Sender(ods_code=ods_code, application=application, name=name.strip() or ods_code)
    session.add(sender)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"sender {ods_code} {application} is already registered".strip()) from None
    return _issue(session, sender, "first token", utcnow()).token


def list_senders(session: Session) -> list[Sender]:
    return list(session.scalars(select(Sender).order_by(Sender.ods_code, Sender.application)))


@dataclass(frozen=True)
class SenderPolicy:
    """A registered sender as the inbound path needs it."""

    id: int
    review_window_minutes: int
    txa18_v_policy: str


# Plain SQL: the inbound path looks the sender up for every message (flagging/storage/rawsql.py).
_FIND_SENDER = (
    "SELECT id, review_window_minutes, txa18_v_policy FROM senders"
    " WHERE ods_code = :facility AND application IN (:application, '')"
    " ORDER BY application DESC LIMIT 1"
)


def sender_policy(raw: Raw, facility: str, application: str) -> SenderPolicy | None:
    """The sender registered for an MSH-4 value, preferring one registered for this MSH-3."""

    def find() -> SenderPolicy | None:
        row = raw.one(_FIND_SENDER, _sender_params(facility, application))
        return SenderPolicy(*row) if row else None

    return raw.memo(("sender", facility, application), find)


def ask_sender_policy(raw: Raw, facility: str, application: str) -> None:
    """Send `sender_policy`'s lookup ahead (Raw.ahead), unless this transaction has it."""
    raw.ahead(
        _FIND_SENDER, _sender_params(facility, application), ("sender", facility, application)
    )


def _sender_params(facility: str, application: str) -> dict[str, str]:
    return {"facility": facility.upper(), "application": application}


def find_sender(session: Session, facility: str, application: str = "") -> Sender | None:
    """The sender registered for an MSH-4 value (the same rule as `sender_policy`)."""
    policy = sender_policy(Raw.on(session.connection()), facility, application)
    return session.get(Sender, policy.id) if policy else None


# Sender tokens --------------------------------------------------------------------------------

# How stale `last_used_at` may get: often enough for an operator to see which token a trust
# still uses, rarely enough that a busy sender's requests stay reads.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedSenderToken:
    id: int
    token: str  # shown once; only its hash is stored
    sender: str  # the sender's ODS code (and application, when registered with one)


@dataclass(frozen=True)
class SenderTokenInfo:
    id: int
    sender: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class SenderCredential:
    """A request's proven sender, and which of its tokens proved it."""

    sender: Sender
    token_id: int


def _label(sender: Sender) -> str:
    return f"{sender.ods_code} {sender.application}".strip()


def _issue(session: Session, sender: Sender, name: str, now: datetime) -> IssuedSenderToken:
    token = new_token()
    row = SenderToken(
        sender_id=sender.id, token_hash=hash_token(token), name=name.strip()[:200], created_at=now
    )
    session.add(row)
    session.flush()
    return IssuedSenderToken(row.id, token, _label(sender))


def sender_by_code(session: Session, ods_code: str, application: str = "") -> Sender:
    """The sender registered exactly as `ods_code` (and `application`), for the operator."""
    sender = session.scalars(
        select(Sender).where(
            Sender.ods_code == ods_code.strip().upper(),
            Sender.application == application.strip(),
        )
    ).first()
    if sender is None:
        raise NotFound(f"no sender {ods_code.strip().upper()} {application.strip()}".strip())
    return sender


def issue_sender_token(
    session: Session, ods_code: str, *, application: str = "", name: str = "", now: datetime
) -> IssuedSenderToken:
    """Another HTTP bearer token for a sender. The ones it already has stay valid until
    revoked, so a trust can move its systems over one at a time."""
    return _issue(session, sender_by_code(session, ods_code, application), name, now)


def list_sender_tokens(session: Session) -> list[SenderTokenInfo]:
    """Every sender token (never the token itself: it is not stored)."""
    rows = session.execute(
        select(SenderToken, Sender)
        .join(Sender, Sender.id == SenderToken.sender_id)
        .order_by(SenderToken.id)
    )
    return [
        SenderTokenInfo(t.id, _label(s), t.name, t.created_at, t.last_used_at, t.revoked_at)
        for t, s in rows
    ]


def revoke_sender_token(session: Session, token_id: int, *, now: datetime) -> SenderToken:
    """Revoke a sender token at once: its next request is refused."""
    return revoke(session, SenderToken, token_id, now, "sender token")


def sender_by_token(
    session: Session, token: str, now: datetime | None = None
) -> SenderCredential | None:
    """The sender a bearer token proves, or None for an unknown or revoked token."""
    if not token:
        return None
    found = session.execute(
        select(SenderToken, Sender)
        .join(Sender, Sender.id == SenderToken.sender_id)
        .where(SenderToken.token_hash == hash_token(token), SenderToken.revoked_at.is_(None))
    ).first()
    if found is None:
        return None
    row, sender = found
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return SenderCredential(sender, row.id)


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


def get_sender(session: Session, sender_id: int) -> Sender:
    sender = session.get(Sender, sender_id)
    if sender is None:
        raise NotFound(f"no sender {sender_id}")
    return sender


def _check_minutes(minutes: int) -> None:
    if not 0 <= minutes <= MAX_REVIEW_WINDOW_MINUTES:
        raise InvalidInput(
            f"a review window is 0 to {MAX_REVIEW_WINDOW_MINUTES} minutes (90 days), not {minutes}"
        )


def set_sender_policy(
    session: Session, sender_id: int, *, review_window_minutes: int, txa18_v_policy: str
) -> Sender:
    """Set how long a sender's documents stay pending without a decision, and what TXA-18 = V
    (very restricted) means for it. Applies to documents received from now on."""
    sender = get_sender(session, sender_id)
    _check_minutes(review_window_minutes)
    if txa18_v_policy not in TXA18_V_POLICIES:
        raise InvalidInput(
            f"TXA-18 policy must be one of {', '.join(TXA18_V_POLICIES)}, not {txa18_v_policy!r}"
        )
    sender.review_window_minutes = review_window_minutes
    sender.txa18_v_policy = txa18_v_policy
    session.flush()
    return sender


def review_windows(session: Session, sender_id: int) -> list[ReviewWindow]:
    return list(
        session.scalars(
            select(ReviewWindow)
            .where(ReviewWindow.sender_id == sender_id)
            .order_by(ReviewWindow.document_type)
        )
    )


def set_review_window(
    session: Session, sender_id: int, document_type: str, minutes: int
) -> ReviewWindow:
    """Give one document type (the TXA-2 / OBR-4 code) of a sender its own review window."""
    get_sender(session, sender_id)
    document_type = document_type.strip()
    if not document_type:
        raise InvalidInput("a document type (the code in TXA-2 or OBR-4) is needed")
    _check_minutes(minutes)
    window = session.scalars(
        select(ReviewWindow).where(
            ReviewWindow.sender_id == sender_id, ReviewWindow.document_type == document_type
        )
    ).first()
    if window is None:
        window = ReviewWindow(sender_id=sender_id, document_type=document_type, minutes=minutes)
        session.add(window)
    else:
        window.minutes = minutes
    session.flush()
    return window


def remove_review_window(session: Session, sender_id: int, window_id: int) -> None:
    window = session.get(ReviewWindow, window_id)
    if window is None or window.sender_id != sender_id:
        raise NotFound(f"no review window {window_id} for sender {sender_id}")
    session.delete(window)
    session.flush()
