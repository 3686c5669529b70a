"""The audit trail's hash chain: written in the caller's transaction, verified end to end, and
kept in one order by several processes appending at once (PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from cli.main import main
from config import Settings
from flagging import audit, audit_log
from flagging.models import AuditEntry
from flagging.storage.batches import run_batch
from flagging.storage.engine import Database

NHS = "9990000018"


def _append(db: Database, count: int, *, actor: str = "cli") -> None:
    with db.transaction() as session:
        for i in range(count):
            audit.record(
                session,
                actor=actor,
                action=audit.Action.DOCUMENT_VIEWED,
                document_id=i + 1,
                nhs_number=NHS,
                detail={"representation": "page", "i": i},
            )


def _count(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _verify(db: Database) -> audit_log.Verification:
    with db.reading() as session:
        return audit_log.verify(session)


def test_an_untouched_chain_verifies_and_names_its_head(db: Database) -> None:
    _append(db, 5)
    result = _verify(db)
    assert result.ok, result.problem
    assert (result.entries, result.head_seq) == (5, 5)
    with db.reading() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert last is not None
    assert result.head_hash == last.hash


def test_a_rolled_back_change_leaves_no_entry_and_the_chain_intact(db: Database) -> None:
    _append(db, 2)

    def failing_change() -> None:
        with db.transaction() as session:
            audit.record(session, actor="cli", action=audit.Action.RULE_CHANGED, outcome="on")
            raise RuntimeError("the change failed after its entry was written")

    with pytest.raises(RuntimeError):
        failing_change()
    assert _count(db) == 2
    _append(db, 1)
    assert _verify(db).ok


def test_verify_names_an_entry_whose_row_was_updated(db: Database) -> None:
    _append(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'user:99' WHERE seq = 3"))
    result = _verify(db)
    assert (result.kind, result.seq) == ("changed", 3), result.problem
    assert "entry 3 was changed" in result.problem


def test_verify_names_an_entry_that_was_deleted(db: Database) -> None:
    _append(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 2"))
    result = _verify(db)
    assert (result.kind, result.seq) == ("removed", 2), result.problem


def test_verify_names_the_last_entry_when_it_was_deleted(db: Database) -> None:
    _append(db, 3)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = 3"))
    result = _verify(db)
    assert (result.kind, result.seq) == ("removed", 3), result.problem


def test_an_entry_cannot_be_inserted_at_a_taken_position(db: Database) -> None:
    _append(db, 2)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(AuditEntry(at=at, hash="0" * 64, prev_hash="0" * 64, **_forged(2)))


def test_verify_names_the_entry_moved_to_make_room_for_a_forged_one(db: Database) -> None:
    _append(db, 4)
    with db.reading() as session:
        first = session.scalars(select(AuditEntry).where(AuditEntry.seq == 1)).one()
    # A forger who knows the scheme: moves entries 2-4 up one, and writes a well-formed entry
    # at position 2, linked to entry 1. The entry moved to 3 no longer matches its hash.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 2"))
        conn.execute(text("UPDATE audit_entries SET seq = seq - 99 WHERE seq >= 100"))
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    fields = {**_forged(2), "prev_hash": first.hash}
    with db.transaction() as session:
        session.add(AuditEntry(at=at, hash=audit.entry_hash(at=at, **fields), **fields))
    result = _verify(db)
    assert (result.kind, result.seq) == ("changed", 3), result.problem


def _forged(seq: int) -> dict[str, object]:
    return {
        "seq": seq,
        "actor": "user:1",
        "action": "document.viewed",
        "outcome": "",
        "document_id": 77,
        "message_id": None,
        "nhs_number": NHS,
        "practice": "",
        "detail": "{}",
    }


def test_verify_names_an_entry_inserted_after_the_head(db: Database) -> None:
    _append(db, 2)
    with db.reading() as session:
        last = session.scalars(select(AuditEntry).where(AuditEntry.seq == 2)).one()
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    fields = {
        "seq": 3,
        "actor": "user:1",
        "action": "document.viewed",
        "outcome": "",
        "document_id": 77,
        "message_id": None,
        "nhs_number": NHS,
        "practice": "",
        "detail": "{}",
        "prev_hash": last.hash,
    }
    with db.transaction() as session:
        session.add(AuditEntry(at=at, hash=audit.entry_hash(at=at, **fields), **fields))
    result = _verify(db)
    assert (result.kind, result.seq) == ("inserted", 3), result.problem


def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def test_audit_verify_command_exits_non_zero_naming_the_changed_entry(
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(monkeypatch, settings)
    _append(db, 3)
    assert main(["audit", "verify"]) == 0
    assert "intact: 3 entries" in capsys.readouterr().out
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET detail = '{}' WHERE seq = 2"))
    assert main(["audit", "verify"]) == 1
    assert "entry 2 was changed" in capsys.readouterr().err


def test_audit_list_filters_by_actor_action_document_patient_and_time(
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(monkeypatch, settings)
    _append(db, 3, actor="user:1")
    with db.transaction() as session:
        audit.record(session, actor="user:2", action=audit.Action.RULE_CHANGED, outcome="on")

    def listed(*argv: str) -> list[dict[str, object]]:
        capsys.readouterr()
        assert main(["audit", "list", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    assert [e["seq"] for e in listed()] == [4, 3, 2, 1]
    assert [e["seq"] for e in listed("--actor", "user:2")] == [4]
    assert [e["seq"] for e in listed("--action", "admin")] == [4]
    assert [e["seq"] for e in listed("--document", "2")] == [2]
    assert [e["seq"] for e in listed("--patient", "999 000 0018")] == [3, 2, 1]
    assert listed("--since", "2099-01-01") == []
    assert len(listed("--until", "2099-01-01")) == 4
    with pytest.raises(SystemExit) as refused:  # a wrong check digit: argparse's one line
        main(["audit", "list", "--patient", "9990000019"])
    assert refused.value.code != 0
    assert "not a valid NHS number" in capsys.readouterr().err


def test_audit_export_is_a_bundle_of_valid_fhir_audit_events_and_is_itself_audited(
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _cli_env(monkeypatch, settings)
    _append(db, 2)
    capsys.readouterr()
    assert main(["audit", "export"]) == 0
    data = json.loads(capsys.readouterr().out)
    events = [e["resource"] for e in data["entry"]]
    assert [e["resourceType"] for e in events] == ["AuditEvent", "AuditEvent"]
    first = events[0]
    assert first["action"] == "R"
    assert first["subtype"][0]["code"] == "document.viewed"
    patient = next(e for e in first["entity"] if e.get("role", {}).get("code") == "1")
    assert patient["what"]["identifier"]["value"] == NHS
    assert first["agent"][0]["who"]["identifier"]["value"] == "cli"
    with db.reading() as session:
        [export] = audit_log.list_entries(session, audit_log.Filters(action="export"))
    assert json.loads(export.detail) == {"entries": 2, "format": "fhir"}


def _append_from_process(url: str, instance: str, rounds: int) -> None:
    from config import load_settings

    settings = load_settings(
        {
            "FLAGGING_ENV": "test",
            "FLAGGING_DATABASE_URL": url,
            "FLAGGING_INSTANCE_PATH": instance,
            "FLAGGING_SECRET_KEY": "test-secret",
        }
    )
    db = Database(settings)
    try:
        for i in range(rounds):
            with db.transaction() as session:
                audit.record(
                    session,
                    actor=f"process:{os.getpid()}",
                    action=audit.Action.GP_FEED_READ,
                    detail={"round": i},
                )
    finally:
        db.dispose()


@pytest.mark.slow
def test_four_processes_appending_at_once_on_postgresql_leave_one_valid_chain(
    db: Database, settings: Settings
) -> None:
    if settings.is_sqlite:
        pytest.skip("needs FLAGGING_TEST_DATABASE_URL=postgresql://... (SQLite has one writer)")
    rounds = 40
    # fork: a spawned child would import this module and with it the whole CLI and web app.
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(
            target=_append_from_process,
            args=(settings.database_url, str(settings.instance_path), rounds),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    result = _verify(db)
    assert result.ok, result.problem
    assert result.entries == 4 * rounds
    with db.reading() as session:
        actors = set(session.scalars(select(AuditEntry.actor)))
    assert len(actors) == 4


def test_a_unit_rolled_back_in_a_group_commit_takes_its_deferred_entry_with_it(
    db: Database,
) -> None:
    def unit(name: str, fail: bool = False):
        def work(raw):
            audit.defer(raw, actor=name, action=audit.Action.MESSAGE_RECEIVED, outcome="AA")
            if fail:
                raise ValueError("this message failed after its entry was deferred")
            return name

        return work

    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    outcomes = run_batch(db, [unit("first"), unit("failed", fail=True), unit("third")], integrity)
    assert [result for result, _ in outcomes] == ["first", None, "third"]
    with db.reading() as session:
        assert list(session.scalars(select(AuditEntry.actor).order_by(AuditEntry.seq))) == [
            "first",
            "third",
        ]
        assert audit_log.verify(session).ok


def test_a_group_commits_deferred_entries_continue_the_chain_in_order(db: Database) -> None:
    _append(db, 2)

    def unit(name: str):
        def work(raw):
            audit.defer(raw, actor=name, action=audit.Action.MESSAGE_RECEIVED, outcome="AA")
            return name

        return work

    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    run_batch(db, [unit(f"sender:R{i}") for i in range(3)], integrity)
    with db.reading() as session:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.actor).order_by(AuditEntry.seq))
        assert [tuple(row) for row in rows][2:] == [
            (3, "sender:R0"),
            (4, "sender:R1"),
            (5, "sender:R2"),
        ]
        result = audit_log.verify(session)
    assert result.ok, result.problem
    assert result.head_seq == 5
