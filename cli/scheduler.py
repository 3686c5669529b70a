"""The scheduler: started by `flagging scheduler` (or by `serve` in one-process mode), never by
create_app. Each job run is one transaction; jobs are safe when two schedulers run at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from api import itk
from cli.wiring import Services
from flagging import telemetry
from flagging.push_job import push_due
from flagging.retention import run_retention
from flagging.visibility import release_lapsed
from hl7.client import tls_context
from hl7.push import MLLPPush, PushSettings
from mesh import channel as mesh_channel
from mesh.client import MeshConfig

log = logging.getLogger(__name__)


def release_job(services: Services) -> int:
    """Release lapsed review windows and expired withhold-until dates (one transaction)."""
    with services.db.transaction() as session:
        released = release_lapsed(session, datetime.now(UTC))
    if released:
        telemetry.released(released)
        log.info("released %d documents", released)
    return released


def push_job(services: Services) -> int:
    """Deliver the feeds of practices with an MLLP endpoint, in order (flagging/push_job.py,
    over hl7/push.py's links). Each delivery is its own short transaction: a run talks to the
    network between them."""
    settings = services.settings
    context = None
    if settings.push_tls_ca or settings.push_tls_cert:
        context = tls_context(settings.push_tls_ca, settings.push_tls_cert, settings.push_tls_key)
    delivered = push_due(
        services.db,
        MLLPPush(PushSettings(fallback_charset=settings.fallback_charset, ssl_context=context)),
    )
    if delivered:
        log.info("pushed %d feed events", delivered)
    return delivered


def mesh_job(services: Services) -> int:
    """Send the feeds of practices on MESH, in order (see mesh/channel.py): the messages are
    built by api/itk.py. Nothing to do when our own MESH mailbox is not configured."""
    config = MeshConfig.from_settings(services.settings)
    if config is None:
        return 0
    sent = mesh_channel.send_due(services.db, config, itk.render, itk.subject)
    if sent:
        log.info("sent %d feed events over MESH", sent)
    return sent


def mesh_tracking_job(services: Services) -> int:
    """Poll MESH tracking of what we sent, and collect the practices' ITK3 responses."""
    config = MeshConfig.from_settings(services.settings)
    if config is None:
        return 0
    return mesh_channel.track(services.db, config) + mesh_channel.collect(services.db, config)


def retention_job(services: Services) -> int:
    """Delete the raw bytes of messages past FLAGGING_RETENTION_DAYS (off while it is 0)."""
    days = services.settings.retention_days
    if days <= 0:
        return 0
    report = run_retention(services.db.transaction, datetime.now(UTC), days)
    if report.deleted:
        log.info("retention: deleted the bytes of %d messages", report.deleted)
    return report.deleted


# (name, function, interval in seconds)
JOBS: list[tuple[str, Callable[[Services], object], float]] = [
    ("release", release_job, 30.0),
    ("push", push_job, 5.0),
    ("mesh", mesh_job, 5.0),
    ("mesh-tracking", mesh_tracking_job, 60.0),
    # Hourly: each run finds little to do, and a batch is a short transaction.
    ("retention", retention_job, 3600.0),
]


def _guarded(name: str, job: Callable[[Services], object], services: Services) -> None:
    try:
        job(services)
    except SQLAlchemyError as exc:
        log.error("job %s failed: database error %s", name, type(exc).__name__)
    except Exception:
        log.exception("job %s failed", name)


def start(services: Services) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    for name, job, seconds in JOBS:
        scheduler.add_job(
            _guarded,
            "interval",
            args=(name, job, services),
            seconds=seconds,
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    scheduler.start()
    return scheduler
