"""An administrator's dashboard in a real browser: the charts drawn on the server, the alerts
panel, and no accessibility violation that axe-core finds. Its screenshot is the README's (see
the `screenshots` fixture)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from flagging.models import Document, InboundMessage, Practice
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples


def _busy_day(db: Database, handler: MessageHandler) -> int:
    """A day's messages spread over the last hours, a quarantined one, an overdue decision and
    a practice whose push has been failing for an hour."""
    accounts.add_admin(db)
    ids = []
    for i in range(12):
        reply = handler.handle(
            samples.mdm(control_id=f"D{i}", number=f"DASH-{i}"), transport="mllp"
        )
        ids.append(reply.message_id)
    handler.handle(
        samples.mdm(control_id="DQ", nhs_number=samples.INVALID_NHS_NUMBER), transport="mllp"
    )
    now = datetime.now(UTC)
    with db.transaction() as session:
        for i, message_id in enumerate(ids):
            session.execute(
                update(InboundMessage)
                .where(InboundMessage.id == message_id)
                # Every 20 minutes back from now: the sender's usual gap, so not silent.
                .values(received_at=now - timedelta(minutes=20 * i))
            )
        session.execute(
            update(Document)
            .where(Document.document_number == "DASH-0")
            .values(review_due_at=now - timedelta(hours=1))
        )
        practice = session.scalars(select(Practice)).one()
        practice.push_host, practice.push_port = "gp.example", 2575
        practice.push_failures, practice.push_error = 12, "connection refused"
        practice.push_failing_since = now - timedelta(hours=1)
    # The hours those messages fall in: as many bars as that in the hourly chart.
    return len({(now - timedelta(minutes=20 * i)).strftime("%Y-%m-%d %H") for i in range(12)})


def test_the_dashboard_draws_its_charts_shows_alerts_and_passes_axe(
    page: Page, db: Database, handler: MessageHandler, screenshots: Path
) -> None:
    hours = _busy_day(db, handler)
    page.goto("/admin/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill(accounts.ADMIN)
    page.get_by_label("Password").fill(accounts.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    alerts = page.locator(".alert")
    expect(alerts).to_have_count(2)
    expect(alerts.nth(0)).to_contain_text("past their review window")
    expect(alerts.nth(1)).to_contain_text("push to A81001 failing")
    # The sender's two charts, drawn as SVG on the server: 12 messages over 4 or 5 hours.
    charts = page.locator("figure.chart svg")
    expect(charts).to_have_count(2)
    hourly_bars = charts.nth(0).locator("rect")
    expect(hourly_bars).to_have_count(24)
    heights = [
        float(h or 0) for h in hourly_bars.evaluate_all("e => e.map(r => r.getAttribute('height'))")
    ]
    assert sum(1 for h in heights if h > 0) == hours
    expect(page.get_by_text("1 message in")).to_be_visible()  # the quarantine
    # No script from elsewhere: every script the page loads is our own, if any.
    assert page.locator("script[src^='http']").count() == 0

    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
