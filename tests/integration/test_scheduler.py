"""Two schedulers running the release job at once act on each document once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from config import Settings
from flagging.models import Decision, Document, FeedEvent
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples

DOCUMENTS = 120


@pytest.mark.slow
def test_two_scheduler_processes_release_each_document_once_with_one_history_entry(
    handler: MessageHandler, db: Database, settings: Settings
) -> None:
    for i in range(DOCUMENTS):
        reply = handler.handle(samples.mdm(control_id=f"S{i}", number=f"S{i}"), transport="mllp")
        assert reply.code == "AA"
    with db.transaction() as session:
        session.execute(update(Document).values(review_due_at=datetime.now(UTC) - timedelta(1)))

    env = {
        **os.environ,
        "FLAGGING_ENV": "test",
        "FLAGGING_DATABASE_URL": settings.database_url,
        "FLAGGING_INSTANCE_PATH": str(settings.instance_path),
        "FLAGGING_SECRET_KEY": "test-secret",
    }
    command = [sys.executable, "-m", "cli.main", "scheduler", "--once"]
    schedulers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in schedulers]
    assert [p.returncode for p in schedulers] == [0, 0], outputs

    released = [int(out.decode().split("release: ")[1].split()[0]) for out, _ in outputs]
    assert sum(released) == DOCUMENTS
    with db.transaction() as session:
        visible = session.scalar(
            select(func.count()).select_from(Document).where(Document.visibility == "visible")
        )
        per_document = session.execute(
            select(Decision.document_id, func.count()).group_by(Decision.document_id)
        ).all()
        changes = session.scalar(
            select(func.count())
            .select_from(FeedEvent)
            .where(FeedEvent.type == "visibility.changed")
        )
    assert visible == DOCUMENTS
    assert sorted(count for _, count in per_document) == [1] * DOCUMENTS
    assert changes == DOCUMENTS
