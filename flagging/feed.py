"""The GP feed: each practice's events numbered 1, 2, 3... in commit order, without gaps.

Numbering takes the practice row's lock (UPDATE ... RETURNING) and holds it to the end of the
transaction, so on PostgreSQL a second writer waits and takes the next number only after the
first committed: a poller reading `after=N` never sees N+2 before N+1. SQLite has one writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from flagging.models import Document, DocumentVersion, EventType, FeedEvent, Practice
from flagging.models.visibility import Visibility

MAX_PAGE = 500


def append_event(
    session: Session,
    *,
    practice_id: int,
    event_type: EventType,
    document_id: int,
    version_id: int,
    visibility: str,
    now: datetime,
) -> int:
    """Add one event to a practice's feed and return its number."""
    seq = session.execute(
        update(Practice)
        .where(Practice.id == practice_id)
        .values(feed_seq=Practice.feed_seq + 1)
        .returning(Practice.feed_seq)
    ).scalar_one()
    session.execute(
        insert(FeedEvent).values(
            practice_id=practice_id,
            seq=seq,
            type=event_type.value,
            document_id=document_id,
            version_id=version_id,
            visibility=visibility,
            created_at=now,
        )
    )
    return int(seq)


def _feed_mode(session: Session, practice_id: int) -> str:
    return session.execute(
        select(Practice.feed_mode).where(Practice.id == practice_id)
    ).scalar_one()


def publish_version(
    session: Session, document: Document, version: DocumentVersion, now: datetime
) -> None:
    """Put a new version into its practice's feed, if the document is routed and the
    practice's mode allows (a "decided" practice waits until it is not pending)."""
    if document.practice_id is None or version.published:
        return
    if version.change == "cancel":
        if document.published:
            append_event(
                session,
                practice_id=document.practice_id,
                event_type=EventType.WITHDRAWN,
                document_id=document.id,
                version_id=version.id,
                visibility=version.visibility,
                now=now,
            )
        version.published = True
        return
    if (
        version.visibility == Visibility.PENDING
        and _feed_mode(session, document.practice_id) == "decided"
    ):
        return
    event = EventType.SUPERSEDED if document.published else EventType.AVAILABLE
    append_event(
        session,
        practice_id=document.practice_id,
        event_type=event,
        document_id=document.id,
        version_id=version.id,
        visibility=version.visibility,
        now=now,
    )
    document.published = True
    version.published = True


def visibility_changed(
    session: Session, document: Document, version: DocumentVersion, now: datetime
) -> None:
    """Tell the practice a version's visibility changed (or publish it, if it was waiting)."""
    if document.practice_id is None:
        return
    if not version.published:
        publish_version(session, document, version, now)
        return
    append_event(
        session,
        practice_id=document.practice_id,
        event_type=EventType.VISIBILITY_CHANGED,
        document_id=document.id,
        version_id=version.id,
        visibility=version.visibility,
        now=now,
    )


@dataclass(frozen=True)
class FeedPage:
    events: list[FeedEvent]
    next_after: int
    more: bool


def read_feed(session: Session, practice_id: int, after: int, limit: int) -> FeedPage:
    """Events after `after`, oldest first; `more` says whether another page waits."""
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(
        session.scalars(
            select(FeedEvent)
            .where(FeedEvent.practice_id == practice_id, FeedEvent.seq > after)
            .order_by(FeedEvent.seq)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return FeedPage(rows, rows[-1].seq if rows else after, more)
