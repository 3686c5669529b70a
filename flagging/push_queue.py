"""Push of a practice's feed to its own MLLP endpoint: the delivery state and what comes next.

Delivery is at least once and strictly in feed order: `push_seq` (the last event the practice
acknowledged) moves forward one event at a time, only after an AA/CA for that event, and never
past an event that failed; a failing event is retried with exponential backoff for as long as
it takes, and the failures are shown to administrators.

Several schedulers may run the push job at once. A practice is claimed by setting
`push_retry_at` a lease ahead (a short transaction of its own, so that no row lock is held while
talking to the network, where it would stall ingest for that practice), and each delivery is
recorded only if `push_seq` is still what the claimant read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, literal, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from flagging.feed import next_event
from flagging.models import Document, DocumentVersion, Practice
from flagging.zfl import Annotation, flag_for, original_message

LEASE = timedelta(seconds=120)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(minutes=15)
ERROR_LENGTH = 500


def retry_delay(failures: int) -> timedelta:
    """Exponential backoff: 5 s, 10 s, 20 s... up to 15 minutes, with 10% jitter so that
    practices that failed together do not all retry in the same second."""
    base: timedelta = min(FIRST_RETRY * 2 ** min(max(failures - 1, 0), 20), MAX_RETRY)
    return base * (1 + random.random() / 10)


def retry_due(
    retry_at: InstrumentedAttribute[datetime | None], now: datetime
) -> ColumnElement[bool]:
    """A channel's next attempt (or another scheduler's lease) is not in the future."""
    return or_(retry_at.is_(None), retry_at <= now)


def due(
    session: Session,
    practice_id: InstrumentedAttribute[int],
    retry_at: InstrumentedAttribute[datetime | None],
    now: datetime,
    *conditions: ColumnElement[bool],
) -> list[int]:
    """Practices of a delivery channel (the MLLP push, MESH) that meet `conditions` and whose
    retry time has come: those never failing first, then by id."""
    return list(
        session.scalars(
            select(practice_id)
            .where(*conditions, retry_due(retry_at, now))
            .order_by(retry_at.is_not(None), practice_id)
        )
    )


def due_practices(session: Session, now: datetime) -> list[int]:
    """Practices with a push endpoint, events not yet delivered, and no retry or claim pending."""
    return due(
        session,
        Practice.id,
        Practice.push_retry_at,
        now,
        Practice.push_host != "",
        Practice.push_port > 0,
        Practice.push_seq < Practice.feed_seq,
    )


@dataclass(frozen=True)
class PushTarget:
    practice_id: int
    ods_code: str
    host: str
    port: int
    push_seq: int  # the last event delivered
    tls: bool = False


def claim(session: Session, practice_id: int, now: datetime) -> PushTarget | None:
    """Take the practice for one run of deliveries, or None when another scheduler has it (or
    its retry time has not come)."""
    claimed = session.execute(
        update(Practice)
        .where(
            Practice.id == practice_id,
            Practice.push_host != "",
            retry_due(Practice.push_retry_at, now),
        )
        .values(push_retry_at=now + LEASE)
        .returning(
            Practice.ods_code,
            Practice.push_host,
            Practice.push_port,
            Practice.push_seq,
            Practice.push_tls,
        )
    ).first()
    if claimed is None:
        return None
    return PushTarget(
        practice_id, claimed[0], claimed[1], int(claimed[2]), int(claimed[3]), bool(claimed[4])
    )


@dataclass(frozen=True)
class Delivery:
    """One event to deliver: the original message and how to annotate it."""

    seq: int
    event_type: str
    raw: bytes
    annotation: Annotation


def control_id(ods_code: str, seq: int) -> str:
    """MSH-10 of the pushed message for an event: the same on every retry, so the practice's
    system can recognise a resend. At most 20 characters (MSH-10 in v2.3-2.5.1)."""
    return f"{ods_code[:6]}-{seq:013d}"


def next_delivery(session: Session, target: PushTarget, after: int) -> Delivery | None:
    """The event after `after` in the practice's feed, ready to annotate, or None at the end."""
    event = next_event(session, target.practice_id, after)
    if event is None:
        return None
    version = session.get(DocumentVersion, event.version_id)
    document = session.get(Document, event.document_id)
    assert version is not None
    assert document is not None
    annotation = Annotation(
        practice_ods_code=target.ods_code,
        control_id=control_id(target.ods_code, event.seq),
        kind=document.kind,
        document_number=version.document_number,
        # The visibility as the event has it: a backlog is delivered as it happened.
        flag=flag_for(session, version, event.visibility, at=event.created_at),
    )
    return Delivery(event.seq, event.type, original_message(session, version), annotation)


def delivered(session: Session, target: PushTarget, seq: int, now: datetime) -> bool:
    """Record an acknowledged delivery and extend the claim; False if the claim was lost (the
    lease ran out and another scheduler took over), in which case the caller stops."""
    result = session.execute(
        update(Practice)
        .where(Practice.id == target.practice_id, Practice.push_seq == seq - 1)
        .values(
            push_seq=seq,
            push_failures=0,
            push_error="",
            push_retry_at=now + LEASE,
            push_delivered_at=now,
            push_failing_since=None,
        )
        .returning(Practice.id)
    ).first()
    return result is not None


def release(session: Session, target: PushTarget, seq: int) -> None:
    """End a run that delivered everything it tried: the practice is due again at once."""
    session.execute(
        update(Practice)
        .where(Practice.id == target.practice_id, Practice.push_seq == seq)
        .values(push_retry_at=None)
    )


def failed(session: Session, target: PushTarget, seq: int, error: str, now: datetime) -> datetime:
    """Record a failed delivery of event `seq`: it is retried later, never skipped. Returns the
    time of the next attempt."""
    failures = session.execute(
        select(Practice.push_failures).where(Practice.id == target.practice_id)
    ).scalar_one()
    retry_at = now + retry_delay(failures + 1)
    message = f"event {seq}: {error}" if seq else error
    session.execute(
        update(Practice)
        .where(Practice.id == target.practice_id)
        .values(
            push_failures=Practice.push_failures + 1,
            push_error=message[:ERROR_LENGTH],
            push_retry_at=retry_at,
            # The first failure since the last delivery: how long it has been failing.
            push_failing_since=func.coalesce(
                Practice.push_failing_since, literal(now, Practice.push_failing_since.type)
            ),
        )
    )
    return retry_at


@dataclass(frozen=True)
class PushStatus:
    """A practice's push, as administrators see it."""

    ods_code: str
    endpoint: str
    feed_seq: int
    push_seq: int
    backlog: int
    failures: int
    error: str
    retry_at: datetime | None


def push_status(session: Session) -> list[PushStatus]:
    """Every practice with a push endpoint, failing ones first."""
    rows = session.scalars(
        select(Practice)
        .where(Practice.push_host != "")
        .order_by(Practice.push_failures.desc(), Practice.ods_code)
    )
    return [
        PushStatus(
            p.ods_code,
            f"{p.push_host}:{p.push_port}",
            p.feed_seq,
            p.push_seq,
            p.feed_seq - p.push_seq,
            p.push_failures,
            p.push_error,
            p.push_retry_at,
        )
        for p in rows
    ]
