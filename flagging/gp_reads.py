"""What a practice's GP system reads: its feed, page by page; its acknowledgements; its documents.

Every read starts from a PracticeAccess (flagging.gp_tokens.authorize). Whatever a token may
not see answers exactly as what does not exist (NotFound), so that a GP system cannot learn
which documents exist elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Integer, bindparam, case, select, update
from sqlalchemy.orm import Session

from flagging.errors import Conflict, NotFound
from flagging.feed import MAX_PAGE
from flagging.gp_tokens import PracticeAccess
from flagging.models import (
    Document,
    DocumentVersion,
    FeedEvent,
    Practice,
    Sender,
)

MAX_SEQ = 2**31 - 1  # feed numbers and ids are 32-bit integers in the database


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
