"""/metrics: closed by default, answered only with its token, and its figures move as messages
arrive, people sign in wrongly and the quarantine fills."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from cli.wiring import Services, web_app
from config import Settings
from flagging.models import Document, Practice
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metrics_app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    opened = dataclasses.replace(settings, metrics_token=TOKEN)
    return web_app(Services(opened, db, handler))


def _scrape(client: FlaskClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def _value(text: str, name: str, **labels: str) -> float:
    """The sample's value (0 when absent): labels in any order."""
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


def test_metrics_are_closed_without_a_token_setting_and_refuse_a_wrong_token(
    app: Flask, metrics_app: Flask
) -> None:
    assert app.test_client().get("/metrics").status_code == 404
    client = metrics_app.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_listed_metric_is_exported_with_its_labels(
    metrics_app: Flask, handler: MessageHandler
) -> None:
    handler.handle(samples.mdm(control_id="N1"), transport="mllp")
    text = _scrape(metrics_app.test_client())
    for name in (
        "flagging_messages_total",
        "flagging_ack_latency_seconds",
        "flagging_documents_pending",
        "flagging_documents_pending_oldest_age_seconds",
        "flagging_documents_overdue",
        "flagging_feed_lag_events",
        "flagging_push_consecutive_failures",
        "flagging_push_last_success_age_seconds",
        "flagging_quarantine_size",
        "flagging_quarantine_last_hour",
        "flagging_sender_last_message_age_seconds",
        "flagging_alerts_firing",
        "flagging_alert",
    ):
        assert f"# TYPE {name} " in text, name
    assert re.search(
        r'^flagging_ack_latency_seconds_bucket\{le="0.005",transport="mllp"\}', text, re.M
    )
    assert _value(text, "flagging_feed_lag_events", practice=samples.PRACTICE) >= 1
    for rule in ("sender-silent", "decision-overdue", "push-failing", "quarantine-growing"):
        assert f'flagging_alerts_firing{{rule="{rule}"}}' in text


def test_metric_values_move_when_messages_arrive_and_sign_ins_fail(
    metrics_app: Flask, handler: MessageHandler
) -> None:
    client = metrics_app.test_client()
    before = _scrape(client)

    for i in range(3):
        assert (
            handler.handle(samples.mdm(control_id=f"V{i}", number=f"V-{i}"), transport="mllp").code
            == "AA"
        )
    handler.handle(samples.mdm(control_id="V0", number="V-0"), transport="mllp")  # a resend
    bad = samples.mdm(control_id="V9", nhs_number=samples.INVALID_NHS_NUMBER)
    assert handler.handle(bad, transport="http").code == "AE"
    client.post("/login", data={"username": "nobody", "password": "x"})  # refused (no CSRF)
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    failed = client.post(
        "/login", data={"username": "nobody", "password": "wrong", "csrf_token": token.group(1)}
    )
    assert failed.status_code == 401
    after = _scrape(client)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    sender = samples.SENDER
    assert moved("flagging_messages_total", sender=sender, outcome="accepted") == 3
    assert moved("flagging_messages_total", sender=sender, outcome="duplicate") == 1
    assert moved("flagging_messages_total", sender=sender, outcome="quarantined") == 1
    assert moved("flagging_ack_latency_seconds_count", transport="mllp") == 4
    assert moved("flagging_ack_latency_seconds_count", transport="http") == 1
    assert moved("flagging_sign_in_failures_total") == 1
    assert _value(after, "flagging_documents_pending") == 3
    assert _value(after, "flagging_quarantine_size") == 1
    assert _value(after, "flagging_quarantine_last_hour") == 1
    assert _value(after, "flagging_feed_lag_events", practice=samples.PRACTICE) == 3
    assert 0 <= _value(after, "flagging_sender_last_message_age_seconds", sender=sender) < 600


def test_alert_conditions_read_from_the_database_are_exposed_for_alertmanager(
    metrics_app: Flask, db: Database, handler: MessageHandler
) -> None:
    assert handler.handle(samples.mdm(control_id="A1", number="A-1"), transport="mllp").code == "AA"
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    with db.transaction() as session:
        session.execute(update(Document).values(review_due_at=long_ago))
        practice = session.scalars(select(Practice)).one()
        practice.push_host, practice.push_port = "gp.example", 2575
        practice.push_failures, practice.push_error = 7, "connection refused"
        practice.push_failing_since = long_ago

    text = _scrape(metrics_app.test_client())

    assert _value(text, "flagging_alert", rule="push-failing", subject=samples.PRACTICE) == 1
    assert _value(text, "flagging_alert", rule="decision-overdue", subject="") == 1
    assert _value(text, "flagging_alerts_firing", rule="push-failing") == 1
    assert _value(text, "flagging_alerts_firing", rule="quarantine-growing") == 0
    assert _value(text, "flagging_documents_overdue") == 1
    assert _value(text, "flagging_push_consecutive_failures", practice=samples.PRACTICE) == 7
