"""The administrators' dashboard: volumes, backlogs, practices falling behind, push health,
senders' last messages, the quarantine and the alerts panel, all drawn on the server."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, render_template

from api.auth import require
from api.charts import bar_chart
from api.context import db_session, settings
from api.pages import html_pages
from flagging.models import Role
from flagging.operations import AlertRules, overview, volumes

bp = Blueprint("dashboard", __name__, url_prefix="/admin/dashboard")
html_pages(bp)
bp.before_request(require(Role.ADMIN))


@bp.get("")
def dashboard() -> str:
    """Everything the operator on call looks at first."""
    now = datetime.now(UTC)
    session = db_session()
    figures = overview(session, now, AlertRules.from_settings(settings()))
    counted = volumes(session, now)
    charts = [
        (
            sender,
            bar_chart(
                f"Messages from {sender} per hour, last 24 hours",
                [h[11:] + ":00" for h in counted.hours],
                counted.by_hour.get(sender, [0] * len(counted.hours)),
            ),
            bar_chart(
                f"Messages from {sender} per day, last 14 days",
                [d[5:] for d in counted.days],
                counted.by_day.get(sender, [0] * len(counted.days)),
            ),
        )
        for sender in sorted(counted.by_day)
    ]
    behind = sorted((p for p in figures.practices if p.lag), key=lambda p: -p.lag)
    pushing = [p for p in figures.practices if p.push_endpoint]
    return render_template(
        "admin/dashboard.html",
        figures=figures,
        charts=charts,
        behind=behind,
        pushing=pushing,
        oldest_age=(now - figures.oldest_pending_at) if figures.oldest_pending_at else None,
    )
