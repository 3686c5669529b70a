"""The alert rules (flagging/operations.py), each on its own: a sender silent for longer than
its usual gap in working hours, decisions past the review window, push failing for more than N
minutes, the quarantine growing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flagging.operations import (
    AlertRules,
    PracticeStatus,
    SenderStatus,
    alerts,
    usual_gap,
)

RULES = AlertRules(
    silence_factor=3.0, working_hours=(8, 18), push_failing_minutes=30, quarantine_growth=10
)
TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _sender(last: datetime | None, gap_minutes: float | None) -> SenderStatus:
    gap = timedelta(minutes=gap_minutes) if gap_minutes is not None else None
    return SenderStatus("RXX", "Test Trust", last, gap)


def _practice(failing_since: datetime | None, endpoint: str = "gp.example:2575") -> PracticeStatus:
    return PracticeStatus(
        "A81001", "The Surgery", 10, 4, None, endpoint, 4, 3, "refused", None, failing_since
    )


def _fire(
    now: datetime,
    *,
    senders: list[SenderStatus] | None = None,
    practices: list[PracticeStatus] | None = None,
    overdue: int = 0,
    quarantine_last_hour: int = 0,
) -> list[tuple[str, str]]:
    found = alerts(
        RULES,
        now,
        senders=senders or [],
        practices=practices or [],
        overdue=overdue,
        quarantine_last_hour=quarantine_last_hour,
    )
    return [(a.rule, a.subject) for a in found]


def test_a_sender_silent_for_longer_than_three_usual_gaps_in_working_hours_alerts() -> None:
    quiet = _sender(TUESDAY_NOON - timedelta(minutes=31), gap_minutes=10)
    assert _fire(TUESDAY_NOON, senders=[quiet]) == [("sender-silent", "RXX")]
    # Within three gaps, at the weekend, or with no usual gap known: no alert.
    assert _fire(TUESDAY_NOON, senders=[_sender(TUESDAY_NOON - timedelta(minutes=29), 10)]) == []
    assert _fire(SATURDAY_NOON, senders=[_sender(SATURDAY_NOON - timedelta(hours=5), 10)]) == []
    assert _fire(TUESDAY_NOON, senders=[_sender(TUESDAY_NOON - timedelta(days=2), None)]) == []
    evening = TUESDAY_NOON.replace(hour=19)
    assert _fire(evening, senders=[_sender(evening - timedelta(hours=3), 10)]) == []


def test_a_senders_usual_gap_counts_only_gaps_within_one_working_day() -> None:
    day = [TUESDAY_NOON + timedelta(minutes=5 * i) for i in range(6)]  # every 5 minutes
    night = [TUESDAY_NOON.replace(hour=23), TUESDAY_NOON.replace(hour=23, minute=30)]
    next_morning = [TUESDAY_NOON + timedelta(days=1, minutes=m) for m in (0, 7)]
    assert usual_gap(day + night + next_morning, RULES) == timedelta(minutes=5)
    assert usual_gap(day[:5], RULES) is None  # four gaps: too few to know a habit


def test_documents_pending_past_their_review_window_alert() -> None:
    assert _fire(TUESDAY_NOON, overdue=2) == [("decision-overdue", "")]
    assert _fire(TUESDAY_NOON, overdue=0) == []


def test_push_failing_for_longer_than_the_setting_alerts() -> None:
    assert _fire(TUESDAY_NOON, practices=[_practice(TUESDAY_NOON - timedelta(minutes=31))]) == [
        ("push-failing", "A81001")
    ]
    assert _fire(TUESDAY_NOON, practices=[_practice(TUESDAY_NOON - timedelta(minutes=29))]) == []
    assert _fire(TUESDAY_NOON, practices=[_practice(None)]) == []
    # A practice whose push was turned off is not failing.
    stopped = _practice(TUESDAY_NOON - timedelta(hours=3), endpoint="")
    assert _fire(TUESDAY_NOON, practices=[stopped]) == []


def test_a_quarantine_growing_by_the_threshold_in_an_hour_alerts() -> None:
    assert _fire(TUESDAY_NOON, quarantine_last_hour=10) == [("quarantine-growing", "")]
    assert _fire(TUESDAY_NOON, quarantine_last_hour=9) == []
