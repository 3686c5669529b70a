"""Time: review windows and withhold-until dates are kept in UTC. A timestamp with an offset is
read with it; one without is London time (GMT or BST as the date says); a date a clinician enters
on the page is midnight in London. Checked across both daylight saving changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from flagging.models import Document, Visibility
from flagging.storage.engine import Database
from flagging.visibility import initial_visibility, release_lapsed
from hl7.handler import MessageHandler
from hl7.parsing import parse_datetime
from tests import accounts, samples

# Europe/London: BST starts 01:00 UTC on 29 March 2026 and 28 March 2027; it ends 01:00 UTC on
# 25 October 2026 and 31 October 2027.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # No offset: London time, GMT before the spring change and BST after it.
        ("20260328120000", datetime(2026, 3, 28, 12, 0, tzinfo=UTC)),
        ("20260329120000", datetime(2026, 3, 29, 11, 0, tzinfo=UTC)),
        # ... and back to GMT after the autumn change.
        ("20261024120000", datetime(2026, 10, 24, 11, 0, tzinfo=UTC)),
        ("20261025120000", datetime(2026, 10, 25, 12, 0, tzinfo=UTC)),
        # An offset is always obeyed, whatever London's clocks say that day.
        ("20260329120000+0100", datetime(2026, 3, 29, 11, 0, tzinfo=UTC)),
        ("20260329120000+0000", datetime(2026, 3, 29, 12, 0, tzinfo=UTC)),
        ("20261025120000-0500", datetime(2026, 10, 25, 17, 0, tzinfo=UTC)),
        # The hour the clocks skip (01:30 never happens on 29 March) reads as GMT, and the
        # hour they repeat (01:30 twice on 25 October) as its first, BST, occurrence.
        ("20260329013000", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("20261025013000", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
)
def test_hl7_timestamps_become_utc_with_their_offset_or_as_london_time(
    value: str, expected: datetime
) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # 24 hours are 24 real hours across each change: 12:00 UTC the next day.
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 12, 0, tzinfo=UTC)),
        (datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 12, 0, tzinfo=UTC)),
    ],
)
def test_a_24_hour_review_window_lasts_24_hours_across_a_clock_change(
    received: datetime, due: datetime
) -> None:
    initial = initial_visibility(
        cancel=False,
        flag=None,
        previous=None,
        screened=False,
        window=timedelta(hours=24),
        now=received,
    )
    assert (initial.visibility, initial.auto_release) == (Visibility.PENDING, True)
    assert initial.review_due_at == due
    assert initial.review_due_at is not None
    assert initial.review_due_at.utcoffset() == timedelta(0)


def _document(db: Database) -> Document:
    with db.transaction() as session:
        return session.scalars(select(Document)).one()


def test_a_withhold_until_without_offset_in_the_message_is_london_time_across_the_spring_change(
    handler: MessageHandler, db: Database
) -> None:
    zfl = samples.segment(
        "ZFL",
        {
            1: "1",
            2: "W",
            3: "NOPAT^no disclosure to patient^v3-ActCode",
            4: "not-yet-discussed^Not yet discussed^FLAGREASON",
            5: "C1234567^GREY^SAM",
            6: "20270301093000",
            7: "20270329000000",  # midnight on 29 March 2027, BST: 23:00 UTC on the 28th
            8: "message",
        },
    )
    reply = handler.handle(samples.mdm() + zfl.encode() + b"\r", transport="mllp")
    assert reply.code == "AA"
    document = _document(db)
    until = datetime(2027, 3, 28, 23, 0, tzinfo=UTC)
    assert document.withhold_until == until

    with db.transaction() as session:
        assert release_lapsed(session, until - timedelta(seconds=1)) == 0
    with db.transaction() as session:
        assert release_lapsed(session, until) == 1
    assert _document(db).visibility == Visibility.VISIBLE


@pytest.mark.parametrize(
    ("entered", "stored", "shown"),
    [
        ("2027-03-27", datetime(2027, 3, 27, 0, 0, tzinfo=UTC), "27 Mar 2027"),  # GMT
        ("2027-03-29", datetime(2027, 3, 28, 23, 0, tzinfo=UTC), "29 Mar 2027"),  # BST
        ("2027-10-31", datetime(2027, 10, 30, 23, 0, tzinfo=UTC), "31 Oct 2027"),  # still BST
        ("2027-11-01", datetime(2027, 11, 1, 0, 0, tzinfo=UTC), "1 Nov 2027"),  # GMT again
    ],
)
def test_a_withhold_until_date_entered_on_the_page_is_midnight_london_time(
    client: FlaskClient,
    handler: MessageHandler,
    db: Database,
    sender_token: str,
    entered: str,
    stored: datetime,
    shown: str,
) -> None:
    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    accounts.ingest(handler, samples.mdm())
    document = _document(db).id
    page = client.get(f"/documents/{document}").get_data(as_text=True)
    revision = re.search(r'name="revision" value="(\d+)"', page)
    assert revision is not None

    response = client.post(
        f"/documents/{document}/decision",
        data={
            "csrf_token": accounts.csrf_token(page),
            "revision": revision.group(1),
            "decision": "withhold",
            "reason": "not-yet-discussed",
            "withhold_until": entered,
        },
    )

    assert response.status_code == 302
    assert _document(db).withhold_until == stored
    html = client.get(f"/documents/{document}").get_data(as_text=True)
    assert f"becomes visible to the patient</strong> on {shown}" in html
