"""The ingest writer's statements on libpq directly (flagging/storage/pgwire.py): the same
values as psycopg's cursor, errors where the cursor raised them, and a connection left as
psycopg expects it. PostgreSQL only (the module is not used on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import text

from config import Settings
from flagging.storage import engine
from flagging.storage.engine import Database
from flagging.storage.pgwire import Wire


@pytest.fixture
def connection(settings: Settings, db: Database) -> Iterator[psycopg.Connection[Any]]:
    if settings.is_sqlite:
        pytest.skip("PostgreSQL only: needs FLAGGING_TEST_DATABASE_URL=postgresql://...")
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        yield conn


VALUES = {
    "number": 2**40,
    "small": 7,
    "text": "Ärzt ' ; -- \\ \x01",
    "none": None,
    "flag": True,
    "data": b"\x00\xff" * 10,
    "at": datetime(2026, 12, 3, 9, 30, 1, 123456),
    "aware": datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
    "day": date(2026, 2, 28),
}
ECHO = "SELECT :number, :small, :text, :none::text, :flag, :data, :at, :aware, :day, :small + 1"


def test_values_go_and_come_back_as_through_psycopgs_cursor(
    connection: psycopg.Connection[Any],
) -> None:
    cursor_sql = (
        "SELECT %(number)s, %(small)s, %(text)s, %(none)s::text, %(flag)s, %(data)s, %(at)s,"
        " %(aware)s, %(day)s, %(small)s + 1"
    )
    expected = connection.execute(cursor_sql, VALUES).fetchone()
    connection.rollback()
    wire = Wire(connection, timeout=10.0)
    first, second = wire.execute(ECHO, VALUES), wire.execute(ECHO, VALUES)  # prepared once
    assert first.fetchone() == second.fetchone() == expected
    assert expected is not None
    assert expected[2] == VALUES["text"]
    wire.commit()
    assert connection.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF


def test_a_failed_statement_is_raised_once_the_rest_skipped_and_a_savepoint_recovers(
    connection: psycopg.Connection[Any],
) -> None:
    connection.execute("CREATE TEMP TABLE t (n int PRIMARY KEY) ON COMMIT PRESERVE ROWS")
    connection.commit()
    wire = Wire(connection, timeout=10.0)
    wire.execute("INSERT INTO t VALUES (:n)", {"n": 1})
    wire.execute("SAVEPOINT unit", {})
    duplicate = wire.execute("INSERT INTO t VALUES (:n)", {"n": 1})
    after = wire.execute("INSERT INTO t VALUES (:n) RETURNING n", {"n": 2})
    with pytest.raises(errors.UniqueViolation):
        after.fetchone()  # the first error on the way to this answer
    with pytest.raises(errors.UniqueViolation):
        duplicate.fetchone()  # its own
    wire.sync()  # nothing new to raise
    wire.execute("ROLLBACK TO SAVEPOINT unit", {})
    wire.execute("INSERT INTO t VALUES (:n)", {"n": 3})
    wire.commit()
    assert connection.execute("SELECT array_agg(n ORDER BY n) FROM t").fetchone() == ([1, 3],)


def test_a_message_larger_than_the_sockets_buffers_goes_in_one_piece(
    connection: psycopg.Connection[Any],
) -> None:
    text = "x" * (4 * 1024 * 1024)
    wire = Wire(connection, timeout=10.0)
    answers = [wire.execute("SELECT length(:text)", {"text": text}) for _ in range(3)]
    assert [a.fetchone() for a in answers] == [(len(text),)] * 3
    wire.commit()


def test_after_a_failed_transaction_the_connection_is_psycopgs_again(
    connection: psycopg.Connection[Any],
) -> None:
    wire = Wire(connection, timeout=10.0)
    wire.execute("SELECT 1 / :zero", {"zero": 0})
    wire.close()
    assert connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.INERROR
    connection.rollback()
    assert connection.execute("SELECT 2").fetchone() == (2,)


def test_statements_deallocated_under_it_are_prepared_again_in_the_next_transaction(
    connection: psycopg.Connection[Any],
) -> None:
    wire = Wire(connection, timeout=10.0)
    wire.execute("SELECT :n", {"n": 1}).fetchone()
    wire.commit()
    connection.execute("DEALLOCATE ALL")  # psycopg does this on a rollback
    connection.commit()
    wire = Wire(connection, timeout=10.0)
    with pytest.raises(errors.InvalidSqlStatementName):
        wire.execute("SELECT :n", {"n": 1}).fetchone()
    wire.close()
    connection.rollback()
    wire = Wire(connection, timeout=10.0)
    assert wire.execute("SELECT :n", {"n": 1}).fetchone() == (1,)
    wire.commit()


def test_sessions_rolling_back_never_take_the_writers_prepared_statements(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg answers a rollback with DEALLOCATE ALL once it has prepared a statement of its
    own (on its fifth run): the writer's connections are never the sessions'."""
    if db.settings.is_sqlite:
        pytest.skip("PostgreSQL only")
    monkeypatch.setattr(engine, "HELD_IDLE", 0.0)  # every batch goes back through the pool
    for _ in range(6):
        with db.writer() as raw:
            assert raw.scalar("SELECT :n", {"n": 1}) == 1
        for _ in range(3):  # sessions on every connection the pool has
            with db.sessions() as session:
                for _ in range(6):
                    session.execute(text("SELECT 1"))
                session.rollback()
