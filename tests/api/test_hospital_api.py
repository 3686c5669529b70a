"""POST /hospital/v1/documents/{sender}/{number}/decision: an EPR records the decision made at
sign-off, with the sender's bearer token."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import organisations
from flagging.models import Decision, Document
from flagging.models.base import utcnow
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples

URL = "/hospital/v1/documents/RXX/DOC-1/decision"
SIGNED_OFF_BY = {"code": "C1234567", "name": "Dr Sam Grey"}


def _post(client: FlaskClient, token: str | None, body: Any, url: str = URL):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(url, json=body, headers=headers)


def _decisions(db: Database) -> list[Decision]:
    with db.transaction() as session:
        return list(session.scalars(select(Decision).order_by(Decision.id)))


def test_epr_withholds_a_document_at_sign_off(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    response = _post(
        client,
        sender_token,
        {
            "visibility": "withheld",
            "reason": "not-yet-discussed",
            "note": "Results to be given in clinic.",
            "withhold_until": "2099-03-01T09:00:00+00:00",
            "decided_by": SIGNED_OFF_BY,
            "version": 1,
        },
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert body is not None
    assert body["sender"] == "RXX"
    assert body["document_number"] == "DOC-1"
    assert body["visibility"] == "withheld"
    assert body["reason"] == "not-yet-discussed"
    assert body["withhold_until"] == "2099-03-01T09:00:00+00:00"
    assert body["decided_by"] == SIGNED_OFF_BY
    [decision] = _decisions(db)
    assert (decision.source, decision.decided_by_code, decision.user_id) == (
        "clinician",
        "C1234567",
        None,
    )


def test_epr_releases_a_document(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    response = _post(client, sender_token, {"visibility": "visible", "decided_by": SIGNED_OFF_BY})
    assert response.status_code == 200
    with db.transaction() as session:
        assert session.scalars(select(Document.visibility)).one() == "visible"


def test_missing_or_unknown_token_is_401_with_problem_details(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    for token in (None, "not-a-token"):
        response = _post(client, token, {"visibility": "visible", "decided_by": SIGNED_OFF_BY})
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _decisions(db) == []


def test_a_senders_token_cannot_decide_on_another_senders_documents(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        organisations.add_sender(session, "ROTHER", "Other Trust")
    accounts.ingest(handler, samples.mdm(sender="ROTHER", number="THEIRS"))
    body = {"visibility": "visible", "decided_by": SIGNED_OFF_BY}
    named_other = _post(client, sender_token, body, "/hospital/v1/documents/ROTHER/THEIRS/decision")
    assert named_other.status_code == 403
    as_own = _post(client, sender_token, body, "/hospital/v1/documents/RXX/THEIRS/decision")
    assert as_own.status_code == 404
    assert as_own.mimetype == "application/problem+json"
    assert _decisions(db) == []


def test_invalid_decision_is_422_with_the_fields_that_are_wrong(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    response = _post(client, sender_token, {"visibility": "withheld", "colour": "blue"})
    assert response.status_code == 422
    problem = response.json
    assert problem is not None
    assert problem["status"] == 422
    assert set(problem["errors"]) >= {"decided_by", "colour"}
    missing_reason = _post(
        client, sender_token, {"visibility": "withheld", "decided_by": SIGNED_OFF_BY}
    )
    assert missing_reason.status_code == 422
    assert "reason" in missing_reason.json["errors"]
    assert _decisions(db) == []


def test_decision_signed_off_on_an_older_version_is_409(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    accounts.ingest(handler, samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1"))
    response = _post(
        client, sender_token, {"visibility": "visible", "decided_by": SIGNED_OFF_BY, "version": 1}
    )
    assert response.status_code == 409
    assert "version 2 has arrived" in response.json["detail"]
    assert _decisions(db) == []


def test_unknown_document_is_404_and_non_json_is_415(
    client: FlaskClient, sender_token: str
) -> None:
    body = {"visibility": "visible", "decided_by": SIGNED_OFF_BY}
    assert _post(client, sender_token, body).status_code == 404
    response = client.post(URL, data="visible", headers={"Authorization": f"Bearer {sender_token}"})
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_an_epr_decision_records_the_sender_and_token_and_the_page_says_recorded_by_epr(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    with db.transaction() as session:
        sender = organisations.sender_by_code(session, "RXX")
        second = organisations.issue_sender_token(session, "RXX", name="EPR", now=utcnow())
    response = _post(
        client,
        second.token,
        {"visibility": "withheld", "reason": "serious-harm", "decided_by": SIGNED_OFF_BY},
    )
    assert response.status_code == 200
    [decision] = _decisions(db)
    assert (decision.sender_id, decision.sender_token_id) == (sender.id, second.id)
    assert decision.decided_by_code == "C1234567"

    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    page = client.get(f"/documents/{accounts.document_id(db, 'DOC-1')}").get_data(as_text=True)
    assert f"recorded by EPR (RXX token {second.id})" in page
    assert "Dr Sam Grey" in page


def test_a_decision_made_on_the_page_is_not_shown_as_recorded_by_epr(
    client: FlaskClient, sender_token: str, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(handler, samples.mdm())
    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    url = f"/documents/{accounts.document_id(db, 'DOC-1')}"
    page = client.get(url).get_data(as_text=True)
    revision = re.search(r'name="revision" value="(\d+)"', page)
    assert revision
    response = client.post(
        f"{url}/decision",
        data={
            "csrf_token": accounts.csrf_token(page),
            "decision": "release",
            "revision": revision.group(1),
        },
    )
    assert response.status_code == 302
    [decision] = _decisions(db)
    assert (decision.sender_id, decision.sender_token_id) == (None, None)
    assert "recorded by EPR" not in client.get(url).get_data(as_text=True)
