"""The GP feed: each practice's events numbered 1, 2, 3... in commit order, without gaps.

Numbering takes the practice row's lock (UPDATE ... RETURNING) and holds it to the end of the
transaction, so on PostgreSQL a second writer waits and takes the next number only after the
first committed: a poller reading `after=N` never sees N+2 before N+1. SQLite has one writer.

Ingest (the hot path, a group commit of many messages) defers its events (`defer_event`) and
numbers them all at the end of the transaction (`number_deferred`, called by the transaction's
owner just before the audit entries and the commit): the practices' rows are then locked for
a few statements rather than the whole batch, always in the order of their ids, so that two
processes (or two group-commit lanes of one) never wait for each other in a cycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging.models import Document, DocumentVersion, EventType, FeedEvent, Practice
from flagging.models.visibility import Visibility
from flagging.storage.rawsql import Raw

MAX_PAGE = 500


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
) -> None:
    """Add one event to a practice's feed now (a decision's, in its own transaction): the
    same numbering as the group commit's deferred events, on a `Raw` of its own."""
    defer_event(
        raw,
        practice_id=practice_id,
        event_type=event_type,
        document_id=document_id,
        version_id=version_id,
        visibility=visibility,
        now=now,
    )
    number_deferred(raw)


def defer_event(
    raw: Raw,
    *,
    practice_id: int,
    event_type: EventType,
    document_id: int,
    version_id: int,
    visibility: str,
    now: datetime,
) -> None:
    """`append_event` at the end of the transaction (`number_deferred`), not now."""
    raw.feed_events.append(
        {
            "practice": practice_id,
            "type": event_type.value,
            "document": document_id,
            "version": version_id,
            "visibility": visibility,
            "now": raw.timestamp(now),
        }
    )


_ADVANCE_SEQ = (
    "UPDATE practices SET feed_seq = feed_seq + :count WHERE id = :practice RETURNING feed_seq"
)


def ask_numbers(raw: Raw) -> None:
    """Send ahead (Raw.ahead) the counter updates `number_deferred` will read, practice by
    practice in the order of their ids (the order their row locks are taken in), so that on
    PostgreSQL they and the audit chain's (flagging.audit.ask_head) cost one round trip."""
    for practice_id, rows in _by_practice(raw.feed_events):
        raw.ahead(_ADVANCE_SEQ, {"count": len(rows), "practice": practice_id})


def number_deferred(raw: Raw) -> None:
    """Number and insert the deferred events, practice by practice in the order of their ids
    (each practice's events in the order they were deferred): one UPDATE per practice and
    one insert of all the events, whatever their number."""
    events, raw.feed_events = raw.feed_events, []
    if not events:
        return
    for practice_id, rows in _by_practice(events):
        last = int(raw.scalar(_ADVANCE_SEQ, {"count": len(rows), "practice": practice_id}))
        for seq, row in enumerate(rows, start=last - len(rows) + 1):
            row["seq"] = seq
    raw.executemany(_INSERT_EVENT, events)


def _by_practice(events: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    by_practice: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        by_practice.setdefault(int(event["practice"]), []).append(event)
    return sorted(by_practice.items())


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
