"""The administrators' practices page shows each practice's MESH delivery and its errors."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from flagging import mesh_channels, mesh_sending, organisations
from flagging.storage.engine import Database
from tests import accounts, samples
from tests.gp_helpers import now


@pytest.fixture
def admin(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    accounts.add_admin(db)
    accounts.sign_in(client, accounts.ADMIN)
    return client


def test_practices_page_shows_mesh_delivery_and_a_stopped_channel_with_its_reason(
    admin: FlaskClient, db: Database
) -> None:
    assert "Delivery over MESH" not in admin.get("/admin/practices").get_data(as_text=True)
    with db.transaction() as session:
        organisations.add_practice(session, "B82002", "Hill Surgery")
        mesh_channels.configure_channel(session, samples.PRACTICE, "NOSUCHBOX1")
        mesh_channels.configure_channel(
            session, "B82002", "B82002OT01", workflow="TOC_FHIR_IP_DISCH"
        )
        practice_id = organisations.get_practice(session, samples.PRACTICE).id
        target = mesh_sending.claim(session, practice_id, now())
        assert target is not None
        mesh_sending.rejected(session, target, 1, "MESH error 12: Unregistered to address", now())

    page = admin.get("/admin/practices").get_data(as_text=True)
    assert "Delivery over MESH" in page
    assert "TOC_FHIR_IP_DISCH" in page
    assert "<strong>Stopped</strong>: stopped at event 1" in page
    assert "Unregistered to address" in page
    assert f"flagging practices set {samples.PRACTICE} --mesh-mailbox NOSUCHBOX1" in page
