"""Use cases for GP systems: tokens scoped to practices, and what a practice may read.

A token never reads another practice's documents. Whatever a token may not see answers exactly
as what does not exist (NotFound), so that a GP system cannot learn which documents or practices
exist elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Integer, and_, bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from flagging.errors import Conflict, FlaggingError, InvalidInput, NotFound
from flagging.feed import MAX_PAGE
from flagging.messages import get_message, original_bytes
from flagging.models import (
    Decision,
    Document,
    DocumentVersion,
    FeedEvent,
    GPToken,
    GPTokenPractice,
    Practice,
    ScreeningHit,
    Sender,
    Source,
    VersionChange,
    Visibility,
    reason_text,
)
from flagging.organisations import get_practice
from flagging.tokens import hash_token, new_token

FEED_MODES = ("immediate", "decided")
# ZFL-2 (DESIGN.md): P pending, W withheld, V visible.
ZFL_STATUS = {
    Visibility.PENDING.value: "P",
    Visibility.WITHHELD.value: "W",
    Visibility.VISIBLE.value: "V",
}
MAX_SEQ = 2**31 - 1  # feed numbers and ids are 32-bit integers in the database


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
    row = session.get(GPToken, token_id)
    if row is None:
        raise NotFound(f"no GP token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row


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


# Practices' feed settings --------------------------------------------------------------------


def configure_practice(
    session: Session,
    ods_code: str,
    *,
    feed_mode: str | None = None,
    push_host: str | None = None,
    push_port: int | None = None,
    push_from: int | None = None,
    push_tls: bool | None = None,
) -> Practice:
    """Change how a practice receives its feed: the mode, and the optional MLLP push endpoint.

    `push_from` sets the last event counted as delivered (to start a push after events the
    practice already polled); it can only move forward, so an event is never skipped by mistake
    below what was delivered.
    """
    practice = get_practice(session, ods_code)
    if feed_mode is not None:
        if feed_mode not in FEED_MODES:
            raise InvalidInput(f"feed mode must be one of {', '.join(FEED_MODES)}")
        practice.feed_mode = feed_mode
    if push_host is not None:
        practice.push_host = push_host.strip()[:200]
    if push_port is not None:
        if not 0 <= push_port <= 65535:
            raise InvalidInput("push port must be between 1 and 65535 (0 turns push off)")
        practice.push_port = push_port
    if practice.push_host and not practice.push_port:
        raise InvalidInput("a push host needs a push port")
    if push_tls is not None:
        practice.push_tls = push_tls
    if push_from is not None:
        if not 0 <= push_from <= practice.feed_seq:
            raise InvalidInput(f"push-from must be between 0 and {practice.feed_seq}")
        practice.push_seq = max(practice.push_seq, push_from)
    if push_host is not None or push_port is not None or push_tls is not None:
        # A new endpoint starts with a clean slate of errors.
        practice.push_failures, practice.push_error, practice.push_retry_at = 0, "", None
    session.flush()
    return practice


# Reading the feed ----------------------------------------------------------------------------


class FeedEntry(NamedTuple):
    """One event of a page (a tuple: a page builds a hundred of them per poll)."""

    seq: int
    type: str
    document_id: int
    version_id: int
    version: int
    visibility: str
    occurred_at: datetime


@dataclass(frozen=True)
class Feed:
    events: list[FeedEntry]
    next_after: int
    more: bool


# The page query, built once: one range of the (practice_id, seq) index, whatever the size of
# the store, joined to each event's version for its number.
_FEED_PAGE = (
    select(
        FeedEvent.seq,
        FeedEvent.type,
        FeedEvent.document_id,
        FeedEvent.version_id,
        DocumentVersion.version,
        FeedEvent.visibility,
        FeedEvent.created_at,
    )
    .join(DocumentVersion, DocumentVersion.id == FeedEvent.version_id)
    .where(FeedEvent.practice_id == bindparam("practice_id"), FeedEvent.seq > bindparam("after"))
    .order_by(FeedEvent.seq)
    .limit(bindparam("limit", type_=Integer))
)


def practice_feed(session: Session, access: PracticeAccess, after: int, limit: int) -> Feed:
    """A page of the practice's events after `after`, oldest first, and whether more wait."""
    limit = max(1, min(limit, MAX_PAGE))
    rows = (
        session.connection()
        .execute(
            _FEED_PAGE, {"practice_id": access.practice_id, "after": after, "limit": limit + 1}
        )
        .all()
    )
    events = [FeedEntry._make(row) for row in rows[:limit]]
    return Feed(events, events[-1].seq if events else after, len(rows) > limit)


@dataclass(frozen=True)
class Acknowledgement:
    acknowledged_seq: int
    acknowledged_at: datetime | None
    feed_seq: int


def acknowledge(
    session: Session, access: PracticeAccess, up_to: int, *, now: datetime
) -> Acknowledgement:
    """Record that the practice's system received its events up to `up_to` (for the operators).

    An acknowledgement never moves back: a late or repeated one leaves the higher number.
    """
    feed_seq = session.execute(
        select(Practice.feed_seq).where(Practice.id == access.practice_id)
    ).scalar_one()
    if not 0 <= up_to <= feed_seq:
        # The request is well formed; the feed is not there yet: a conflict with its state.
        raise Conflict(f"up_to must be between 0 and the last event number, {feed_seq}")
    row = session.execute(
        update(Practice)
        .where(Practice.id == access.practice_id)
        .values(
            acknowledged_seq=case(
                (Practice.acknowledged_seq < up_to, up_to), else_=Practice.acknowledged_seq
            ),
            acknowledged_at=now,
        )
        .returning(Practice.acknowledged_seq, Practice.acknowledged_at, Practice.feed_seq)
    ).one()
    return Acknowledgement(int(row[0]), row[1], int(row[2]))


# Reading documents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentView:
    """A document as its practice sees it: the version asked for (by default the latest one
    published to the practice), and the version whose content stands for it."""

    document: Document
    sender: Sender
    version: DocumentVersion
    content_version: DocumentVersion | None
    latest_published: int
    previous: DocumentVersion | None


def practice_document(
    session: Session, access: PracticeAccess, document_id: int, version: int | None = None
) -> DocumentView:
    """A document of the practice, as published to it; NotFound for anything else."""
    not_found = NotFound(f"no document {document_id} for practice {access.ods_code}")
    if not 0 < document_id <= MAX_SEQ or (version is not None and not 0 < version <= MAX_SEQ):
        raise not_found
    document = session.get(Document, document_id)
    # A practice in "decided" mode has not been told of a document that is still pending.
    if document is None or document.practice_id != access.practice_id or not document.published:
        raise not_found
    published = list(
        session.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id, DocumentVersion.published)
            .order_by(DocumentVersion.version.desc())
        )
    )
    if not published:
        raise not_found
    chosen = published[0]
    if version is not None:
        matches = [v for v in published if v.version == version]
        if not matches:
            raise NotFound(f"no version {version} of document {document_id}")
        chosen = matches[0]
    content_version = next(
        (v for v in published if v.version <= chosen.version and v.content is not None), None
    )
    previous = next((v for v in published if v.version < chosen.version), None)
    sender = session.get(Sender, document.sender_id)
    assert sender is not None
    return DocumentView(document, sender, chosen, content_version, published[0].version, previous)


@dataclass(frozen=True)
class Flag:
    """The content of a ZFL segment (DESIGN.md), as plain values."""

    status: str  # ZFL-2: P, W or V
    reason: str = ""  # ZFL-4.1
    reason_text: str = ""  # ZFL-4.2
    decided_by_code: str = ""  # ZFL-5.1
    decided_by_name: str = ""
    decided_at: datetime | None = None  # ZFL-6
    withhold_until: datetime | None = None  # ZFL-7
    source: str = ""  # ZFL-8

    @property
    def nopat(self) -> bool:
        """Whether the patient must not see it (pending or withheld)."""
        return self.status != "V"


def flag_for(
    session: Session, version: DocumentVersion, visibility: str, at: datetime | None = None
) -> Flag:
    """The ZFL content for a version at a visibility: the decision that set it (the latest one
    made by `at`, when given), or what the version says when no decision was recorded."""
    query = select(Decision).where(
        Decision.document_id == version.document_id,
        Decision.version_id == version.id,
        Decision.visibility == visibility,
    )
    decision = None
    if at is not None:
        decision = session.scalars(
            query.where(Decision.decided_at <= at).order_by(Decision.id.desc()).limit(1)
        ).first()
    if decision is None:
        decision = session.scalars(query.order_by(Decision.id.desc()).limit(1)).first()
    status = ZFL_STATUS.get(visibility, "P")
    if decision is None:
        source = version.visibility_source if version.visibility == visibility else ""
        if not source and visibility == Visibility.PENDING:
            held = session.scalar(
                select(ScreeningHit.id).where(ScreeningHit.version_id == version.id).limit(1)
            )
            source = Source.SCREENING.value if held is not None else ""
        return Flag(status=status, source=source)
    reason = decision.reason if visibility == Visibility.WITHHELD else ""
    return Flag(
        status=status,
        reason=reason,
        reason_text=reason_text(reason) if reason else "",
        decided_by_code=decision.decided_by_code,
        decided_by_name=decision.decided_by_name,
        decided_at=decision.decided_at,
        withhold_until=decision.withhold_until if visibility == Visibility.WITHHELD else None,
        source=decision.source,
    )


@dataclass(frozen=True)
class Annotation:
    """What the HL7 edge writes into a version's message for a practice (DESIGN.md, ZFL)."""

    practice_ods_code: str
    control_id: str  # the new MSH-10
    kind: str  # MDM | ORU
    document_number: str  # TXA-12, or the OBR-3 of the ORU group to keep
    flag: Flag


def original_message(session: Session, version: DocumentVersion) -> bytes:
    """The bytes of the message that carried a version, exactly as received."""
    return original_bytes(session, get_message(session, version.message_id))


def annotation_input(
    session: Session,
    access: PracticeAccess,
    view: DocumentView,
    control_id: str,
) -> tuple[bytes, Annotation]:
    """The original message of the viewed version and how to annotate it for the practice."""
    version = view.version
    annotation = Annotation(
        practice_ods_code=access.ods_code,
        control_id=control_id,
        kind=view.document.kind,
        document_number=version.document_number,
        flag=flag_for(session, version, version.visibility),
    )
    return original_message(session, version), annotation


def is_replacement(version: DocumentVersion) -> bool:
    """Whether a version replaces an earlier one of its thread (every later version does)."""
    return version.version > 1 and version.change != VersionChange.CANCEL
