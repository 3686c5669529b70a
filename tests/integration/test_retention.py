"""`flagging retention run`: the raw bytes of old messages go; what still matters stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from cli.main import main
from cli.scheduler import retention_job
from cli.wiring import Services
from config import Settings
from flagging.models import DocumentVersion, InboundMessage, Practice
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def _age(db: Database, message_ids: list[int], days: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.id.in_(message_ids))
            .values(received_at=datetime.now(UTC) - timedelta(days=days))
        )


def _kept(db: Database) -> dict[str, bool]:
    """Each message by MSH-10: whether its bytes are still there."""
    with db.reading() as session:
        rows = session.execute(select(InboundMessage.control_id, InboundMessage.raw)).all()
    return {control_id: raw is not None for control_id, raw in rows}


@pytest.fixture
def old_messages(db: Database, handler: MessageHandler) -> dict[str, int]:
    """Old messages of every kind, and one new one. The practice has acknowledged its feed up
    to ACKED's document only."""
    add_practice(db, OTHER_PRACTICE)
    ids = {}
    for control_id, raw in {
        "ACKED": samples.mdm(control_id="ACKED", number="D-ACKED"),
        "UNACKED": samples.mdm(control_id="UNACKED", number="D-UNACKED"),
        "UNROUTED": samples.mdm(control_id="UNROUTED", number="D-UNR", practice="V81999"),
        "OPEN": samples.mdm(control_id="OPEN", nhs_number=samples.INVALID_NHS_NUMBER),
        "CLOSED": samples.mdm(control_id="CLOSED", nhs_number=samples.INVALID_NHS_NUMBER),
        "OTHER": samples.mdm(control_id="OTHER", number="D-OTHER", practice=OTHER_PRACTICE),
    }.items():
        reply = handler.handle(raw, transport="mllp")
        assert reply.message_id is not None
        ids[control_id] = reply.message_id
    _age(db, list(ids.values()), days=400)
    new = handler.handle(samples.mdm(control_id="NEW", number="D-NEW"), transport="mllp")
    assert new.code == "AA"
    with db.transaction() as session:
        closed = session.get(InboundMessage, ids["CLOSED"])
        assert closed is not None
        closed.resolution, closed.resolution_reason = "dismissed", "test message"
        practice = session.scalars(
            select(Practice).where(Practice.ods_code == samples.PRACTICE)
        ).one()
        practice.acknowledged_seq = 1  # ACKED's event only (as a GP system's POST records)
        other = session.scalars(select(Practice).where(Practice.ods_code == OTHER_PRACTICE)).one()
        other.push_seq = 1  # delivered by push: acknowledged too
    return ids


def test_a_dry_run_counts_what_would_go_and_deletes_nothing(
    capsys: pytest.CaptureFixture[str], db: Database, old_messages: dict[str, int]
) -> None:
    before = _kept(db)
    assert main(["retention", "run", "--days", "365", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete the bytes of 3" in out
    assert "kept 2 whose document a practice has not acknowledged and 1 open" in out
    assert _kept(db) == before


def test_retention_deletes_old_bytes_but_keeps_unacknowledged_unrouted_and_open_entries(
    capsys: pytest.CaptureFixture[str], db: Database, old_messages: dict[str, int]
) -> None:
    assert main(["retention", "run", "--days", "365"]) == 0
    assert "deleted the bytes of 3" in capsys.readouterr().out
    assert _kept(db) == {
        "ACKED": False,  # old, and its practice acknowledged it
        "OTHER": False,  # old, delivered by push
        "CLOSED": False,  # a dismissed quarantine entry
        "UNACKED": True,  # the practice has not acknowledged its document yet
        "UNROUTED": True,  # no practice has it yet
        "OPEN": True,  # may still be reprocessed
        "NEW": True,  # younger than the retention age
    }
    with db.reading() as session:
        gone = session.get(InboundMessage, old_messages["ACKED"])
        assert gone is not None
        # The receipt and its ACK stay: only the bytes went, and when is recorded.
        assert gone.raw_deleted_at is not None
        assert gone.ack is not None
        assert b"MSA|AA|ACKED" in gone.ack
        # Its document's text, kept as spans of those bytes, was copied into the version first.
        version = session.scalars(
            select(DocumentVersion).where(DocumentVersion.message_id == gone.id)
        ).one()
        assert (version.content_spans, version.content) == (
            None,
            b"Discharged home.\nFollow up in clinic.",
        )
    # Run again: nothing more to do.
    assert main(["retention", "run", "--days", "365"]) == 0
    assert "deleted the bytes of 0" in capsys.readouterr().out


def test_retention_is_off_by_default_for_the_command_and_the_scheduler_job(
    capsys: pytest.CaptureFixture[str],
    db: Database,
    settings: Settings,
    handler: MessageHandler,
    old_messages: dict[str, int],
) -> None:
    assert main(["retention", "run"]) == 1
    assert "retention is off" in capsys.readouterr().err
    assert retention_job(Services(settings, db, handler)) == 0
    assert all(_kept(db).values())
