"""/metrics in the Prometheus text format, for Prometheus and Alertmanager.

Closed unless FLAGGING_METRICS_TOKEN is set, and then answered only to a request bearing it
(`Authorization: Bearer TOKEN`, Prometheus's `authorization` scrape setting): the figures name
senders and practices. Counters come from every process of the machine (prometheus_client's
multiprocess mode, PROMETHEUS_MULTIPROC_DIR set by our commands); the rest, and the alert
rules, are read from the database at each scrape (flagging/operations.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.context import db_session, settings
from api.problems import problem
from flagging.operations import ALERT_RULES, AlertRules, Overview, overview

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Every counter of this machine's processes and the figures read from the database."""
    token = settings().metrics_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token:
        return problem(404, "Not Found", "metrics are off: set FLAGGING_METRICS_TOKEN")
    if not hmac.compare_digest(given.encode(), token.encode()):
        response = problem(401, "Unauthorized", "a bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    session = db_session()
    figures = overview(session, datetime.now(UTC), AlertRules.from_settings(settings()))
    registry = REGISTRY  # one process (development, tests): its own counters
    # Multiprocess mode was chosen when prometheus_client was first imported in this process
    # (our commands set the folder before): ask it, not the environment, which may differ.
    if values.ValueClass is not values.MutexValue:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    read = CollectorRegistry()
    read.register(_Figures(figures))
    body = generate_latest(registry) + generate_latest(read)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def gauge(
    name: str, doc: str, value: float | None = None, labels: list[str] | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value, labels=labels)


class _Figures(Collector):
    """The database figures of one scrape, as gauges."""

    def __init__(self, figures: Overview) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.figures
        now = f.now

        yield gauge("flagging_documents_pending", "Documents waiting for a decision", f.pending)
        oldest = (now - f.oldest_pending_at).total_seconds() if f.oldest_pending_at else 0.0
        yield gauge(
            "flagging_documents_pending_oldest_age_seconds",
            "Age of the oldest document waiting for a decision (0 when none waits)",
            oldest,
        )
        yield gauge(
            "flagging_documents_overdue",
            "Documents still pending past their review window",
            f.overdue,
        )
        yield gauge(
            "flagging_quarantine_size", "Quarantined messages not yet resolved", f.quarantine
        )
        yield gauge(
            "flagging_quarantine_last_hour",
            "Messages quarantined in the last hour and not yet resolved",
            f.quarantine_last_hour,
        )
        lag = gauge(
            "flagging_feed_lag_events",
            "Feed events a practice has not acknowledged yet",
            labels=["practice"],
        )
        failures = gauge(
            "flagging_push_consecutive_failures",
            "Failed push deliveries to a practice since its last success",
            labels=["practice"],
        )
        since_success = gauge(
            "flagging_push_last_success_age_seconds",
            "Seconds since a practice last acknowledged a pushed event",
            labels=["practice"],
        )
        for p in f.practices:
            lag.add_metric([p.ods_code], p.lag)
            if p.push_endpoint:
                failures.add_metric([p.ods_code], p.push_failures)
                if p.push_delivered_at is not None:
                    since_success.add_metric(
                        [p.ods_code], (now - p.push_delivered_at).total_seconds()
                    )
        yield lag
        yield failures
        yield since_success
        last = gauge(
            "flagging_sender_last_message_age_seconds",
            "Seconds since a sender's last message (senders heard from in the last 7 days)",
            labels=["sender"],
        )
        for s in f.senders:
            if s.last_message_at is not None:
                last.add_metric([s.ods_code], (now - s.last_message_at).total_seconds())
        yield last
        firing = gauge(
            "flagging_alerts_firing",
            "Alerts of each rule firing now (the dashboard's alerts panel)",
            labels=["rule"],
        )
        alert = gauge(
            "flagging_alert",
            "1 for each alert firing now, by rule and what it is about",
            labels=["rule", "subject"],
        )
        for rule in ALERT_RULES:
            firing.add_metric([rule], sum(1 for a in f.alerts if a.rule == rule))
        for a in f.alerts:
            alert.add_metric([a.rule, a.subject], 1)
        yield firing
        yield alert
