"""An operator finding messages and closing quarantine entries: `flagging messages list` with
its search options, resolve and dismiss with a reason, a reprocess that fails again, and a
corrected resend superseding the entry it replaces."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.main import main
from config import Settings
from flagging.models import InboundMessage, MessageOutcome
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def _list(capsys: pytest.CaptureFixture[str], *options: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["messages", "list", *options, "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def _ids(capsys: pytest.CaptureFixture[str], *options: str) -> list[str]:
    return [row["control_id"] for row in _list(capsys, *options)]


def _message(db: Database, message_id: int) -> InboundMessage:
    with db.reading() as session:
        found = session.get(InboundMessage, message_id)
        assert found is not None
        session.expunge(found)
        return found


def test_messages_are_found_by_sender_control_id_patient_document_outcome_and_time(
    capsys: pytest.CaptureFixture[str], handler: MessageHandler
) -> None:
    first, second = samples.NHS_NUMBERS[:2]
    handler.handle(samples.mdm(control_id="S1", number="DOC-A", nhs_number=first), transport="t")
    handler.handle(samples.mdm(control_id="S2", number="DOC-B", nhs_number=second), transport="t")
    # Quarantined (an invalid NHS number): never a document, found by the bytes it holds.
    bad = samples.mdm(control_id="S3", number="DOC-C", nhs_number=samples.INVALID_NHS_NUMBER)
    assert handler.handle(bad, transport="t").code == "AE"
    unregistered = samples.mdm(control_id="X1", sender="RZZ", nhs_number=samples.NHS_NUMBERS[2])
    assert handler.handle(unregistered, transport="t").code == "AR"

    assert _ids(capsys) == ["X1", "S3", "S2", "S1"]
    assert _ids(capsys, "--sender", samples.SENDER.lower()) == ["S3", "S2", "S1"]
    assert _ids(capsys, "--control-id", "S2") == ["S2"]
    assert _ids(capsys, "--nhs-number", first) == ["S1"]
    assert _ids(capsys, "--nhs-number", samples.INVALID_NHS_NUMBER) == ["S3"]
    assert _ids(capsys, "--document", "DOC-B") == ["S2"]
    assert _ids(capsys, "--document", "DOC-C") == ["S3"]
    assert _ids(capsys, "--outcome", "quarantined") == ["S3"]
    assert _ids(capsys, "--open") == ["X1", "S3"]
    assert _ids(capsys, "--since", "2000-01-01", "--until", "2000-01-02") == []
    assert _ids(capsys, "--since", "2000-01-01T00:00:00+00:00", "--sender", "RZZ") == ["X1"]

    assert main(["messages", "list", "--since", "yesterday"]) == 1
    assert "--since must be an ISO 8601" in capsys.readouterr().err


def test_a_quarantined_message_is_resolved_or_dismissed_with_a_reason_once(
    capsys: pytest.CaptureFixture[str], db: Database, handler: MessageHandler
) -> None:
    ids = []
    for control_id in ("Q1", "Q2"):
        bad = samples.mdm(control_id=control_id, nhs_number=samples.INVALID_NHS_NUMBER)
        reply = handler.handle(bad, transport="t")
        assert reply.code == "AE"
        ids.append(reply.message_id)

    assert main(["messages", "resolve", str(ids[0]), "--reason", " "]) == 1
    assert "give a reason" in capsys.readouterr().err
    assert main(["messages", "resolve", str(ids[0]), "--reason", "fixed in the EPR"]) == 0
    assert (
        main(["messages", "dismiss", str(ids[1]), "--reason", "test message", "--by", "ops"]) == 0
    )
    assert main(["messages", "dismiss", str(ids[1]), "--reason", "again"]) == 1
    assert "already dismissed" in capsys.readouterr().err

    resolved, dismissed = _message(db, ids[0]), _message(db, ids[1])
    assert (resolved.resolution, resolved.resolution_reason) == ("resolved", "fixed in the EPR")
    assert resolved.resolved_by.endswith("(command line)")
    assert resolved.resolved_at is not None
    assert (dismissed.resolution, dismissed.resolved_by) == ("dismissed", "ops")
    assert _ids(capsys, "--open") == []

    accepted = handler.handle(samples.mdm(control_id="OK1"), transport="t")
    assert main(["messages", "dismiss", str(accepted.message_id), "--reason", "no"]) == 1
    assert "only quarantined or rejected" in capsys.readouterr().err


def test_a_reprocess_that_fails_again_updates_its_entry_instead_of_adding_one(
    db: Database, handler: MessageHandler
) -> None:
    bad = samples.mdm(control_id="R1", nhs_number=samples.INVALID_NHS_NUMBER)
    first = handler.handle(bad, transport="t")
    assert first.code == "AE"
    with db.transaction() as session:
        row = session.get(InboundMessage, first.message_id)
        assert row is not None
        row.error_text = "an older explanation"

    again = handler.reprocess(first.message_id or 0)

    assert again.code == "AE"
    assert again.message_id == first.message_id
    with db.reading() as session:
        rows = session.query(InboundMessage).all()
    assert len(rows) == 1
    assert rows[0].outcome == MessageOutcome.QUARANTINED
    assert "NHS number" in rows[0].error_text
    assert rows[0].ack == again.ack


def test_a_corrected_resend_marks_the_quarantined_entry_superseded(
    capsys: pytest.CaptureFixture[str], db: Database, handler: MessageHandler
) -> None:
    bad = samples.mdm(control_id="C1", nhs_number=samples.INVALID_NHS_NUMBER)
    quarantined = handler.handle(bad, transport="t")
    other = handler.handle(
        samples.mdm(control_id="C2", nhs_number=samples.INVALID_NHS_NUMBER), transport="t"
    )
    corrected = handler.handle(samples.mdm(control_id="C1"), transport="t")
    assert corrected.code == "AA"

    old = _message(db, quarantined.message_id or 0)
    assert old.resolution == "superseded"
    assert old.superseded_by_id == corrected.message_id
    # Only the entry with that MSH-10 from that sender: the other stays open.
    assert _message(db, other.message_id or 0).resolution == ""
    assert _ids(capsys, "--open") == ["C2"]
