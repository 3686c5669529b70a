"""Users for the web tests, and signing them in the way a browser does (CSRF token included)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import organisations, users
from flagging.models import Document
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples

PASSWORD = "correct horse battery staple"
CLINICIAN = "sam.grey"
CLINICIAN_CODE = "C1234567"  # the author in samples.txa()
ADMIN = "ada.admin"


def add_clinician(
    db: Database,
    username: str = CLINICIAN,
    *,
    sender: str = samples.SENDER,
    code: str = CLINICIAN_CODE,
    name: str = "Dr Sam Grey",
) -> int:
    with db.transaction() as session:
        found = organisations.find_sender(session, sender)
        assert found is not None, f"register sender {sender} first"
        user = users.add_user(
            session,
            username=username,
            display_name=name,
            role="clinician",
            password=PASSWORD,
            sender_id=found.id,
            clinician_code=code,
        )
        return user.id


def add_admin(db: Database, username: str = ADMIN) -> int:
    with db.transaction() as session:
        user = users.add_user(
            session, username=username, display_name="Ada Admin", role="admin", password=PASSWORD
        )
        return user.id


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def form_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the form on the page at `url`."""
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return csrf_token(response.get_data(as_text=True))


def ingest(handler: MessageHandler, raw: bytes) -> None:
    reply = handler.handle(raw, transport="mllp")
    assert reply.code == "AA", reply.ack


def document_id(db: Database, number: str) -> int:
    with db.transaction() as session:
        return session.scalars(select(Document.id).where(Document.document_number == number)).one()


def revision(db: Database, document: int) -> int:
    with db.transaction() as session:
        found = session.get(Document, document)
        assert found is not None
        return found.revision
