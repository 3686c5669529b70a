"""Plain SQL on the DBAPI connection, for the ingest hot path only.

Every message of every connection goes through a dozen statements. Through the ORM they cost
about 6 ms of CPU a message; compiled SQLAlchemy statements still several hundred microseconds;
the driver's own cursor about 10 microseconds (bench/ingest). So the hot path writes its SQL
once, with `:name` parameters, and runs it on the transaction's own DBAPI connection: sqlite3
takes `:name` as it is, psycopg gets `%(name)s`. Everything else uses the ORM.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection

from flagging.storage.pgwire import NAMED, Wire

_PYFORMAT: dict[str, str] = {}  # statement -> the same with %(name)s, for psycopg
T = TypeVar("T")


class Raw:
    """Runs SQL on a DBAPI connection inside a transaction someone else owns.

    One `Raw` lives for one transaction: `memo` keeps values that the transaction reads
    often and never changes itself (a sender's registration, a practice's id), so a batch of
    messages from one sender looks it up once.
    """

    def __init__(self, dbapi_connection: Any, *, postgres: bool, wire: Wire | None = None) -> None:
        self.postgres = postgres
        self._connection = dbapi_connection
        # The group commit's transactions on PostgreSQL speak libpq directly (storage/pgwire.py),
        # always pipelined; others use the driver's cursor (psycopg's pipeline while
        # `pipelined`).
        self._wire = wire
        self._cursor = dbapi_connection.cursor() if wire is None else None
        self._pipeline: Any = wire
        self._memo: dict[Hashable, Any] = {}
        # Reads sent `ahead`: their cursors, and their place in the order of statements sent.
        self._ahead: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Any, int]] = {}
        # In pipeline mode, how many statements were sent, and how many of the first of them
        # are known to have succeeded (an answer read, for them or one sent after them).
        self._sent = self._answered = 0
        # Audit entries held back to the end of the transaction (flagging.audit.defer), so the
        # audit chain's lock is the last one it takes.
        self.deferred: list[Mapping[str, Any]] = []
        # Feed events held back likewise (flagging.feed.defer_event): each practice's feed
        # row is locked only from their numbering, just before the audit entries, to commit.
        self.feed_events: list[dict[str, Any]] = []

    @classmethod
    def on(cls, connection: Connection) -> Raw:
        """The DBAPI connection under a SQLAlchemy Connection (an ORM session's, say)."""
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        return cls(dbapi, postgres=connection.dialect.name == "postgresql")

    def mark(self) -> tuple[int, int]:
        """Where the deferred work stands (`forget_since` drops what came after)."""
        return len(self.deferred), len(self.feed_events)

    def forget_since(self, mark: tuple[int, int]) -> None:
        """Drop the audit entries and feed events deferred since `mark`: their unit of work
        was rolled back to its savepoint."""
        del self.deferred[mark[0] :]
        del self.feed_events[mark[1] :]

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """On PostgreSQL, psycopg's pipeline mode: statements are sent without waiting for
        their answers, so a run of them costs one round trip, and only a statement whose
        rows are read (and the commit, and `sync`) waits. A failed statement's error is
        raised at the next wait, and the statements sent after it are skipped until the
        next `sync`. SQLite: statements run one by one as always."""
        if not self.postgres or self._pipeline is not None:
            yield
            return
        with self._connection.pipeline() as pipeline:
            self._pipeline = pipeline
            try:
                yield
            finally:
                self._pipeline = None

    def sync(self) -> None:
        """In pipeline mode, wait for every statement sent so far: raises the error of the
        first that failed (the ones after it were skipped). Otherwise nothing to wait for.
        Reads sent `ahead` and not asked for by then are dropped (a unit of work ends here)."""
        self._ahead.clear()
        if self._pipeline is not None:
            self._pipeline.sync()
            self._answered = self._sent

    def end_unit(self, savepoint: str) -> None:
        """Release a group commit's unit's savepoint, and `sync`, so that an error of the
        unit's surfaces in the unit. Unless every statement before the release is known to
        have succeeded (its answer, or a later one, was read): then nothing of the unit can
        still fail, and the release goes out with the next unit's first round trip."""
        self.execute(f"RELEASE SAVEPOINT {savepoint}", {})
        if self._answered == self._sent - 1:
            self._ahead.clear()
        else:
            self.sync()

    def ahead(self, statement: str, params: dict[str, Any], unless: Hashable = None) -> None:
        """In pipeline mode, send now a statement whose row `one(statement, params)` will ask
        for later (unless `memo` already holds `unless`): it then shares the round trip of
        the next statement whose answer is read, instead of costing one of its own. For a
        read whose answer nothing sent between now and then can change, or an UPDATE ...
        RETURNING that is sure to be asked for (it runs once, when sent). Otherwise
        (SQLite, no round trips) nothing: `one` runs it when asked."""
        if self._pipeline is None or (unless is not None and unless in self._memo):
            return
        cursor = self.execute(statement, params)
        self._ahead[_ahead_key(statement, params)] = (cursor, self._sent)

    def _cursor_for(self) -> Any:
        # In pipeline mode each statement gets a cursor of its own: a cursor keeps only the
        # last result that arrived, and an unread one could arrive after the next statement
        # was sent and be taken for its answer.
        return self._cursor if self._pipeline is None else self._connection.cursor()

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()` once per transaction for `key`."""
        try:
            return cast(T, self._memo[key])
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def sql(self, statement: str) -> str:
        if not self.postgres:
            return statement
        converted = _PYFORMAT.get(statement)
        if converted is None:
            converted = NAMED.sub(r"%(\1)s", statement)
            _PYFORMAT[statement] = converted
        return converted

    def execute(self, statement: str, params: dict[str, Any]) -> Any:
        if self._wire is not None:
            answer = self._wire.execute(statement, params)
        else:
            answer = self._cursor_for()
            answer.execute(self.sql(statement), params)
        if self._pipeline is not None:
            self._sent += 1
        return answer

    def executemany(self, statement: str, rows: list[dict[str, Any]]) -> None:
        if self._wire is not None:
            self._wire.executemany(statement, rows)
        else:
            self._cursor_for().executemany(self.sql(statement), rows)
        if self._pipeline is not None:
            self._sent += 1

    def commit(self) -> None:
        if self._wire is not None:
            self._wire.commit()
        else:
            self._connection.commit()

    def close(self) -> None:
        """Before a rollback: on the libpq path, out of pipeline mode (raises if the
        connection failed)."""
        if self._wire is not None:
            self._wire.close()

    def insert(self, statement: str, params: dict[str, Any]) -> int:
        """Run an INSERT and return the new row's id: SQLite's last row id, PostgreSQL's
        RETURNING (on SQLite that would cost a second step of the statement)."""
        if self.postgres:
            return int(self.scalar(statement + " RETURNING id", params))
        return int(self.execute(statement, params).lastrowid)

    def one(self, statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        sent = self._ahead.pop(_ahead_key(statement, params), None) if self._ahead else None
        cursor, place = sent or (self.execute(statement, params), self._sent)
        row = cursor.fetchone()
        # Answers arrive in the order sent: every statement up to this one succeeded.
        self._answered = max(self._answered, place)
        return tuple(row) if row is not None else None

    def scalar(self, statement: str, params: dict[str, Any]) -> Any:
        row = self.one(statement, params)
        return row[0] if row is not None else None

    def for_update(self) -> str:
        """Row locking where the database has it (SQLite's writer lock covers it)."""
        return " FOR UPDATE" if self.postgres else ""

    def timestamp(self, value: datetime | None) -> Any:
        """A UTC datetime as the ORM's UTCDateTime stores it (naive UTC; text on SQLite)."""
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # SQLAlchemy's SQLite format ("2026-11-24 09:30:00.000000"), ten times faster than
        # strftime, and with the year zero-padded as SQLAlchemy writes it.
        return naive if self.postgres else naive.isoformat(" ", "microseconds")

    def date(self, value: date | None) -> Any:
        """A date as the ORM stores it (text on SQLite)."""
        if value is None or self.postgres:
            return value
        return value.isoformat()

    def read_timestamp(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


def _ahead_key(statement: str, params: dict[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """What a read sent ahead is found by: its statement and parameters, in any order."""
    return statement, tuple(sorted(params.items()))
