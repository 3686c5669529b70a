"""Retention: delete the raw bytes of old messages, keeping everything that still matters.

Deleted: `inbound_messages.raw` of messages received more than FLAGGING_RETENTION_DAYS ago.
Kept whatever their age: the receipt itself (who sent what, when, its outcome and the ACK);
the bytes of a message whose document a practice has not yet acknowledged (an event about the
document after the practice's acknowledged or pushed position), not yet published to it, or
not routed to any practice; the bytes of an open quarantined or rejected entry (it may be
reprocessed); documents, versions and their content (a version whose text was kept as spans
of the message's bytes gets a copy first); and the audit trail, never touched here.

Each batch is one short transaction, so a run never holds locks for long and can be
interrupted and run again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from flagging.models import (
    Document,
    DocumentVersion,
    FeedEvent,
    InboundMessage,
    MessageOutcome,
    Practice,
)
from flagging.operations import first_id_since

BATCH = 500
_OPEN = (MessageOutcome.QUARANTINED.value, MessageOutcome.REJECTED.value)


@dataclass
class RetentionReport:
    """What a run did (or, in a dry run, would do)."""

    cutoff: datetime
    examined: int = 0
    deleted: int = 0  # messages whose bytes were (or would be) deleted
    bytes_deleted: int = 0
    kept_unacknowledged: int = 0  # a practice has not acknowledged their document
    kept_open: int = 0  # open quarantined or rejected entries


def unacknowledged_documents(session: Session) -> set[int]:
    """Documents with a feed event their practice has not acknowledged (by poll or push):
    one index range per practice, bounded by its backlog."""
    documents: set[int] = set()
    for practice_id, acknowledged, pushed in session.execute(
        select(Practice.id, Practice.acknowledged_seq, Practice.push_seq)
    ):
        documents.update(
            session.scalars(
                select(FeedEvent.document_id).where(
                    FeedEvent.practice_id == practice_id,
                    FeedEvent.seq > max(acknowledged, pushed),
                )
            )
        )
    return documents


def message_range(session: Session, now: datetime, days: int) -> tuple[datetime, int]:
    """The cutoff time and the first message id at or after it (older ids are candidates)."""
    cutoff = now - timedelta(days=days)
    return cutoff, first_id_since(session, cutoff)


def purge_batch(
    session: Session,
    *,
    after_id: int,
    below_id: int,
    protected: set[int],
    report: RetentionReport,
    now: datetime,
    dry_run: bool,
) -> int | None:
    """Examine the next batch of candidates after `after_id`; returns the last id examined,
    or None when there are no more."""
    rows = session.execute(
        select(
            InboundMessage.id,
            InboundMessage.outcome,
            InboundMessage.resolution,
            InboundMessage.reprocessed_as_id,
            func.length(InboundMessage.raw),
        )
        .where(
            InboundMessage.id > after_id,
            InboundMessage.id < below_id,
            InboundMessage.raw.is_not(None),
        )
        .order_by(InboundMessage.id)
        .limit(BATCH)
    ).all()
    if not rows:
        return None
    ids: list[int] = [row[0] for row in rows]
    keep: set[int] = set()
    for message_id, outcome, resolution, reprocessed_as, _ in rows:
        if outcome in _OPEN and not resolution and reprocessed_as is None:
            keep.add(message_id)
            report.kept_open += 1
    versions = session.execute(
        select(
            DocumentVersion.message_id,
            DocumentVersion.published,
            Document.id,
            Document.practice_id,
        )
        .join(Document, Document.id == DocumentVersion.document_id)
        .where(DocumentVersion.message_id.in_(ids))
    ).all()
    for message_id, published, document_id, practice_id in versions:
        if message_id in keep:
            continue
        if practice_id is None or not published or document_id in protected:
            keep.add(message_id)
            report.kept_unacknowledged += 1
    purge = [row for row in rows if row[0] not in keep]
    report.examined += len(rows)
    report.deleted += len(purge)
    report.bytes_deleted += sum(row[4] or 0 for row in purge)
    if purge and not dry_run:
        # A version whose text is spans of these bytes (flagging/spans.py) gets its copy now.
        for version in session.scalars(
            select(DocumentVersion).where(
                DocumentVersion.message_id.in_([row[0] for row in purge]),
                DocumentVersion.content_spans.is_not(None),
            )
        ):
            version.content = version.content
        session.flush()
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_([row[0] for row in purge]))
            .values(raw=None, raw_deleted_at=now)
        )
    return ids[-1]


def run_retention(
    transaction: Callable[[], AbstractContextManager[Session]],
    now: datetime,
    days: int,
    *,
    dry_run: bool = False,
    progress: Callable[[RetentionReport, int], None] | None = None,
) -> RetentionReport:
    """Run batches until none is left; `transaction()` gives a context manager yielding a
    session that commits on exit (the caller's database). `progress` is told after each
    batch, with the number of candidates in all."""
    with transaction() as session:
        cutoff, below = message_range(session, now, days)
        protected = unacknowledged_documents(session)
        total = session.scalar(
            select(func.count()).where(InboundMessage.id < below, InboundMessage.raw.is_not(None))
        )
    report = RetentionReport(cutoff)
    after = 0
    while True:
        with transaction() as session:
            last = purge_batch(
                session,
                after_id=after,
                below_id=below,
                protected=protected,
                report=report,
                now=now,
                dry_run=dry_run,
            )
        if last is None:
            return report
        after = last
        if progress is not None:
            progress(report, total or 0)
