"""Visibility: set at ingest, decided by people, released by the review window or expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from flagging import screening
from flagging.errors import Conflict, InvalidInput
from flagging.models import (
    Decision,
    Document,
    DocumentVersion,
    FeedEvent,
    Practice,
    ScreeningHit,
    Sender,
    Visibility,
)
from flagging.storage.engine import Database
from flagging.visibility import Actor, decide_visibility, release_lapsed
from flagging.worklist import Filters, worklist_page
from hl7.handler import MessageHandler
from tests import samples

CLINICIAN = Actor(code="C1234567", name="Dr Sam Grey", user_id=None)


def _ingest(handler: MessageHandler, raw: bytes) -> None:
    reply = handler.handle(raw, transport="mllp")
    assert reply.code == "AA", reply.ack


def _document(db: Database, number: str = "DOC-1") -> Document:
    with db.transaction() as session:
        return session.scalars(select(Document).where(Document.document_number == number)).one()


def _decisions(db: Database, document_id: int) -> list[Decision]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Decision).where(Decision.document_id == document_id).order_by(Decision.id)
            )
        )


def _events(db: Database) -> list[tuple[int, str, str]]:
    with db.transaction() as session:
        return [
            (e.seq, e.type, e.visibility)
            for e in session.scalars(
                select(FeedEvent).order_by(FeedEvent.practice_id, FeedEvent.seq)
            )
        ]


def _decide(db: Database, document_id: int, visibility: str, **kwargs: object) -> Decision:
    with db.transaction() as session:
        return decide_visibility(
            session,
            document_id=document_id,
            visibility=Visibility(visibility),
            actor=CLINICIAN,
            now=datetime.now(UTC),
            **kwargs,  # type: ignore[arg-type]
        )


def _release(db: Database, at: datetime) -> int:
    with db.transaction() as session:
        return release_lapsed(session, at)


def _zfl(status: str, reason: str = "", until: str = "") -> str:
    label = "NOPAT^no disclosure to patient^v3-ActCode" if status != "V" else ""
    return samples.segment(
        "ZFL",
        {
            1: "1",
            2: status,
            3: label,
            4: f"{reason}^{reason}^FLAGREASON" if reason else "",
            5: "C1234567^GREY^SAM",
            6: "20261124093000",
            7: until,
            8: "message",
        },
    )


def _with_segment(raw: bytes, segment: str) -> bytes:
    return raw + segment.encode() + b"\r"


def _set_window(db: Database, minutes: int) -> None:
    with db.transaction() as session:
        session.execute(update(Sender).values(review_window_minutes=minutes))


def test_new_document_is_pending_until_its_review_window_lapses(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm())
    document = _document(db)
    assert document.visibility == "pending"
    assert document.auto_release is True
    assert document.review_due_at is not None
    due = document.review_due_at
    assert timedelta(hours=23) < due - document.created_at <= timedelta(hours=24)

    assert _release(db, due - timedelta(seconds=1)) == 0
    assert _release(db, due + timedelta(seconds=1)) == 1
    released = _document(db)
    assert released.visibility == "visible"
    [decision] = _decisions(db, document.id)
    assert (decision.visibility, decision.source) == ("visible", "review-window")
    assert _release(db, due + timedelta(hours=1)) == 0  # nothing is released twice


def test_zero_review_window_releases_at_once(handler: MessageHandler, db: Database) -> None:
    _set_window(db, 0)
    _ingest(handler, samples.mdm())
    document = _document(db)
    assert document.visibility == "visible"
    assert [d.source for d in _decisions(db, document.id)] == ["review-window"]


def test_screening_hit_holds_a_document_for_a_person_and_never_releases_it(
    handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        screening.add_starter_rules(session)
    _set_window(db, 0)
    text = "Seen with her partner. Concerns about domestic abuse were raised."
    _ingest(handler, samples.mdm(lines=(text,)))
    document = _document(db)
    assert (document.visibility, document.auto_release) == ("pending", False)
    with db.transaction() as session:
        [hit] = session.scalars(select(ScreeningHit)).all()
        version = session.scalars(select(DocumentVersion)).one()
    assert version.content is not None
    assert version.content.decode()[hit.start : hit.end] == "domestic abuse"
    assert _release(db, datetime.now(UTC) + timedelta(days=365)) == 0
    assert _document(db).visibility == "pending"


def test_rules_changed_since_the_last_message_are_the_ones_that_screen(
    either_handler: MessageHandler, db: Database
) -> None:
    # Each message is screened ahead of the writer's transaction with the rules this process
    # compiled last (refreshed once a second with a writer process); a rule added or switched
    # off since then must still decide the next message.
    handler = either_handler
    _set_window(db, 0)
    text = "Concerns about domestic abuse were raised."
    _ingest(handler, samples.mdm(control_id="M1", number="DOC-1", lines=(text,)))
    assert _document(db, "DOC-1").visibility == "visible"
    with db.transaction() as session:
        rule = screening.add_rule(session, name="Abuse", kind="phrase", pattern="domestic abuse")
    _ingest(handler, samples.mdm(control_id="M2", number="DOC-2", lines=(text,)))
    assert _document(db, "DOC-2").visibility == "pending"
    with db.transaction() as session:
        screening.set_rule_active(session, rule.id, False)
    _ingest(handler, samples.mdm(control_id="M3", number="DOC-3", lines=(text,)))
    assert _document(db, "DOC-3").visibility == "visible"


def test_document_type_and_specialty_rules_hold_documents_too(
    handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        screening.add_rule(session, name="Discharge", kind="document-type", pattern="ds")
    _set_window(db, 0)
    _ingest(handler, samples.mdm())
    assert _document(db).visibility == "pending"


def test_a_document_type_rule_holds_a_pdf_report_whose_rendition_is_not_screened_as_text(
    handler: MessageHandler, db: Database
) -> None:
    # The PDF is kept as the span of its Base64 and never decoded to be screened: the rules
    # that do not read text (document type, specialty) still apply to it.
    _set_window(db, 0)
    _ingest(handler, samples.oru(control_id="R1", number="XR-1", observations=samples.obx_pdf()))
    assert _document(db, "XR-1").visibility == "visible"
    with db.transaction() as session:
        screening.add_rule(session, name="Imaging", kind="document-type", pattern="xr")
    _ingest(handler, samples.oru(control_id="R2", number="XR-2", observations=samples.obx_pdf()))
    assert _document(db, "XR-2").visibility == "pending"


@pytest.mark.parametrize(
    ("segment", "visibility", "reason"),
    [
        (_zfl("W", "safeguarding"), "withheld", "safeguarding"),
        (_zfl("W", "unknown-code"), "withheld", "other"),
        (_zfl("P"), "pending", ""),
        (_zfl("V"), "visible", ""),
    ],
    ids=["withheld", "withheld-unknown-reason", "pending", "visible"],
)
def test_zfl_segment_sets_visibility_at_source(
    handler: MessageHandler, db: Database, segment: str, visibility: str, reason: str
) -> None:
    _ingest(handler, _with_segment(samples.mdm(), segment))
    document = _document(db)
    assert document.visibility == visibility
    assert document.auto_release is False
    [decision] = _decisions(db, document.id)
    assert (decision.source, decision.reason, decision.decided_by_code) == (
        "message",
        reason,
        "C1234567",
    )


def test_zfl_with_an_invalid_status_is_a_content_error(handler: MessageHandler) -> None:
    reply = handler.handle(_with_segment(samples.mdm(), _zfl("X")), transport="mllp")
    assert reply.code == "AE"
    assert b"ZFL^1^2" in reply.ack


@pytest.mark.parametrize(
    ("policy", "visibility"), [("pending", "pending"), ("withheld", "withheld")]
)
def test_txa18_very_restricted_follows_the_senders_policy(
    handler: MessageHandler, db: Database, policy: str, visibility: str
) -> None:
    with db.transaction() as session:
        session.execute(update(Sender).values(txa18_v_policy=policy, review_window_minutes=0))
    raw = samples.mdm().replace(b"|AU|U|AV|", b"|AU|V|AV|")
    _ingest(handler, raw)
    document = _document(db)
    assert document.visibility == visibility
    assert _decisions(db, document.id)[0].source == "message"


def test_txa19_unavailable_is_not_read_as_a_visibility_flag(
    handler: MessageHandler, db: Database
) -> None:
    _set_window(db, 0)
    _ingest(handler, samples.mdm().replace(b"|AU|U|AV|", b"|AU|U|UN|"))
    assert _document(db).visibility == "visible"


def test_clinician_decisions_are_kept_in_history_and_never_overwritten(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm())
    document = _document(db)
    _decide(db, document.id, "withheld", reason="not-yet-discussed", note="Clinic on Friday")
    _decide(db, document.id, "visible")
    history = _decisions(db, document.id)
    assert [(d.visibility, d.reason, d.source) for d in history] == [
        ("withheld", "not-yet-discussed", "clinician"),
        ("visible", "", "clinician"),
    ]
    assert history[0].note == "Clinic on Friday"
    assert _document(db).visibility == "visible"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reason": ""}, "reason is required"),
        ({"reason": "other"}, "needs a note"),
        ({"reason": "legal", "withhold_until": datetime(2000, 1, 1, tzinfo=UTC)}, "future"),
    ],
)
def test_withholding_needs_a_reason_a_note_for_other_and_a_future_until_date(
    handler: MessageHandler, db: Database, kwargs: dict[str, object], message: str
) -> None:
    _ingest(handler, samples.mdm())
    with pytest.raises(InvalidInput, match=message):
        _decide(db, _document(db).id, "withheld", **kwargs)


def test_decision_on_a_stale_revision_is_refused(handler: MessageHandler, db: Database) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    seen = _document(db).revision
    _ingest(handler, samples.mdm("T08", control_id="M2", lines=("Edited.",)))
    with pytest.raises(Conflict, match="changed since"):
        _decide(db, _document(db).id, "visible", expected_revision=seen)
    _decide(db, _document(db).id, "visible", expected_revision=_document(db).revision)


def test_withhold_until_passing_releases_with_source_expiry(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm())
    document = _document(db)
    until = datetime.now(UTC) + timedelta(days=7)
    _decide(db, document.id, "withheld", reason="not-yet-discussed", withhold_until=until)
    assert _release(db, until - timedelta(minutes=1)) == 0
    assert _release(db, until + timedelta(minutes=1)) == 1
    assert _decisions(db, document.id)[-1].source == "expiry"
    assert _document(db).visibility == "visible"


def test_new_version_of_a_withheld_document_starts_withheld(
    handler: MessageHandler, db: Database
) -> None:
    _set_window(db, 0)
    _ingest(handler, samples.mdm(control_id="M1"))
    _decide(db, _document(db).id, "withheld", reason="third-party")
    _ingest(handler, samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1"))
    document = _document(db)
    assert (document.latest_version, document.visibility) == (2, "withheld")
    assert _decisions(db, document.id)[-1].reason == "third-party"


def test_new_version_of_a_visible_document_goes_through_the_rules_again(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    _decide(db, _document(db).id, "visible")
    _ingest(handler, samples.mdm("T08", control_id="M2", lines=("Edited text.",)))
    document = _document(db)
    assert (document.visibility, document.auto_release) == ("pending", True)


def test_feed_carries_availability_decisions_versions_and_withdrawal_in_order(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    document = _document(db)
    _decide(db, document.id, "withheld", reason="safeguarding")
    _ingest(handler, samples.mdm("T08", control_id="M2", lines=("Edited.",)))
    _ingest(handler, samples.mdm("T11", control_id="M3", lines=()))
    assert _events(db) == [
        (1, "document.available", "pending"),
        (2, "visibility.changed", "withheld"),
        (3, "document.superseded", "withheld"),
        (4, "document.withdrawn", "withheld"),
    ]


def test_practice_that_waits_for_decisions_gets_documents_only_once_decided(
    handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        session.execute(update(Practice).values(feed_mode="decided"))
    _ingest(handler, samples.mdm())
    assert _events(db) == []
    _decide(db, _document(db).id, "visible")
    assert _events(db) == [(1, "document.available", "visible")]


def test_unroutable_documents_enter_no_feed_until_routed(
    handler: MessageHandler, db: Database
) -> None:
    from flagging.documents import route_document

    _ingest(handler, samples.mdm(practice="V81999"))
    assert _events(db) == []
    document_id = _document(db).id
    with db.transaction() as session:
        route_document(session, document_id, samples.PRACTICE)
    assert _events(db) == [(1, "document.available", "pending")]


def test_withdrawn_document_takes_no_decision_and_is_never_released_by_expiry(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    document = _document(db)
    until = datetime.now(UTC) + timedelta(days=1)
    _decide(db, document.id, "withheld", reason="legal", withhold_until=until)
    _ingest(handler, samples.mdm("T11", control_id="M2", lines=()))
    with pytest.raises(Conflict, match="withdrawn"):
        _decide(db, document.id, "visible")
    assert _release(db, until + timedelta(days=1)) == 0
    assert _document(db).visibility == "withheld"


def test_review_window_never_releases_a_document_someone_decided_to_withhold(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm())
    document = _document(db)
    due = document.review_due_at
    assert due is not None
    _decide(db, document.id, "withheld", reason="serious-harm")
    assert _release(db, due + timedelta(days=30)) == 0
    assert _document(db).visibility == "withheld"
    assert [d.source for d in _decisions(db, document.id)] == ["clinician"]


def _worklist_withheld(db: Database) -> list[tuple[str, int]]:
    with db.reading() as session:
        sender_id = session.scalars(select(Sender.id)).one()
        page = worklist_page(session, Filters(sender_id, status=Visibility.WITHHELD))
        return [(r.document.document_number, r.document.latest_version) for r in page.rows]


def test_a_message_never_releases_what_a_clinician_withheld(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    document_id = _document(db).id
    _decide(db, document_id, "withheld", reason="safeguarding")

    # The hospital sends an addendum flagged visible at source, then one with TXA-18 U
    # (usual control), then one that asks for pending (a step towards release).
    addendum = samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1")
    _ingest(handler, _with_segment(addendum, _zfl("V")))
    _ingest(handler, samples.mdm("T06", control_id="M3", number="DOC-1-B", parent="DOC-1"))
    asks_pending = samples.mdm("T06", control_id="M4", number="DOC-1-C", parent="DOC-1")
    _ingest(handler, _with_segment(asks_pending, _zfl("P")))

    document = _document(db)
    assert (document.latest_version, document.visibility) == (4, "withheld")
    assert document.withhold_until is None
    decisions = _decisions(db, document_id)
    assert [(d.visibility, d.source, d.reason) for d in decisions] == [
        ("withheld", "clinician", "safeguarding"),
    ] * 4
    assert "the message asked for visible" in decisions[1].note
    # The practice was told of each new version, never that it became visible.
    assert [e[1:] for e in _events(db)][1:] == [
        ("visibility.changed", "withheld"),
        ("document.superseded", "withheld"),
        ("document.superseded", "withheld"),
        ("document.superseded", "withheld"),
    ]
    # The worklist shows the new version first among the withheld, for the clinician to
    # decide on; a person's release still works.
    assert _worklist_withheld(db) == [("DOC-1", 4)]
    _decide(db, document_id, "visible", expected_revision=document.revision)
    assert _document(db).visibility == "visible"


def test_a_message_may_still_withhold_but_not_release_after_withholding_a_clinicians_choice(
    handler: MessageHandler, db: Database
) -> None:
    _set_window(db, 0)
    _ingest(handler, samples.mdm(control_id="M1"))
    document_id = _document(db).id
    _decide(db, document_id, "withheld", reason="third-party")
    withhold = samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1")
    _ingest(handler, _with_segment(withhold, _zfl("W", "legal")))
    assert _decisions(db, document_id)[-1].source == "message"
    release = samples.mdm("T06", control_id="M3", number="DOC-1-B", parent="DOC-1")
    _ingest(handler, _with_segment(release, _zfl("V")))
    assert _document(db).visibility == "withheld"


def test_a_message_may_release_what_a_message_or_a_released_decision_left_withheld(
    handler: MessageHandler, db: Database
) -> None:
    _set_window(db, 0)
    _ingest(handler, _with_segment(samples.mdm(control_id="M1"), _zfl("W", "legal")))
    release = samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1")
    _ingest(handler, _with_segment(release, _zfl("V")))
    assert _document(db).visibility == "visible"

    # A clinician withheld, then released; later the hospital withholds and releases again.
    document_id = _document(db).id
    _decide(db, document_id, "withheld", reason="legal")
    _decide(db, document_id, "visible")
    again = samples.mdm("T06", control_id="M3", number="DOC-1-B", parent="DOC-1")
    _ingest(handler, _with_segment(again, _zfl("W", "legal")))
    last = samples.mdm("T06", control_id="M4", number="DOC-1-C", parent="DOC-1")
    _ingest(handler, _with_segment(last, _zfl("V")))
    assert _document(db).visibility == "visible"


def _version_states(db: Database, document_id: int) -> list[tuple[int, str, str]]:
    with db.transaction() as session:
        return [
            (v.version, v.visibility, v.reason)
            for v in session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version)
            )
        ]


def test_no_superseded_version_needs_a_decision_after_its_successor_was_decided(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    _ingest(handler, samples.mdm("T06", control_id="M2", number="ADD-1", parent="DOC-1"))
    document = _document(db)
    assert [s[1] for s in _version_states(db, document.id)] == ["pending", "pending"]

    _decide(db, document.id, "visible")

    assert _version_states(db, document.id) == [(1, "visible", ""), (2, "visible", "")]
    first, second = _decisions(db, document.id)
    assert (first.source, second.source) == ("clinician", "clinician")
    assert "decided on version 2" in first.note
    assert _events(db)[-2:] == [
        (3, "visibility.changed", "visible"),
        (4, "visibility.changed", "visible"),
    ]


def test_withholding_a_new_version_withholds_the_released_original_too(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    document = _document(db)
    _decide(db, document.id, "visible")
    _ingest(handler, samples.mdm("T06", control_id="M2", number="ADD-1", parent="DOC-1"))

    _decide(db, document.id, "withheld", reason="third-party")

    assert _version_states(db, document.id) == [
        (1, "withheld", "third-party"),
        (2, "withheld", "third-party"),
    ]


def test_the_review_window_releasing_the_latest_version_leaves_no_earlier_one_pending(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    _ingest(handler, samples.mdm("T08", control_id="M2", lines=("Edited.",)))
    due = _document(db).review_due_at
    assert due is not None

    assert _release(db, due + timedelta(seconds=1)) == 1

    assert [s[1] for s in _version_states(db, _document(db).id)] == ["visible", "visible"]


def test_a_cancel_withholds_every_version_and_nothing_releases_it_again(
    handler: MessageHandler, db: Database
) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    document = _document(db)
    _decide(db, document.id, "visible")

    _ingest(handler, samples.mdm("T11", control_id="M2", lines=()))

    document = _document(db)
    assert (document.status, document.visibility, document.auto_release) == (
        "withdrawn",
        "withheld",
        False,
    )
    assert document.review_due_at is None
    assert _version_states(db, document.id) == [
        (1, "withheld", "withdrawn"),
        (2, "withheld", "withdrawn"),
    ]
    with pytest.raises(Conflict, match="withdrawn"):
        _decide(db, document.id, "visible")
    assert _release(db, datetime.now(UTC) + timedelta(days=365)) == 0
    # A message arriving after the cancel cannot show it either.
    _ingest(handler, samples.mdm("T08", control_id="M3", lines=("Edited after cancel.",)))
    assert _version_states(db, document.id)[-1][1:] == ("withheld", "withdrawn")


def test_a_person_cannot_choose_the_withdrawn_reason(handler: MessageHandler, db: Database) -> None:
    _ingest(handler, samples.mdm(control_id="M1"))
    with pytest.raises(InvalidInput, match="reason"):
        _decide(db, _document(db).id, "withheld", reason="withdrawn")
