"""Group commit: units of work that arrive together share one transaction, each in a savepoint.

Used by the receive path (flagging/receive.py) in the listener's process, and by the SQLite
writer process (flagging/storage/writer.py) for the units sent to it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw

T = TypeVar("T")


def acquired_lock() -> threading.Lock:
    """A lock already held: its waiter blocks in acquire() until someone releases it once
    (cheaper than a threading.Event, which builds a Condition for each message)."""
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Job(Generic[T]):
    work: Callable[[Raw], T]
    result: T | None = None
    error: BaseException | None = None
    done: bool = False
    lead: bool = False  # this caller runs the next batch
    wake: threading.Lock = field(default_factory=acquired_lock)  # released once, to wake


class GroupCommit(Generic[T]):
    """Runs units of work that arrive together in one transaction, each in its own savepoint.

    With SQLite the commit (an fsync, and every index page the transaction touched written to
    the WAL) is most of the cost of a message and happens under the one writer lock; messages
    arriving on other connections meanwhile would queue for it one by one. Here the first
    caller to find nobody leading leads: it runs everything waiting (up to `max_batch`) and
    commits once; each caller is woken only after the commit that holds its work, and the
    oldest one still waiting is woken to lead the next batch. A unit that fails is rolled back
    to its savepoint alone; if the commit fails, every unit in it gets the error. One message
    alone is committed alone, without waiting for company.
    """

    def __init__(self, db: Database, max_batch: int = 32) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: list[_Job[T]] = []
        self._leading = False
        self._lock = threading.Lock()  # guards the queue and `_leading`
        self._integrity_error: type[Exception] = db.engine.dialect.loaded_dbapi.IntegrityError

    def run(self, work: Callable[[Raw], T]) -> T:
        """Run `work` in a write transaction; return once that is committed."""
        job: _Job[T] = _Job(work)
        with self._lock:
            self._queue.append(job)
            if not self._leading:
                self._leading = job.lead = True
        if not job.lead:
            job.wake.acquire()
        if not job.done:  # we lead: our job is the oldest waiting, so it is in this batch
            with self._lock:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                self._run(batch)
            finally:
                with self._lock:
                    if self._queue:
                        self._queue[0].lead = True
                        self._queue[0].wake.release()
                    else:
                        self._leading = False
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _run(self, batch: list[_Job[T]]) -> None:
        try:
            outcomes = run_batch(self._db, [job.work for job in batch], self._integrity_error)
        except Exception as exc:  # the commit (or the connection) failed: nothing was stored
            outcomes = [(None, exc)] * len(batch)
        self._db.keep_wal(next((e for _, e in outcomes if e is not None), None))
        for job, (result, error) in zip(batch, outcomes, strict=True):
            job.result, job.error, job.done = result, error, True
            if not job.lead:  # the leader (the one job here with `lead`) is awake
                job.wake.release()


def run_batch(
    db: Database, works: list[Callable[[Raw], T]], integrity_error: type[Exception]
) -> list[tuple[T | None, BaseException | None]]:
    """Run units of work in one write transaction, each in its own savepoint (a unit alone
    in none: `_alone`), and commit.

    Returns each unit's result or error; a unit that failed was rolled back alone. Raises if
    the transaction itself (the commit, the connection) failed: then nothing was stored.

    On PostgreSQL the units run in pipeline mode (Raw.pipelined): a statement whose answer
    the unit does not read (the savepoint, an UPDATE, an insert without RETURNING, the
    release) is sent with the next one that it does, and the reads it will need are sent
    ahead (Raw.ahead), so a message costs a round trip for each group of answers it waits
    for, and one more at its end, where its errors are collected, only if something it sent
    after its last answer is still unanswered (Raw.end_unit)."""
    if len(works) == 1:
        return [_alone(db, works[0], integrity_error)]
    outcomes: list[tuple[T | None, BaseException | None]] = []
    with db.writer() as raw, raw.pipelined():
        for index, work in enumerate(works):
            outcomes.append(_one(raw, work, integrity_error, f"unit{index}"))
    return outcomes


def _alone(
    db: Database, work: Callable[[Raw], T], integrity_error: type[Exception]
) -> tuple[T | None, BaseException | None]:
    """A unit with no company needs no savepoint: it has the transaction to itself, and its
    failure rolls all of it back. On PostgreSQL a savepoint is a subtransaction, and the
    practice row that a unit's inserts lock for their foreign keys (KEY SHARE, taken by the
    subtransaction) and that the feed counter then updates (by the transaction) takes a
    MultiXact to record both: a WAL record and an SLRU entry a message (bench/units.py
    --database). Its other errors are its transaction's, and raised as `run_batch` raises
    those: either way the caller gives the unit the error, and nothing of it was stored."""
    for attempt in (1, 2):
        try:
            with db.writer() as raw, raw.pipelined():
                result = work(raw)
        except integrity_error as exc:
            # A concurrent copy committed first: run it again, and it sees what that stored.
            if attempt == 2:
                return None, exc
            continue
        return result, None
    raise AssertionError("unreachable")


def _one(
    raw: Raw, work: Callable[[Raw], T], integrity_error: type[Exception], savepoint: str
) -> tuple[T | None, BaseException | None]:
    """Run a unit in its own savepoint, named for it alone: on PostgreSQL its release may go
    out with the next unit (Raw.end_unit), and were that release to fail, the next unit's
    rollback must not find this unit's savepoint and undo it (it fails the whole batch)."""
    mark = raw.mark()  # a unit rolled back takes its audit entries and feed events with it
    for attempt in (1, 2):
        raw.execute(f"SAVEPOINT {savepoint}", {})
        try:
            result = work(raw)
            raw.end_unit(savepoint)  # this unit's errors surface in it, never in the next
        except integrity_error as exc:
            _roll_back(raw, mark, savepoint)
            # A concurrent copy committed first (another process, on PostgreSQL): run it
            # again, and it sees what that one stored.
            if attempt == 2:
                return None, exc
            continue
        except Exception as exc:
            _roll_back(raw, mark, savepoint)
            return None, exc
        return result, None
    raise AssertionError("unreachable")


def _roll_back(raw: Raw, mark: tuple[int, int], savepoint: str) -> None:
    """Undo a failed unit to its savepoint (which a failure before its release left)."""
    with contextlib.suppress(Exception):  # the unit's error is already in hand
        raw.sync()  # pipeline mode: collect what was sent after the failure (skipped)
    raw.execute(f"ROLLBACK TO SAVEPOINT {savepoint}", {})
    raw.execute(f"RELEASE SAVEPOINT {savepoint}", {})
    raw.sync()
    raw.forget_since(mark)
