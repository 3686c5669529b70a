"""What the operator on call needs to see: backlogs, practices falling behind, push health,
senders' last messages, the quarantine, volumes, and the alert rules over them.

Read from the database, so every process (and every node) sees the same figures; the
dashboard and /metrics both show them. Each query is bounded by the backlog it reports or by
a recent range of message ids, never by the size of the whole store: the range's first id is
found by a binary search on the primary key (`first_id_since`), since message ids grow with
time and `received_at` has no index of its own (ingest would pay for one).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from config import Settings
from flagging.models import (
    Document,
    InboundMessage,
    MessageOutcome,
    Practice,
    Sender,
)

# Messages read to learn a sender's usual gap, and how far back.
GAP_SAMPLE = 200
GAP_HISTORY = timedelta(days=7)
# At least this many gaps in working hours before a sender has a "usual" gap to compare with.
MIN_GAPS = 5
# A release job runs every 30 s: a document this much past its deadline is overdue.
OVERDUE_GRACE = timedelta(minutes=5)
ALERT_RULES = ("sender-silent", "decision-overdue", "push-failing", "quarantine-growing")


@dataclass(frozen=True)
class AlertRules:
    """The alert rules' settings (FLAGGING_ALERT_*)."""

    silence_factor: float = 3.0
    working_hours: tuple[int, int] = (8, 18)
    push_failing_minutes: int = 30
    quarantine_growth: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        return cls(
            silence_factor=settings.alert_silence_factor,
            working_hours=settings.alert_working_hours,
            push_failing_minutes=settings.alert_push_failing_minutes,
            quarantine_growth=settings.alert_quarantine_growth,
        )

    def in_working_hours(self, moment: datetime) -> bool:
        """Monday to Friday, between the configured hours (UTC, as everything stored)."""
        start, end = self.working_hours
        return moment.weekday() < 5 and start <= moment.hour < end


@dataclass(frozen=True)
class Alert:
    rule: str  # one of ALERT_RULES
    subject: str  # the sender, practice or "" the rule is about
    message: str


@dataclass(frozen=True)
class PracticeStatus:
    ods_code: str
    name: str
    feed_seq: int
    acknowledged_seq: int
    acknowledged_at: datetime | None
    push_endpoint: str
    push_seq: int
    push_failures: int
    push_error: str
    push_delivered_at: datetime | None
    push_failing_since: datetime | None

    @property
    def lag(self) -> int:
        """Feed events the practice has not acknowledged yet."""
        return self.feed_seq - self.acknowledged_seq


@dataclass(frozen=True)
class SenderStatus:
    ods_code: str
    name: str
    last_message_at: datetime | None  # within GAP_HISTORY
    usual_gap: timedelta | None


@dataclass(frozen=True)
class Overview:
    now: datetime
    pending: int
    oldest_pending_at: datetime | None
    overdue: int
    quarantine: int
    quarantine_last_hour: int
    practices: list[PracticeStatus]
    senders: list[SenderStatus]
    alerts: list[Alert]


def first_id_since(session: Session, since: datetime) -> int:
    """The smallest message id received at or after `since` (one past the last id if none),
    by binary search on the primary key: a few indexed lookups whatever the store's size."""
    last = session.scalar(select(func.max(InboundMessage.id))) or 0
    low, high = 1, last + 1
    while low < high:
        middle = (low + high) // 2
        row = session.execute(
            select(InboundMessage.id, InboundMessage.received_at)
            .where(InboundMessage.id >= middle)
            .order_by(InboundMessage.id)
            .limit(1)
        ).first()
        if row is None or row.received_at >= since:
            high = middle
        else:
            low = row.id + 1
    return low


def _open_quarantine() -> ColumnElement[bool]:
    return (InboundMessage.outcome == MessageOutcome.QUARANTINED.value) & (
        InboundMessage.resolution == ""
    )


def usual_gap(times: list[datetime], rules: AlertRules) -> timedelta | None:
    """The median gap between consecutive messages that both arrived in working hours on the
    same day: the quiet of nights and weekends is not a sender's usual gap."""
    ordered = sorted(times)
    gaps = [
        later - earlier
        for earlier, later in itertools.pairwise(ordered)
        if earlier.date() == later.date()
        and rules.in_working_hours(earlier)
        and rules.in_working_hours(later)
    ]
    if len(gaps) < MIN_GAPS:
        return None
    return timedelta(seconds=statistics.median(g.total_seconds() for g in gaps))


def _senders(session: Session, now: datetime, rules: AlertRules) -> list[SenderStatus]:
    since = first_id_since(session, now - GAP_HISTORY)
    out = []
    for sender in session.scalars(select(Sender).order_by(Sender.ods_code, Sender.application)):
        times = list(
            session.scalars(
                select(InboundMessage.received_at)
                .where(InboundMessage.sender_id == sender.id, InboundMessage.id >= since)
                .order_by(InboundMessage.id.desc())
                .limit(GAP_SAMPLE)
            )
        )
        label = f"{sender.ods_code}/{sender.application}" if sender.application else sender.ods_code
        out.append(
            SenderStatus(label, sender.name, max(times) if times else None, usual_gap(times, rules))
        )
    return out


def _practices(session: Session) -> list[PracticeStatus]:
    return [
        PracticeStatus(
            p.ods_code,
            p.name,
            p.feed_seq,
            p.acknowledged_seq,
            p.acknowledged_at,
            f"{p.push_host}:{p.push_port}" if p.push_host else "",
            p.push_seq,
            p.push_failures,
            p.push_error,
            p.push_delivered_at,
            p.push_failing_since,
        )
        for p in session.scalars(select(Practice).order_by(Practice.ods_code))
    ]


def alerts(
    rules: AlertRules,
    now: datetime,
    *,
    senders: list[SenderStatus],
    practices: list[PracticeStatus],
    overdue: int,
    quarantine_last_hour: int,
) -> list[Alert]:
    """The alert rules, as a pure function of the figures (each rule tested on its own)."""
    found: list[Alert] = []
    if rules.in_working_hours(now):
        for sender in senders:
            if sender.last_message_at is None or sender.usual_gap is None:
                continue
            silence = now - sender.last_message_at
            if silence > sender.usual_gap * rules.silence_factor:
                found.append(
                    Alert(
                        "sender-silent",
                        sender.ods_code,
                        f"{sender.ods_code} silent for {_minutes(silence)}; it usually sends "
                        f"every {_minutes(sender.usual_gap)} in working hours",
                    )
                )
    if overdue:
        found.append(
            Alert(
                "decision-overdue",
                "",
                f"{overdue} document{'s' if overdue != 1 else ''} still pending past their "
                "review window",
            )
        )
    limit = timedelta(minutes=rules.push_failing_minutes)
    for practice in practices:
        since = practice.push_failing_since
        if practice.push_endpoint and since is not None and now - since > limit:
            found.append(
                Alert(
                    "push-failing",
                    practice.ods_code,
                    f"push to {practice.ods_code} failing for {_minutes(now - since)}: "
                    f"{practice.push_error}",
                )
            )
    if quarantine_last_hour >= rules.quarantine_growth:
        found.append(
            Alert(
                "quarantine-growing",
                "",
                f"{quarantine_last_hour} messages quarantined in the last hour",
            )
        )
    return found


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def overview(session: Session, now: datetime, rules: AlertRules) -> Overview:
    """Every figure of the dashboard and /metrics, with the alerts that fire now."""
    pending = Document.visibility == "pending"
    count, oldest = session.execute(
        select(func.count(), func.min(Document.created_at)).where(pending)
    ).one()
    overdue = session.scalar(
        select(func.count()).where(pending, Document.review_due_at <= now - OVERDUE_GRACE)
    )
    quarantine = session.scalar(select(func.count()).where(_open_quarantine()))
    recent = first_id_since(session, now - timedelta(hours=1))
    quarantine_last_hour = session.scalar(
        select(func.count()).where(_open_quarantine(), InboundMessage.id >= recent)
    )
    senders = _senders(session, now, rules)
    practices = _practices(session)
    return Overview(
        now=now,
        pending=count,
        oldest_pending_at=oldest,
        overdue=overdue or 0,
        quarantine=quarantine or 0,
        quarantine_last_hour=quarantine_last_hour or 0,
        practices=practices,
        senders=senders,
        alerts=alerts(
            rules,
            now,
            senders=senders,
            practices=practices,
            overdue=overdue or 0,
            quarantine_last_hour=quarantine_last_hour or 0,
        ),
    )


@dataclass(frozen=True)
class Volumes:
    """Messages received per sender, by hour (the last 24) and by day (the last 14)."""

    hours: list[str]  # "YYYY-MM-DD HH", oldest first
    days: list[str]  # "YYYY-MM-DD"
    by_hour: dict[str, list[int]]  # sender -> a count per hour
    by_day: dict[str, list[int]]


def volumes(session: Session, now: datetime, *, hours: int = 24, days: int = 14) -> Volumes:
    """Counted by the database, grouped by the text of the hour: one scan of the recent range."""
    hour_keys = [
        (now - timedelta(hours=h)).strftime("%Y-%m-%d %H") for h in range(hours - 1, -1, -1)
    ]
    day_keys = [(now - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(days - 1, -1, -1)]
    start = datetime.strptime(day_keys[0], "%Y-%m-%d").replace(tzinfo=now.tzinfo)
    since = first_id_since(session, start)
    if session.get_bind().dialect.name == "postgresql":
        hour = func.to_char(InboundMessage.received_at, "YYYY-MM-DD HH24")
    else:  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" text
        hour = func.substr(InboundMessage.received_at, 1, 13)
    rows = session.execute(
        select(InboundMessage.sending_facility, hour, func.count())
        .where(InboundMessage.id >= since)
        .group_by(InboundMessage.sending_facility, hour)
    ).all()
    by_hour: dict[str, list[int]] = {}
    by_day: dict[str, list[int]] = {}
    hour_index = {key: i for i, key in enumerate(hour_keys)}
    day_index = {key: i for i, key in enumerate(day_keys)}
    for facility, bucket, n in rows:
        name = (facility or "(unknown)").upper()
        if bucket in hour_index:
            by_hour.setdefault(name, [0] * len(hour_keys))[hour_index[bucket]] += n
        if bucket[:10] in day_index:
            by_day.setdefault(name, [0] * len(day_keys))[day_index[bucket[:10]]] += n
    return Volumes(hour_keys, day_keys, by_hour, by_day)
