"""Group commit: units of work that arrive together share one transaction, each in a savepoint.

Used by the receive path (flagging/receive.py) in the listener's process, and by the SQLite
writer process (flagging/storage/writer.py) for the units sent to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
    """Run units of work in one write transaction, each in its own savepoint, and commit.

    Returns each unit's result or error; a unit that failed was rolled back alone. Raises if
    the transaction itself (the commit, the connection) failed: then nothing was stored."""
    outcomes: list[tuple[T | None, BaseException | None]] = []
    with db.writer() as raw:
        _lock_practices(raw, works)
        for work in works:
            outcomes.append(_one(raw, work, integrity_error))
    return outcomes


def _lock_practices(raw: Raw, works: Sequence[object]) -> None:
    """On PostgreSQL, lock the feeds of every practice the batch will number events for, in
    one order (by id), before any unit runs.

    Each unit locks its practice's row to number the next feed event, and the lock is held
    until the batch commits. Without this, two listener processes whose batches hold messages
    for practices A and B in opposite orders deadlock; PostgreSQL breaks that after
    deadlock_timeout by failing one unit, whose sender is then answered AR. Units name their
    practices with a `practice_codes` attribute (hl7.handler's unit does). SQLite has one
    writer at a time, and a batch of one practice cannot wait on another: nothing to order."""
    if not raw.postgres:
        return
    codes = sorted({code for work in works for code in getattr(work, "practice_codes", ())})
    if len(codes) < 2:
        return
    names = ", ".join(f":c{i}" for i in range(len(codes)))
    raw.execute(
        f"SELECT id FROM practices WHERE ods_code IN ({names}) ORDER BY id FOR UPDATE",  # noqa: S608 - only placeholders are interpolated
        {f"c{i}": code for i, code in enumerate(codes)},
    )


def _one(
    raw: Raw, work: Callable[[Raw], T], integrity_error: type[Exception]
) -> tuple[T | None, BaseException | None]:
    deferred = len(raw.deferred)  # a unit rolled back takes its audit entries with it
    for attempt in (1, 2):
        raw.execute("SAVEPOINT unit", {})
        try:
            result = work(raw)
        except integrity_error as exc:
            raw.execute("ROLLBACK TO SAVEPOINT unit", {})
            raw.execute("RELEASE SAVEPOINT unit", {})
            del raw.deferred[deferred:]
            # A concurrent copy committed first (another process, on PostgreSQL): run it
            # again, and it sees what that one stored.
            if attempt == 2:
                return None, exc
            continue
        except Exception as exc:
            raw.execute("ROLLBACK TO SAVEPOINT unit", {})
            raw.execute("RELEASE SAVEPOINT unit", {})
            del raw.deferred[deferred:]
            return None, exc
        raw.execute("RELEASE SAVEPOINT unit", {})
        return result, None
    raise AssertionError("unreachable")
