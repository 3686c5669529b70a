"""A group commit's units against a real database: feed events numbered at the end, in order,
and a failed unit undone alone (on PostgreSQL also when its error surfaces late, in pipeline
mode)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from flagging import feed, organisations
from flagging.models import DocumentVersion, EventType, FeedEvent, Practice
from flagging.storage.batches import run_batch
from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw
from hl7.handler import MessageHandler
from tests import samples

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _stored_version(db: Database, handler: MessageHandler) -> tuple[int, int, int]:
    """A document's (practice id, document id, version id), stored through the handler."""
    handler.handle(samples.mdm(control_id="FIRST", number="DOC-1"), transport="mllp")
    with db.reading() as session:
        version = session.scalars(select(DocumentVersion)).one()
        practice_id = session.scalars(select(Practice.id)).one()
    return practice_id, version.document_id, version.id


def _unit(name: str, event: tuple[int, int, int], *, then: str = "") -> Callable[[Raw], str]:
    practice_id, document_id, version_id = event

    def work(raw: Raw) -> str:
        feed.defer_event(
            raw,
            practice_id=practice_id,
            event_type=EventType.VISIBILITY_CHANGED,
            document_id=document_id,
            version_id=version_id,
            visibility=name,
            now=NOW,
        )
        if then:
            raw.execute(then, {})  # its answer is never read
        return name

    return work


def _events(db: Database) -> list[tuple[int, str]]:
    with db.reading() as session:
        rows = session.execute(
            select(FeedEvent.seq, FeedEvent.visibility)
            .where(FeedEvent.type == EventType.VISIBILITY_CHANGED.value)
            .order_by(FeedEvent.seq)
        )
        return [(row.seq, row.visibility) for row in rows]


def test_deferred_feed_events_are_numbered_at_the_commit_in_the_order_of_their_units(
    db: Database, handler: MessageHandler
) -> None:
    event = _stored_version(db, handler)
    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    outcomes = run_batch(db, [_unit(f"v{i}", event) for i in range(3)], integrity)
    assert [result for result, _ in outcomes] == ["v0", "v1", "v2"]
    # The first message's document.available is 1.
    assert _events(db) == [(2, "v0"), (3, "v1"), (4, "v2")]
    with db.reading() as session:
        assert session.scalars(select(Practice.feed_seq)).one() == 4


def test_a_unit_whose_unread_statement_failed_is_undone_alone_with_its_feed_event(
    db: Database, handler: MessageHandler
) -> None:
    event = _stored_version(db, handler)
    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    failing = _unit("failed", event, then="SELECT * FROM no_such_table")
    outcomes = run_batch(db, [_unit("first", event), failing, _unit("third", event)], integrity)
    assert [result for result, _ in outcomes] == ["first", None, "third"]
    assert outcomes[1][1] is not None
    assert _events(db) == [(2, "first"), (3, "third")]
    with db.reading() as session:
        assert session.scalars(select(Practice.feed_seq)).one() == 3


def test_a_read_sent_ahead_is_answered_as_of_when_it_was_sent_and_only_within_its_unit(
    db: Database, handler: MessageHandler
) -> None:
    _stored_version(db, handler)
    read = "SELECT feed_mode FROM practices WHERE ods_code = :code"
    change = "UPDATE practices SET feed_mode = :mode WHERE ods_code = :code"
    code = samples.PRACTICE

    def ahead_then_change(raw: Raw) -> tuple[object, object]:
        raw.ahead(read, {"code": code})
        raw.execute(change, {"mode": "decided", "code": code})
        return raw.one(read, {"code": code}), raw.postgres

    def next_unit(raw: Raw) -> object:
        raw.ahead(read, {"code": code})
        raw.sync()  # the unit ends: what it sent ahead and did not read is dropped
        return raw.scalar(read, {"code": code})

    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    [(first, error), (second, _)] = run_batch(db, [ahead_then_change, next_unit], integrity)
    assert error is None
    assert first is not None
    seen, postgres = first
    # PostgreSQL (pipeline mode): the read went out before the UPDATE, and answers as of
    # then. SQLite: `ahead` does nothing and the read runs when asked.
    assert seen == (("immediate",) if postgres else ("decided",))
    assert second == "decided"


def test_events_for_several_practices_in_one_batch_are_numbered_per_practice_in_order(
    db: Database, handler: MessageHandler
) -> None:
    with db.transaction() as session:
        organisations.add_practice(session, "B82002", "The Other Surgery")
    handler.handle(samples.mdm(control_id="A1", number="DOC-A"), transport="mllp")
    handler.handle(
        samples.mdm(control_id="B1", number="DOC-B", practice="B82002"), transport="mllp"
    )
    with db.reading() as session:
        versions = {v.document_number: v for v in session.scalars(select(DocumentVersion))}
        practice_ids = dict(session.execute(select(Practice.ods_code, Practice.id)).all())
    a = (practice_ids[samples.PRACTICE], versions["DOC-A"].document_id, versions["DOC-A"].id)
    b = (practice_ids["B82002"], versions["DOC-B"].document_id, versions["DOC-B"].id)
    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    units = [_unit("b1", b), _unit("a1", a), _unit("b2", b), _unit("a2", a)]
    assert [r for r, _ in run_batch(db, units, integrity)] == ["b1", "a1", "b2", "a2"]
    with db.reading() as session:
        rows = session.execute(
            select(FeedEvent.practice_id, FeedEvent.seq, FeedEvent.visibility)
            .where(FeedEvent.type == EventType.VISIBILITY_CHANGED.value)
            .order_by(FeedEvent.practice_id, FeedEvent.seq)
        ).all()
        counters = dict(session.execute(select(Practice.id, Practice.feed_seq)).all())
    # Each practice's document.available is its 1.
    assert [tuple(r) for r in rows] == [
        (a[0], 2, "a1"),
        (a[0], 3, "a2"),
        (b[0], 2, "b1"),
        (b[0], 3, "b2"),
    ]
    assert (counters[a[0]], counters[b[0]]) == (3, 3)


def test_a_unit_answered_to_its_end_stays_when_the_unit_after_it_fails(
    db: Database, handler: MessageHandler
) -> None:
    # On PostgreSQL the first unit's release goes out with the second unit (Raw.end_unit):
    # the second's failure, and its rollback, must leave the first as it was.
    _stored_version(db, handler)
    rename = "UPDATE practices SET name = :name WHERE ods_code = :code RETURNING name"

    def renamed(name: str, then: str = "") -> Callable[[Raw], object]:
        def work(raw: Raw) -> object:
            if then:
                raw.execute(then, {})
            return raw.scalar(rename, {"name": name, "code": samples.PRACTICE})

        return work

    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    units = [renamed("First"), renamed("Second", then="SELECT * FROM no_such_table")]
    outcomes = run_batch(db, [*units, renamed("Third"), renamed("Fourth")], integrity)
    assert [result for result, _ in outcomes] == ["First", None, "Third", "Fourth"]
    with db.reading() as session:
        assert session.scalars(select(Practice.name)).one() == "Fourth"
    outcomes = run_batch(db, units, integrity)
    assert [result for result, _ in outcomes] == ["First", None]
    with db.reading() as session:
        assert session.scalars(select(Practice.name)).one() == "First"


def test_a_unit_alone_that_fails_stores_nothing_and_its_error_reaches_the_caller(
    db: Database, handler: MessageHandler
) -> None:
    # No savepoint for a unit alone (batches._alone): its failure rolls back the whole
    # transaction, its feed event and the statements before the failure with it.
    event = _stored_version(db, handler)
    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    rename = "UPDATE practices SET name = 'Renamed' WHERE ods_code = :code"

    def renames_then_fails(raw: Raw) -> str:
        raw.execute(rename, {"code": samples.PRACTICE})
        return _unit("failed", event, then="SELECT * FROM no_such_table")(raw)

    with pytest.raises(db.engine.dialect.loaded_dbapi.Error):
        run_batch(db, [renames_then_fails], integrity)
    assert _events(db) == []
    with db.reading() as session:
        assert session.scalars(select(Practice.feed_seq)).one() == 1
        assert session.scalars(select(Practice.name)).one() != "Renamed"
    # The connection serves the next transaction.
    assert run_batch(db, [_unit("next", event)], integrity) == [("next", None)]
    assert _events(db) == [(2, "next")]


def test_a_unit_alone_that_meets_an_integrity_error_runs_again_in_a_new_transaction(
    db: Database, handler: MessageHandler
) -> None:
    # As a unit in a batch is run again after its savepoint's rollback: a concurrent copy
    # (another process) committed the same key first, and the second run sees it.
    event = _stored_version(db, handler)
    integrity = db.engine.dialect.loaded_dbapi.IntegrityError
    runs: list[int] = []

    def collides_once(raw: Raw) -> str:
        runs.append(1)
        result = _unit(f"run{len(runs)}", event)(raw)
        if len(runs) == 1:
            raise integrity("duplicate key (as a concurrent commit would cause)")
        return result

    assert run_batch(db, [collides_once], integrity) == [("run2", None)]
    assert _events(db) == [(2, "run2")]  # the first run's event went with its transaction

    def always_collides(raw: Raw) -> None:
        raise integrity("duplicate key")

    [(result, error)] = run_batch(db, [always_collides], integrity)
    assert result is None
    assert isinstance(error, integrity)
