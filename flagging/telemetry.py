"""Counters of what happens, for /metrics (Prometheus), kept by every process.

What can be read from the database at scrape time (pending documents, feed lag, quarantine
size, alert conditions) is not counted here: flagging/operations.py computes it. Here are the
events only a running process sees: messages answered, ACK latency, releases, failed sign-ins,
failed pushes.

The metrics are made on first use, not at import: prometheus_client chooses between
in-process values and multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by our commands, see
cli/telemetry_setup.py) when the first metric is created, so a process must be able to set
that folder before then.
"""

from __future__ import annotations

import threading
from typing import Any

# Seconds: an ACK is expected in milliseconds; the upper buckets show a database in trouble.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _get() -> dict[str, Any]:
    if _metrics:
        return _metrics
    with _lock:
        if not _metrics:
            from prometheus_client import Counter, Histogram

            _metrics.update(
                messages=Counter(
                    "flagging_messages",
                    "Messages answered, by registered sender (MSH-4) and outcome",
                    ["sender", "outcome"],
                ),
                ack_latency=Histogram(
                    "flagging_ack_latency_seconds",
                    "From a whole message received to its ACK ready to send (after the commit)",
                    ["transport"],
                    buckets=ACK_BUCKETS,
                ),
                releases=Counter(
                    "flagging_releases",
                    "Documents the release job made visible (lapsed review window, expired "
                    "withhold-until)",
                ),
                sign_in_failures=Counter(
                    "flagging_sign_in_failures", "Failed sign-ins to the web pages"
                ),
                push_failures=Counter(
                    "flagging_push_failures",
                    "MLLP push deliveries to a practice that failed",
                    ["practice"],
                ),
            )
    return _metrics


def message_answered(sender: str, outcome: str, transport: str, seconds: float) -> None:
    """One message answered: `sender` is the registered sender's ODS code, or ''."""
    metrics = _get()
    metrics["messages"].labels(sender or "unregistered", outcome or "unknown").inc()
    metrics["ack_latency"].labels(transport).observe(seconds)


def released(count: int) -> None:
    """Counted by the job after its commit, so a rolled-back run counts nothing."""
    if count:
        _get()["releases"].inc(count)


def sign_in_failed() -> None:
    _get()["sign_in_failures"].inc()


def push_failed(practice: str) -> None:
    _get()["push_failures"].labels(practice).inc()
