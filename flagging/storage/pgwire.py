"""The ingest writer's PostgreSQL statements sent with libpq itself (psycopg.pq), pipelined.

psycopg's cursor costs about 45 us of CPU a statement even in pipeline mode: a cursor, a query
conversion and a Transformer for each, and a round of socket system calls after every execute.
libpq's own calls, through psycopg's compiled binding, cost a third of that (bench/statements.py
prints both), and a message is about fifteen statements. So for the group commit's
transactions (and nothing else) `Wire` speaks the extended protocol on the connection's libpq
handle directly: each statement prepared once per connection, its parameters dumped and its
rows loaded by psycopg's own Transformer (the same types as a cursor's), everything buffered
until an answer is read, and then sent in one write with a flush request. psycopg's Connection
stays the owner: `Wire` leaves pipeline mode at its commit or `close`, before anyone else uses
the connection, which must be one that psycopg prepares nothing on (Database's writer pool:
psycopg answers a rollback with DEALLOCATE ALL once it has prepared a statement of its own).

Every wait for the server is bounded: past `timeout` seconds without the answer (a stalled
server, a lock held by another transaction, a network that drops packets) the server is asked
to cancel what it is doing, the transaction fails with `Stalled`, and the connection is never
used again (`close` raises), so the messages in it are answered AR instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import select
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import capabilities, errors, pq
from psycopg.adapt import PyFormat, Transformer

NAMED = re.compile(r"(?<![:\w]):(\w+)")  # a :name parameter (not a ::cast)
# statement -> the same with $1.. for its :names, and the names in that order
_POSITIONAL: dict[str, tuple[bytes, tuple[str, ...]]] = {}
# Per connection: (SQL, parameter types) -> the name it was prepared under.
_PREPARED: weakref.WeakKeyDictionary[Any, dict[tuple[bytes, Sequence[int]], bytes]] = (
    weakref.WeakKeyDictionary()
)
# Statements built with values in them (a savepoint's name) would fill the server's memory
# one prepared statement at a time: past this many on a connection, the rest are not kept.
MAX_PREPARED = 200
_NAMES = itertools.count()  # a name never used twice in this process

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED


class Answer:
    """A statement sent: its rows once they have arrived, read as from a DBAPI cursor."""

    __slots__ = ("_error", "_rows", "_wire", "done")

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._rows: list[tuple[Any, ...]] = []
        self._error: BaseException | None = None
        self.done = False

    def fetchone(self) -> tuple[Any, ...] | None:
        self._wire.wait_for(self)
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._wire.wait_for(self)
        rows, self._rows = self._rows, []
        return rows


class _Prepare:
    """A statement's preparation, sent ahead of its first use: forgotten if it failed."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[bytes, Sequence[int]]) -> None:
        self.key = key


class _Sync:
    __slots__ = ()


class Stalled(errors.OperationalError):
    """The server did not answer within the wait's bound; the connection cannot be reused."""


class Wire:
    """One transaction's statements on a psycopg connection, in libpq's pipeline mode.

    Statements go out when an answer is waited for (`wait_for`, `sync`, `commit`), all at
    once; answers come back in the order sent. A failed statement's error is raised by the
    first wait that reaches it (and by nothing after it); the server skips every statement
    sent after it until the next `sync`, whose own wait then raises nothing new.
    """

    def __init__(self, connection: psycopg.Connection[Any], timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout
        self._stalled: Stalled | None = None
        self._pg = connection.pgconn
        self._encoding = connection.info.encoding
        self._tx = Transformer(connection)
        self._names = _PREPARED.setdefault(connection, {})
        self._queue: deque[Answer | _Prepare | _Sync] = deque()
        self._asked = 0  # how many of the queue's first entries the server was asked to send
        self._unraised: BaseException | None = None  # an error no wait has raised yet
        self._poll = select.poll()
        self._poll.register(self._pg.socket, select.POLLIN)
        self._pg.enter_pipeline_mode()
        self.execute("BEGIN", {})

    def execute(self, statement: str, params: Mapping[str, Any]) -> Answer:
        sql, names = _positional(statement)
        tx = self._tx
        values = tx.dump_sequence([params[n] for n in names], [PyFormat.AUTO] * len(names))
        types, formats = tx.types or (), tx.formats
        key = (sql, types)
        name = self._names.get(key)
        if name is None and len(self._names) < MAX_PREPARED:
            name = self._names[key] = b"fl_%d" % next(_NAMES)
            self._pg.send_prepare(name, sql, param_types=types)
            self._queue.append(_Prepare(key))
        if name is not None:
            self._pg.send_query_prepared(name, values, param_formats=formats)
        else:
            self._pg.send_query_params(sql, values, param_types=types, param_formats=formats)
        answer = Answer(self)
        self._queue.append(answer)
        return answer

    def executemany(self, statement: str, rows: Sequence[Mapping[str, Any]]) -> None:
        for params in rows:
            self.execute(statement, params)

    def wait_for(self, answer: Answer) -> None:
        """Read answers up to `answer`'s; raise the first error among them not yet raised."""
        if not answer.done:
            if self._asked < len(self._queue):
                self._pg.send_flush_request()
                self._asked = len(self._queue)
            self._flush()
            while not answer.done:
                self._read_next()
        self._raise()
        if answer._error is not None:
            raise answer._error

    def sync(self) -> None:
        """Wait for every statement sent; raise the first error among them not yet raised.
        After a failure, the statements after it were skipped and the transaction is in
        error: a rollback (to a savepoint) is what may follow."""
        self._pg.pipeline_sync()
        self._queue.append(_Sync())
        self._asked = len(self._queue)
        self._flush()
        while self._queue:
            self._read_next()
        self._raise()

    def commit(self) -> None:
        self.execute("COMMIT", {})
        self.sync()
        self._pg.exit_pipeline_mode()

    def close(self) -> None:
        """Leave pipeline mode (the transaction, if still open, is the caller's to roll back);
        raises if the connection failed."""
        if self._stalled is not None:
            raise self._stalled
        if self._pg.pipeline_status != pq.PipelineStatus.OFF:
            try:
                self.sync()
            except errors.Error as exc:
                if exc.sqlstate is None:  # not a statement's error: the connection's
                    raise
            self._pg.exit_pipeline_mode()

    def _raise(self) -> None:
        error, self._unraised = self._unraised, None
        if error is not None:
            raise error

    def _flush(self) -> None:
        """Send everything buffered (reading answers meanwhile, so neither side's buffer
        fills and stalls the other)."""
        while self._pg.flush() == 1:
            self._poll.modify(self._pg.socket, select.POLLIN | select.POLLOUT)
            ready = self._ready()
            if any(event & select.POLLIN for _, event in ready):
                self._pg.consume_input()
        self._poll.modify(self._pg.socket, select.POLLIN)

    def _result(self) -> pq.abc.PGresult | None:
        while self._pg.is_busy():
            self._ready()
            self._pg.consume_input()
        return self._pg.get_result()

    def _ready(self) -> list[tuple[int, int]]:
        """Wait until the socket is ready, at most `timeout` seconds; past that, the server
        is asked to cancel the transaction's statement and `Stalled` is raised."""
        if self._stalled is not None:  # given up: nothing more is waited for on it
            raise self._stalled
        ready = self._poll.poll(self._timeout * 1000)
        if not ready:
            # The cancel releases the locks the statement waits with, rather than leaving
            # them held until the server next writes to the connection we give up.
            # (Not with a libpq before 17, whose cancel could wait for ever itself.)
            if capabilities.has_cancel_safe():
                with contextlib.suppress(Exception):
                    self._connection.cancel_safe(timeout=min(self._timeout, 5.0))
            self._stalled = Stalled(f"PostgreSQL gave no answer within {self._timeout:g} s")
            raise self._stalled
        return ready

    def _read_next(self) -> None:
        entry = self._queue.popleft()
        self._asked -= 1
        if isinstance(entry, _Sync):
            result = self._result()
            if result is None or result.status != _SYNC:
                raise errors.OperationalError("the pipeline's answers are out of step")
            return
        results = []
        while (result := self._result()) is not None:
            results.append(result)
        if not results:
            raise errors.OperationalError("the connection was lost")
        last = results[-1]
        error: BaseException | None = None
        if last.status == _ABORTED:
            error = errors.OperationalError("skipped: an earlier statement failed")
        elif last.status not in _OK:
            error = errors.error_from_result(last, encoding=self._encoding)
            if self._unraised is None:
                self._unraised = error
            if isinstance(error, errors.InvalidSqlStatementName):
                # Our prepared statements are gone (a DEALLOCATE ALL, a pooler's reset): this
                # transaction fails, the next prepares them again.
                self._names.clear()
        if isinstance(entry, _Prepare):
            if error is not None:
                self._names.pop(entry.key, None)
            return
        entry.done = True
        if error is not None:
            entry._error = error
            return
        if last.status == pq.ExecStatus.TUPLES_OK and last.ntuples:
            self._tx.set_pgresult(last)
            entry._rows = self._tx.load_rows(0, last.ntuples, tuple)


def _positional(statement: str) -> tuple[bytes, tuple[str, ...]]:
    """`statement` with $1, $2.. for its :names (one number a name), and the names."""
    known = _POSITIONAL.get(statement)
    if known is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        sql = NAMED.sub(number, statement).encode()
        known = _POSITIONAL[statement] = (sql, tuple(names))
    return known
