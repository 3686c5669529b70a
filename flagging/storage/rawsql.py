"""Plain SQL on the DBAPI connection, for the ingest hot path only.

Every message of every connection goes through a dozen statements. Through the ORM they cost
about 6 ms of CPU a message; compiled SQLAlchemy statements still several hundred microseconds;
the driver's own cursor about 10 microseconds (bench/ingest). So the hot path writes its SQL
once, with `:name` parameters, and runs it on the transaction's own DBAPI connection: sqlite3
takes `:name` as it is, psycopg gets `%(name)s`. Everything else uses the ORM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection

_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_PYFORMAT: dict[str, str] = {}  # statement -> the same with %(name)s, for psycopg
T = TypeVar("T")


class Raw:
    """Runs SQL on a DBAPI connection inside a transaction someone else owns.

    One `Raw` lives for one transaction: `memo` keeps values that the transaction reads
    often and never changes itself (a sender's registration, a practice's id), so a batch of
    messages from one sender looks it up once.
    """

    def __init__(self, dbapi_connection: Any, *, postgres: bool) -> None:
        self.postgres = postgres
        self._cursor = dbapi_connection.cursor()
        self._memo: dict[Hashable, Any] = {}
        # Audit entries held back to the end of the transaction (flagging.audit.defer), so the
        # audit chain's lock is the last one it takes.
        self.deferred: list[Mapping[str, Any]] = []

    @classmethod
    def on(cls, connection: Connection) -> Raw:
        """The DBAPI connection under a SQLAlchemy Connection (an ORM session's, say)."""
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        return cls(dbapi, postgres=connection.dialect.name == "postgresql")

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
            converted = _NAMED.sub(r"%(\1)s", statement)
            _PYFORMAT[statement] = converted
        return converted

    def execute(self, statement: str, params: dict[str, Any]) -> Any:
        self._cursor.execute(self.sql(statement), params)
        return self._cursor

    def executemany(self, statement: str, rows: list[dict[str, Any]]) -> None:
        self._cursor.executemany(self.sql(statement), rows)

    def insert(self, statement: str, params: dict[str, Any]) -> int:
        """Run an INSERT and return the new row's id: SQLite's last row id, PostgreSQL's
        RETURNING (on SQLite that would cost a second step of the statement)."""
        if self.postgres:
            return int(self.scalar(statement + " RETURNING id", params))
        return int(self.execute(statement, params).lastrowid)

    def one(self, statement: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        row = self.execute(statement, params).fetchone()
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
