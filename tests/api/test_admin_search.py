"""Finding a message on the administrators' pages, reading it (escaped) with its ACK, and
closing a quarantine entry with a reason."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from flagging.models import InboundMessage
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples


@pytest.fixture
def admin(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    accounts.add_admin(db)
    accounts.sign_in(client, accounts.ADMIN)
    return client


def _cell(control_id: str) -> str:
    return f'<span class="cell-secondary">{control_id}</span>'


def test_search_finds_messages_by_nhs_number_and_outcome_and_refuses_bad_input(
    admin: FlaskClient, handler: MessageHandler
) -> None:
    handler.handle(samples.mdm(control_id="W1", nhs_number=samples.NHS_NUMBERS[0]), transport="t")
    handler.handle(
        samples.mdm(control_id="W2", number="W-2", nhs_number=samples.NHS_NUMBERS[1]),
        transport="t",
    )
    page = admin.get(f"/admin/search?nhs_number={samples.NHS_NUMBERS[1]}").get_data(as_text=True)
    # The MSH-10 cell, not the bare id: a page's random CSRF token may hold "W1" by chance.
    assert _cell("W2") in page
    assert _cell("W1") not in page
    assert _cell("W1") in admin.get("/admin/search?outcome=accepted").get_data(as_text=True)
    bad = admin.get("/admin/search?since=yesterday&nhs_number=123")
    assert bad.status_code == 422
    assert "Enter a date like" in bad.get_data(as_text=True)


def test_a_message_page_shows_its_bytes_escaped_and_its_ack_and_closes_with_a_reason(
    admin: FlaskClient, db: Database, handler: MessageHandler
) -> None:
    bad = samples.mdm(
        control_id="W3", nhs_number=samples.INVALID_NHS_NUMBER, lines=("<script>x</script>",)
    )
    reply = handler.handle(bad, transport="t")
    assert reply.code == "AE"
    url = f"/admin/search/messages/{reply.message_id}"
    page = admin.get(url).get_data(as_text=True)
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>x" not in page
    assert "MSA|AE|W3" in page

    token = accounts.form_token(admin, url)
    empty = admin.post(f"{url}/close", data={"csrf_token": token, "action": "dismiss"})
    assert empty.status_code == 302
    assert "give a reason" in admin.get(url).get_data(as_text=True)
    done = admin.post(
        f"{url}/close",
        data={"csrf_token": token, "action": "dismiss", "reason": "a test message"},
    )
    assert done.status_code == 302
    with db.reading() as session:
        row = session.get(InboundMessage, reply.message_id)
        assert row is not None
        assert (row.resolution, row.resolution_reason) == ("dismissed", "a test message")
        assert row.resolved_by == accounts.ADMIN
    # Without the form's token nothing changes (CSRF).
    refused = admin.post(f"{url}/close", data={"action": "resolve", "reason": "x"})
    assert refused.status_code == 400
