"""The GP feed: each practice's events numbered 1, 2, 3... in commit order, without gaps.

Numbering takes the practice row's lock (UPDATE ... RETURNING) and holds it to the end of the
transaction, so on PostgreSQL a second writer waits and takes the next number only after the
first committed: a poller reading `after=N` never sees N+2 before N+1. SQLite has one writer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging.models import Document, DocumentVersion, EventType, FeedEvent, Practice
from flagging.models.visibility import Visibility
from flagging.storage.rawsql import Raw

MAX_PAGE = 500


_NEXT_SEQ = "UPDATE practices SET feed_seq = feed_seq + 1 WHERE id = :practice RETURNING feed_seq"
_INSERT_EVENT = (
    "INSERT INTO feed_events (practice_id, seq, type, document_id, version_id, visibility,"
    " created_at) VALUES (:practice, :seq, :type, :document, :version, :visibility, :now)"
)


def append_event(
    raw: Raw,
    *,
    practice_id: int,
    event_type: EventType,
    document_id: int,
    version_id: int,
    visibility: str,
    now: datetime,
) -> int:
    """Add one event to a practice's feed and return its number (plain SQL: it runs for
    every document ingested; see flagging/storage/rawsql.py)."""
    seq = int(raw.scalar(_NEXT_SEQ, {"practice": practice_id}))
    raw.execute(
        _INSERT_EVENT,
        {
            "practice": practice_id,
            "seq": seq,
            "type": event_type.value,
            "document": document_id,
            "version": version_id,
            "visibility": visibility,
            "now": raw.timestamp(now),
        },
    )
    return seq


def event_for_new_version(
    *, cancel: bool, visibility: str, feed_mode: str, document_published: bool
) -> EventType | None:
    """Which event a new version puts into a routed document's feed, if any now."""
    if cancel:
        return EventType.WITHDRAWN if document_published else None
    if visibility == Visibility.PENDING and feed_mode == "decided":
        return None  # this practice waits until the version is decided
    return EventType.SUPERSEDED if document_published else EventType.AVAILABLE


def _feed_mode(session: Session, practice_id: int) -> str:
    return session.execute(
        select(Practice.feed_mode).where(Practice.id == practice_id)
    ).scalar_one()


def publish_version(
    session: Session, document: Document, version: DocumentVersion, now: datetime
) -> None:
    """Put a version into its practice's feed, if the document is routed and the practice's
    mode allows (a "decided" practice waits until it is not pending)."""
    if document.practice_id is None or version.published:
        return
    cancel = version.change == "cancel"
    event = event_for_new_version(
        cancel=cancel,
        visibility=version.visibility,
        feed_mode=_feed_mode(session, document.practice_id),
        document_published=document.published,
    )
    if event is None and not cancel:
        return
    if event is not None:
        session.flush()
        append_event(
            Raw.on(session.connection()),
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
    session.flush()
    append_event(
        Raw.on(session.connection()),
        practice_id=document.practice_id,
        event_type=EventType.VISIBILITY_CHANGED,
        document_id=document.id,
        version_id=version.id,
        visibility=version.visibility,
        now=now,
    )


def next_event(session: Session, practice_id: int, after: int) -> FeedEvent | None:
    """The event after number `after` in a practice's feed, or None at its end (what a
    delivery channel, MLLP push or MESH, sends next)."""
    return session.scalars(
        select(FeedEvent)
        .where(FeedEvent.practice_id == practice_id, FeedEvent.seq > after)
        .order_by(FeedEvent.seq)
        .limit(1)
    ).first()
