"""HL7 v2 over HTTP: POST /hl7/v2/messages."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from api.blueprints import ingest
from flagging import organisations
from flagging.models import Document, InboundMessage
from flagging.storage.engine import Database
from tests import hostile, samples

URL = "/hl7/v2/messages"


def _post(
    client: FlaskClient, body: bytes, token: str | None, mimetype: str = "application/hl7-v2"
):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(URL, data=body, headers=headers, content_type=mimetype)


def _documents(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Document)) or 0)


def test_message_posted_with_a_sender_token_is_stored_and_acknowledged_aa(
    client: FlaskClient, sender_token: str, db: Database
) -> None:
    response = _post(client, samples.mdm(control_id="H1"), sender_token)

    assert response.status_code == 200
    assert response.mimetype == "application/hl7-v2"
    assert b"MSA|AA|H1" in response.data
    assert response.headers["X-HL7-Ack-Code"] == "AA"
    assert _documents(db) == 1
    with db.transaction() as session:
        assert session.scalars(select(InboundMessage.transport)).one() == "http"


def test_content_error_is_http_200_with_an_ae_acknowledgement(
    client: FlaskClient, sender_token: str
) -> None:
    response = _post(client, samples.mdm(nhs_number=""), sender_token)
    assert response.status_code == 200
    assert b"MSA|AE|" in response.data
    assert b"ERR|" in response.data


def test_unsupported_type_is_http_200_with_an_ar_acknowledgement(
    client: FlaskClient, sender_token: str
) -> None:
    body = samples.build(samples.msh("A1", "ADT^A01"), samples.pid())
    response = _post(client, body, sender_token, "text/plain")
    assert response.status_code == 200
    assert b"MSA|AR|A1" in response.data


def test_missing_or_wrong_token_is_401_and_nothing_is_processed(
    client: FlaskClient, sender_token: str, db: Database
) -> None:
    for token in (None, "not-a-token"):
        response = _post(client, samples.mdm(), token)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _documents(db) == 0


def test_token_of_one_sender_cannot_send_as_another(
    client: FlaskClient, sender_token: str, db: Database
) -> None:
    with db.transaction() as session:
        organisations.add_sender(session, "ROTHER", "Other Trust")
    response = _post(client, samples.mdm(sender="ROTHER"), sender_token)
    assert b"MSA|AR|" in response.data
    assert _documents(db) == 0


def test_other_media_types_are_415(client: FlaskClient, sender_token: str) -> None:
    response = _post(client, b'{"x": 1}', sender_token, "application/json")
    assert response.status_code == 415
    assert response.json is not None
    assert response.json["status"] == 415


def test_body_over_the_size_limit_is_413(client: FlaskClient, sender_token: str) -> None:
    body = samples.mdm(lines=("x" * 300 * 1024,))  # the test limit is 256 KiB
    response = _post(client, body, sender_token)
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (hostile.BARE_MSH, "AR"),
        (hostile.OFFSET_2500, "AA"),
        (hostile.BYTE_85_IN_MSH_9, "AR"),
        (hostile.NUL_IN_MSH_4, "AR"),
        (b"\x00\xff" * 40, "AR"),
    ],
    ids=["bare-msh", "ts-offset-2500", "byte-85-in-msh-9", "nul-in-msh-4", "binary"],
)
def test_bodies_that_once_got_a_500_are_answered_with_an_ack_and_recorded(
    client: FlaskClient, sender_token: str, db: Database, body: bytes, code: str
) -> None:
    response = _post(client, body, sender_token)

    assert response.status_code == 200
    assert response.headers["X-HL7-Ack-Code"] == code
    assert f"MSA|{code}|".encode() in response.data
    with db.transaction() as session:
        assert session.scalars(select(InboundMessage.raw)).all() == [body]


def test_a_database_that_cannot_be_reached_is_503_with_retry_after_not_500(
    client: FlaskClient, sender_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(session: object, token: str) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(ingest, "sender_by_token", unreachable)

    response = _post(client, samples.mdm(control_id="DOWN"), sender_token)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
