"""Where the receive use case runs: group commits, the SQLite writer process, readiness.

Messages that arrive together on different connections share one commit
(flagging.storage.batches.GroupCommit, or on SQLite listeners the writer process of
flagging/storage/writer.py), each in its own savepoint, so one message's failure never touches
another's. The edge (hl7/handler.py) hands each message's `Arrival` to `Receiver.receive` and
sends the ACK only once that returns, after the commit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from flagging.bindings import Peer, is_refusal, may_send
from flagging.errors import Conflict, NotFound
from flagging.logs import Throttle
from flagging.models import InboundMessage, MessageOutcome
from flagging.receive import Arrival, Receive, Verdict, record_unanswered
from flagging.received import Problem, Receipt
from flagging.screening import active_rules
from flagging.storage.batches import GroupCommit
from flagging.storage.engine import Database, write_probe
from flagging.storage.rawsql import Raw
from flagging.storage.writer import WriterProcess

log = logging.getLogger(__name__)

REPROCESSABLE = (MessageOutcome.QUARANTINED, MessageOutcome.REJECTED)
PROBE_AFTER = 5.0  # seconds without a failed message before readiness tries a probe write


@dataclass(frozen=True)
class _Probe:
    """A unit of work that only writes (storage.engine.write_probe): can messages be stored?"""

    def __call__(self, raw: Raw) -> Verdict:
        write_probe(raw)
        return Verdict("", b"")


class Receiver:
    """Runs `flagging.receive` for the messages of one process, and says whether it can."""

    def __init__(self, db: Database, settings: Settings, *, writer_process: bool = False) -> None:
        """`writer_process`: run the transactions in a process of their own (SQLite listeners,
        see flagging/storage/writer.py); `close()` stops it."""
        self.db = db
        self.settings = settings
        self._group: GroupCommit[Verdict] | WriterProcess[Verdict]
        if writer_process:
            self._group = WriterProcess(settings)
            self._group.start()
        else:
            self._group = GroupCommit(db)
        # When this process's copy of the screening rules is next refreshed: only with a
        # writer process (otherwise every transaction refreshes it, flagging.screening).
        self._rules_due: float | None = 0.0 if writer_process else None
        self._dbapi_error: type[Exception] = db.engine.dialect.loaded_dbapi.Error
        # A failure that repeats (the database down, the disk full) is one log line a second.
        self.throttle = Throttle(log)
        self._failing_since: float | None = None  # since when writes have failed
        self._probe_due = 0.0
        self._last_failure = 0.0

    def close(self) -> None:
        if isinstance(self._group, WriterProcess):
            self._group.close()

    def receive(self, arrival: Arrival) -> Verdict:
        """Run `receive` in a group commit; return its verdict once that is committed."""
        try:
            verdict = self._group.run(Receive(arrival.with_spans()))
        except Exception:
            self._writes_fail()
            raise
        self._writes_succeed()
        return verdict

    def is_database_error(self, exc: BaseException) -> bool:
        return isinstance(exc, SQLAlchemyError | self._dbapi_error)

    def write_problem(self) -> str | None:
        """Why messages cannot be stored now (for readiness), or None when they can. While
        writes fail, a probe write is tried at most once a second, so that readiness comes
        back without waiting for a message."""
        since = self._failing_since
        if since is None:
            return None
        now = time.monotonic()
        low = self.db.low_on_space()
        if low:
            return low
        # Messages still arriving say best whether they can be stored; the probe (a write of
        # a few bytes) speaks only when they have stopped for a while.
        if now >= self._probe_due and now - self._last_failure >= PROBE_AFTER:
            self._probe_due = now + 1.0
            try:
                self._group.run(_Probe())
            except Exception:  # noqa: S110 (still failing: said below)
                pass
            else:
                self._writes_succeed()
                return None
        return f"database writes have failed for {now - since:.0f} s"

    def _writes_fail(self) -> None:
        self._last_failure = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._last_failure

    def _writes_succeed(self) -> None:
        if self._failing_since is not None:
            self._failing_since = None
            left_out = self.throttle.reset()
            log.warning("database writes succeed again (%d failures were not logged)", left_out)

    def may_send(self, connection: Peer, facility: str, application: str) -> bool | None:
        """`may_send` in a read transaction of its own; None if the database failed."""
        try:
            with self.db.reading() as session:
                return may_send(Raw.on(session.connection()), connection, facility, application)
        except (SQLAlchemyError, self._dbapi_error) as exc:
            log.error("sender binding not checked: database error %s", type(exc).__name__)
            return None

    def refresh_rules(self) -> None:
        """Refresh the rules that `ingest.screen_ahead` uses, at most once a second: the writer
        process checks their fingerprint, so a stale copy costs a second screening there,
        never a wrong result."""
        now = time.monotonic()
        if self._rules_due is None or now < self._rules_due:
            return
        self._rules_due = now + 1.0
        try:
            with self.db.reading() as session:
                active_rules(Raw.on(session.connection()))
        except (SQLAlchemyError, self._dbapi_error):
            pass  # the writer screens with the rules it reads itself, or answers AR

    def to_reprocess(self, message_id: int) -> bytes:
        """The bytes of a quarantined or rejected message that may run again."""
        with self.db.transaction() as session:
            row = session.get(InboundMessage, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            if row.outcome not in REPROCESSABLE or row.raw is None:
                raise Conflict(
                    f"message {message_id} is {row.outcome}: only quarantined or rejected "
                    "messages can be reprocessed"
                )
            if row.reprocessed_as_id is not None:
                raise Conflict(f"message {message_id} was already reprocessed")
            if is_refusal(row.error_text):
                # Its sender never proved who it was: running it would process a forgery.
                raise Conflict(
                    f"message {message_id} came on a connection its sender is not bound to: "
                    "it cannot be reprocessed; the sender must send it again"
                )
            return row.raw

    def record_unanswered(
        self, receipt: Receipt, problem: Problem, *, ack: bytes | None, size: int | None = None
    ) -> int:
        """`receive.record_unanswered` in a transaction of its own; returns the entry's id."""
        with self.db.writer() as raw:
            return record_unanswered(raw, receipt, problem, ack=ack, size=size)
