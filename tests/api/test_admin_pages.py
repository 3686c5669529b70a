"""The administrators' pages: senders, practices, users, rules, quarantine, unroutable."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import bindings, organisations
from flagging.models import (
    Document,
    FeedEvent,
    InboundMessage,
    ReviewWindow,
    ScreeningRule,
    Sender,
    User,
)
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples


@pytest.fixture
def admin(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    accounts.add_admin(db)
    accounts.sign_in(client, accounts.ADMIN)
    return client


def _post(client: FlaskClient, url: str, page: str, **form: str):
    return client.post(url, data={"csrf_token": accounts.form_token(client, page), **form})


def _sender(db: Database) -> Sender:
    with db.transaction() as session:
        return session.scalars(select(Sender)).one()


def test_admin_sets_a_senders_review_window_and_txa18_policy(
    admin: FlaskClient, db: Database
) -> None:
    sender = _sender(db)
    response = _post(
        admin,
        f"/admin/senders/{sender.id}/policy",
        "/admin/senders",
        amount="2",
        unit="days",
        txa18_v_policy="withheld",
    )
    assert response.status_code == 302
    changed = _sender(db)
    assert (changed.review_window_minutes, changed.txa18_v_policy) == (2880, "withheld")
    assert "Now 2 days" in admin.get("/admin/senders").get_data(as_text=True)


def test_a_negative_review_window_is_refused_with_a_message(
    admin: FlaskClient, db: Database
) -> None:
    sender = _sender(db)
    response = _post(
        admin,
        f"/admin/senders/{sender.id}/policy",
        "/admin/senders",
        amount="-1",
        unit="hours",
        txa18_v_policy="pending",
    )
    assert response.status_code == 422
    assert "Enter 0 or more" in response.get_data(as_text=True)
    assert _sender(db).review_window_minutes == 1440


def test_admin_gives_a_document_type_its_own_review_window_and_removes_it(
    admin: FlaskClient, db: Database
) -> None:
    sender = _sender(db)
    _post(
        admin,
        f"/admin/senders/{sender.id}/review-windows",
        "/admin/senders",
        document_type="DS",
        amount="90",
        unit="minutes",
    )
    with db.transaction() as session:
        window = session.scalars(select(ReviewWindow)).one()
        assert (window.document_type, window.minutes) == ("DS", 90)
    _post(
        admin,
        f"/admin/senders/{sender.id}/review-windows/{window.id}/delete",
        "/admin/senders",
    )
    with db.transaction() as session:
        assert session.scalars(select(ReviewWindow)).all() == []


def test_admin_registers_a_practice_and_a_bad_code_is_explained(admin: FlaskClient) -> None:
    ok = _post(admin, "/admin/practices", "/admin/practices", ods_code="b82005", name="Hill")
    assert ok.status_code == 302
    assert "B82005" in admin.get("/admin/practices").get_data(as_text=True)
    bad = _post(admin, "/admin/practices", "/admin/practices", ods_code="XYZ")
    assert bad.status_code == 422
    assert "a letter and 5 digits" in bad.get_data(as_text=True)


def test_admin_adds_a_clinician_whose_password_is_shown_once_and_works(
    admin: FlaskClient, db: Database, client: FlaskClient
) -> None:
    sender = _sender(db)
    response = _post(
        admin,
        "/admin/users",
        "/admin/users",
        username="Robin.Blue",
        display_name="Dr Robin Blue",
        role="clinician",
        sender_id=str(sender.id),
        clinician_code="C7654321",
    )
    assert response.status_code == 200
    password = re.search(r'<span class="password">([^<]+)</span>', response.get_data(as_text=True))
    assert password
    assert password.group(1) not in admin.get("/admin/users").get_data(as_text=True)
    with db.transaction() as session:
        user = session.scalars(select(User).where(User.username == "robin.blue")).one()
        assert (user.role, user.sender_id, user.clinician_code) == (
            "clinician",
            sender.id,
            "C7654321",
        )
    fresh = client.application.test_client()
    accounts.sign_in(fresh, "robin.blue", password.group(1))
    assert fresh.get("/worklist").status_code == 200


def test_a_clinician_without_a_trust_is_refused(admin: FlaskClient) -> None:
    response = _post(
        admin, "/admin/users", "/admin/users", username="x.y", display_name="X", role="clinician"
    )
    assert response.status_code == 422
    assert "Choose the clinician&#39;s trust" in response.get_data(as_text=True)


def test_admin_resets_a_password_and_makes_an_account_inactive(
    admin: FlaskClient, db: Database
) -> None:
    clinician = accounts.add_clinician(db)
    reset = _post(admin, f"/admin/users/{clinician}/reset-password", "/admin/users")
    new_password = re.search(r'<span class="password">([^<]+)</span>', reset.get_data(as_text=True))
    assert new_password
    fresh = admin.application.test_client()
    accounts.sign_in(fresh, accounts.CLINICIAN, new_password.group(1))

    _post(admin, f"/admin/users/{clinician}/active", "/admin/users", active="0")
    with db.transaction() as session:
        user = session.get(User, clinician)
        assert user is not None
        assert not user.active
    assert fresh.get("/worklist").status_code == 302


def test_admin_adds_turns_off_and_loads_starter_screening_rules(
    admin: FlaskClient, db: Database
) -> None:
    added = _post(
        admin, "/admin/rules", "/admin/rules", kind="phrase", pattern="lasting power of attorney"
    )
    assert added.status_code == 302
    broken = _post(admin, "/admin/rules", "/admin/rules", kind="regex", pattern="(unclosed")
    assert broken.status_code == 422
    assert "does not compile" in broken.get_data(as_text=True)
    with db.transaction() as session:
        rule = session.scalars(select(ScreeningRule)).one()
    _post(admin, f"/admin/rules/{rule.id}/active", "/admin/rules", active="0")
    _post(admin, "/admin/rules/starter", "/admin/rules")
    with db.transaction() as session:
        rules = list(session.scalars(select(ScreeningRule)))
        assert len(rules) > 20
        assert not next(r for r in rules if r.id == rule.id).active


def test_rejected_message_is_reprocessed_once_its_sender_is_registered(
    admin: FlaskClient, db: Database, handler: MessageHandler
) -> None:
    reply = handler.handle(samples.mdm(sender="RNEW", control_id="Q1"), transport="mllp")
    assert reply.code == "AR"
    page = admin.get("/admin/messages?outcome=rejected").get_data(as_text=True)
    assert "Q1" in page
    with db.transaction() as session:
        organisations.add_sender(session, "RNEW", "New Trust")
    response = _post(
        admin,
        f"/admin/messages/{reply.message_id}/reprocess",
        "/admin/messages?outcome=rejected",
        outcome="rejected",
    )
    assert response.status_code == 302
    flashed = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "accepted (AA)" in flashed
    with db.transaction() as session:
        original = session.get(InboundMessage, reply.message_id)
        assert original is not None
        assert original.reprocessed_as_id is not None
        assert session.scalars(select(Document.document_number)).all() == ["DOC-1"]


def test_quarantine_lists_messages_with_content_errors(
    admin: FlaskClient, handler: MessageHandler
) -> None:
    assert (
        handler.handle(samples.mdm(nhs_number="", control_id="NONHS"), transport="mllp").code
        == "AE"
    )
    page = admin.get("/admin/messages").get_data(as_text=True)
    assert "NONHS" in page
    assert "Reprocess" in page
    assert admin.get("/admin/").get_data(as_text=True).count("1 message with content errors") == 1


def test_admin_assigns_a_practice_to_an_unroutable_document(
    admin: FlaskClient, db: Database, handler: MessageHandler
) -> None:
    accounts.ingest(handler, samples.mdm(practice="V81999", number="LOST-1"))
    page = admin.get("/admin/unroutable").get_data(as_text=True)
    assert "LOST-1" in page
    assert "999 000 0018" in page
    document = accounts.document_id(db, "LOST-1")
    wrong = _post(
        admin, f"/admin/documents/{document}/route", "/admin/unroutable", practice="Z99999"
    )
    assert wrong.status_code == 422
    assert "no practice Z99999" in wrong.get_data(as_text=True)
    routed = _post(
        admin, f"/admin/documents/{document}/route", "/admin/unroutable", practice=samples.PRACTICE
    )
    assert routed.status_code == 302
    with db.transaction() as session:
        found = session.get(Document, document)
        assert found is not None
        assert found.practice_ods_code == samples.PRACTICE
        assert session.scalars(select(FeedEvent.type)).all() == ["document.available"]
    flashed = admin.get(routed.headers["Location"]).get_data(as_text=True)
    assert "Document LOST-1 now goes to A81001." in flashed
    assert "LOST-1" not in admin.get("/admin/unroutable").get_data(as_text=True)


def test_admin_forms_without_the_csrf_token_are_refused(admin: FlaskClient, db: Database) -> None:
    response = admin.post("/admin/rules/starter")
    assert response.status_code == 400
    with db.transaction() as session:
        assert session.scalars(select(ScreeningRule)).all() == []


def test_the_senders_page_shows_each_senders_mllp_bindings(
    admin: FlaskClient, db: Database
) -> None:
    page = admin.get("/admin/senders").get_data(as_text=True)
    assert "Not bound: it may send over MLLP only from this machine" in page
    sender_id = _sender(db).id
    with db.transaction() as session:
        bindings.set_bindings(
            session,
            sender_id,
            networks=["192.0.2.0/24"],
            certificates=["CN=rxx-engine,O=Test <Trust>"],
        )
    page = admin.get("/admin/senders").get_data(as_text=True)
    assert "192.0.2.0/24" in page
    assert "<code>CN=rxx-engine,O=Test &lt;Trust&gt;</code>" in page
    assert "Not bound" not in page
