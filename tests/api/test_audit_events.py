"""Every kind of audited event writes exactly one audit entry, in the transaction of what it
records, by identifiers only; and the subject access report lists every read of a patient's
documents by clinicians and GP systems."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import audit_log
from flagging.models import AuditEntry
from flagging.storage.engine import Database
from flagging.visibility import release_lapsed
from hl7.handler import MessageHandler
from tests import accounts, samples
from tests.gp_helpers import token_for

NHS = samples.NHS_NUMBERS[0]


def _entries(db: Database) -> list[AuditEntry]:
    with db.reading() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def _new(db: Database, before: int) -> list[AuditEntry]:
    return [e for e in _entries(db) if e.seq > before]


def _last_seq(db: Database) -> int:
    entries = _entries(db)
    return entries[-1].seq if entries else 0


def _doc(handler: MessageHandler, db: Database, number: str = "DOC-1") -> int:
    accounts.ingest(handler, samples.mdm(control_id=f"M-{number}", number=number))
    return accounts.document_id(db, number)


def test_a_received_message_writes_one_entry_naming_sender_control_id_outcome_and_ack(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(control_id="C-1"), transport="mllp", peer="10.0.0.9:5000")
    [entry] = _entries(db)
    detail = json.loads(entry.detail)
    assert (entry.action, entry.actor, entry.outcome) == ("message.received", "sender:RXX", "AA")
    assert entry.message_id == reply.message_id
    assert entry.nhs_number == NHS
    assert detail["control_id"] == "C-1"
    assert detail["outcome"] == "accepted"
    assert detail["peer"] == "10.0.0.9:5000"
    assert detail["documents"] == [entry.document_id]
    assert "TESTPATIENT" not in entry.detail
    assert "Discharged" not in entry.detail


def test_rejected_and_resent_messages_are_each_audited_once(
    handler: MessageHandler, db: Database
) -> None:
    handler.handle(samples.mdm(control_id="C-1"), transport="mllp")
    handler.handle(samples.mdm(control_id="C-1"), transport="mllp")  # a resend
    handler.handle(samples.mdm(control_id="C-2", sender="NOPE"), transport="mllp")
    outcomes = [(e.outcome, json.loads(e.detail)["outcome"]) for e in _entries(db)]
    assert outcomes == [("AA", "accepted"), ("AA", "duplicate"), ("AR", "rejected")]


def test_a_message_in_the_writer_process_is_audited_in_its_transaction(
    either_handler: MessageHandler, db: Database
) -> None:
    either_handler.handle(samples.mdm(control_id="W-1"), transport="mllp")
    either_handler.handle(samples.mdm(control_id="W-2", number="DOC-2"), transport="mllp")
    assert [e.action for e in _entries(db)] == ["message.received"] * 2
    with db.reading() as session:
        assert audit_log.verify(session).ok


@pytest.fixture
def clinician(client: FlaskClient, db: Database) -> FlaskClient:
    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    return client


def test_sign_in_success_and_failure_and_sign_out_are_audited(
    client: FlaskClient, db: Database, sender_token: str
) -> None:
    user_id = accounts.add_clinician(db)
    token = accounts.csrf_token(client.get("/login").get_data(as_text=True))
    client.post(
        "/login",
        data={"username": accounts.CLINICIAN, "password": "wrong", "csrf_token": token},
    )
    client.post(
        "/login",
        data={"username": "someone-else", "password": "typed-here", "csrf_token": token},
    )
    accounts.sign_in(client, accounts.CLINICIAN)
    client.post("/logout", data={"csrf_token": accounts.form_token(client, "/worklist")})
    got = [(e.action, e.actor, e.outcome) for e in _entries(db)]
    assert got == [
        ("signin", f"user:{user_id}", "failure"),
        ("signin", "unknown", "failure"),
        ("signin", f"user:{user_id}", "success"),
        ("session.ended", f"user:{user_id}", ""),
    ]
    assert all(
        "typed-here" not in e.detail and "someone-else" not in e.detail for e in _entries(db)
    )


def test_a_clinician_viewing_a_document_and_deciding_writes_one_entry_each(
    clinician: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    before = _last_seq(db)
    assert clinician.get(f"/documents/{document}").status_code == 200
    [viewed] = _new(db, before)
    assert (viewed.action, viewed.document_id, viewed.nhs_number) == (
        "document.viewed",
        document,
        NHS,
    )
    page = clinician.get(f"/documents/{document}").get_data(as_text=True)
    revision = page.split('name="revision" value="')[1].split('"')[0]
    before = _last_seq(db)
    response = clinician.post(
        f"/documents/{document}/decision",
        data={
            "csrf_token": accounts.csrf_token(page),
            "revision": revision,
            "decision": "withhold",
            "reason": "third-party",
        },
    )
    assert response.status_code == 302
    [decided] = _new(db, before)
    detail = json.loads(decided.detail)
    assert (decided.action, decided.actor, decided.outcome) == (
        "decision.recorded",
        viewed.actor,
        "withheld",
    )
    assert (detail["from"], detail["to"], detail["source"]) == ("pending", "withheld", "clinician")


def test_a_refused_decision_leaves_no_decision_entry(
    clinician: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    page = clinician.get(f"/documents/{document}").get_data(as_text=True)
    before = _last_seq(db)
    clinician.post(
        f"/documents/{document}/decision",
        data={"csrf_token": accounts.csrf_token(page), "revision": "999", "decision": "release"},
    )
    # The stale decision is refused (409) and rolled back: only the page shown again is audited.
    assert [e.action for e in _new(db, before)] == ["document.viewed"]


@pytest.mark.parametrize(
    ("path", "action", "representation"),
    [
        ("", "gp.document.read", "json"),
        ("/fhir", "gp.document.read", "fhir"),
        ("/content", "gp.content.read", "content"),
    ],
)
def test_each_gp_document_read_writes_one_entry_with_token_and_practice(
    client: FlaskClient,
    handler: MessageHandler,
    db: Database,
    path: str,
    action: str,
    representation: str,
) -> None:
    document = _doc(handler, db)
    token = token_for(db, samples.PRACTICE)
    before = _last_seq(db)
    response = client.get(
        f"/gp/v1/practices/{samples.PRACTICE}/documents/{document}{path}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    [entry] = _new(db, before)
    assert (entry.action, entry.practice, entry.document_id) == (action, samples.PRACTICE, document)
    assert entry.actor.startswith("token:")
    assert json.loads(entry.detail)["representation"] == representation


def test_a_gp_feed_read_records_the_events_served(
    client: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    first, second = _doc(handler, db, "DOC-1"), _doc(handler, db, "DOC-2")
    token = token_for(db, samples.PRACTICE)
    before = _last_seq(db)
    response = client.get(
        f"/gp/v1/practices/{samples.PRACTICE}/feed?after=0",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    [entry] = _new(db, before)
    detail = json.loads(entry.detail)
    assert entry.action == "gp.feed.read"
    assert (detail["events"], detail["count"], detail["documents"]) == ([1, 2], 2, [first, second])


def test_a_refused_gp_read_writes_no_entry(
    client: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    before = _last_seq(db)
    response = client.get(
        f"/gp/v1/practices/{samples.PRACTICE}/documents/{document}",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
    assert _new(db, before) == []


@pytest.fixture
def admin(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    accounts.add_admin(db)
    accounts.sign_in(client, accounts.ADMIN)
    return client


def _post(client: FlaskClient, url: str, page: str, **form: str) -> int:
    token = accounts.form_token(client, page)
    return client.post(url, data={"csrf_token": token, **form}).status_code


ADMIN_CHANGES: list[tuple[str, Callable[[FlaskClient], int]]] = [
    (
        "admin.practice",
        lambda c: _post(c, "/admin/practices", "/admin/practices", ods_code="B82002", name="Other"),
    ),
    (
        "admin.rule",
        lambda c: _post(c, "/admin/rules", "/admin/rules", name="w", kind="word", pattern="cancer"),
    ),
    ("admin.rule", lambda c: _post(c, "/admin/rules/starter", "/admin/rules")),
    (
        "admin.user",
        lambda c: _post(
            c,
            "/admin/users",
            "/admin/users",
            username="new.admin",
            display_name="New",
            role="admin",
        ),
    ),
]


@pytest.mark.parametrize(("action", "change"), ADMIN_CHANGES)
def test_each_administrative_change_writes_one_entry_by_the_admin(
    admin: FlaskClient, db: Database, action: str, change: Callable[[FlaskClient], int]
) -> None:
    before = _last_seq(db)
    assert change(admin) in (200, 302)
    entries = [e for e in _new(db, before) if e.action != "signin"]
    assert [e.action for e in entries] == [action]
    assert entries[0].actor.startswith("user:")


def test_subject_access_report_lists_every_read_of_the_patients_documents(
    clinician: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    accounts.ingest(
        handler,
        samples.mdm(control_id="OTHER", number="OTHER", nhs_number=samples.NHS_NUMBERS[1]),
    )
    other = accounts.document_id(db, "OTHER")
    token = token_for(db, samples.PRACTICE)
    clinician.get(f"/documents/{document}")
    clinician.get(f"/documents/{document}/versions/1/content")
    clinician.get(f"/documents/{other}")
    for path in ("", "/content"):
        client_gp = clinician.application.test_client()
        client_gp.get(
            f"/gp/v1/practices/{samples.PRACTICE}/documents/{document}{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
    with db.reading() as session:
        report = audit_log.subject_access(session, NHS)
    assert [(e.action, e.document_id) for e in report] == [
        ("document.viewed", document),
        ("document.viewed", document),
        ("gp.document.read", document),
        ("gp.content.read", document),
    ]
    assert report[0].actor.startswith("user:")
    assert report[2].actor.startswith("token:")


def test_the_admin_audit_page_filters_and_the_subject_access_page_lists_reads(
    admin: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    token = token_for(db, samples.PRACTICE)
    admin.application.test_client().get(
        f"/gp/v1/practices/{samples.PRACTICE}/documents/{document}",
        headers={"Authorization": f"Bearer {token}"},
    )
    page = admin.get("/admin/audit?action=gp").get_data(as_text=True)
    assert "gp.document.read" in page
    assert "message.received" not in page
    assert admin.get("/admin/audit?patient=9990000019").status_code == 422
    report = admin.get(f"/admin/audit/subject-access?patient={NHS}").get_data(as_text=True)
    assert "gp.document.read" in report
    assert "(json)" in report
    # Reading the report is itself recorded.
    assert _entries(db)[-1].outcome == "subject-access"


def test_the_admin_message_page_labels_fields_with_their_hl7_names(
    admin: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(control_id="INSPECT-1"), transport="mllp")
    page = admin.get(f"/admin/messages/{reply.message_id}").get_data(as_text=True)
    assert "TXA: Transcription Document Header" in page
    assert "Unique Document Number" in page
    assert "Patient Identifier List" in page


def test_a_hospital_api_decision_is_audited_as_its_sender(
    client: FlaskClient, handler: MessageHandler, db: Database, sender_token: str
) -> None:
    document = _doc(handler, db)
    before = _last_seq(db)
    response = client.post(
        f"/hospital/v1/documents/{samples.SENDER}/DOC-1/decision",
        json={"visibility": "withheld", "reason": "serious-harm", "decided_by": {"code": "C1"}},
        headers={"Authorization": f"Bearer {sender_token}"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    [entry] = _new(db, before)
    assert (entry.action, entry.actor, entry.document_id) == (
        "decision.recorded",
        f"sender:{samples.SENDER}",
        document,
    )
    assert json.loads(entry.detail)["decided_by_code"] == "C1"


def test_a_review_window_release_is_audited_as_the_service(
    handler: MessageHandler, db: Database
) -> None:
    document = _doc(handler, db)
    before = _last_seq(db)
    with db.transaction() as session:
        released = release_lapsed(session, datetime.now(UTC) + timedelta(days=2))
    assert released == 1
    [entry] = _new(db, before)
    detail = json.loads(entry.detail)
    assert (entry.actor, entry.document_id) == ("system:review-window", document)
    assert (detail["from"], detail["to"]) == ("pending", "visible")
