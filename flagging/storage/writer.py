"""A writer process for SQLite: ingest transactions run beside the listener, not inside it.

SQLite has one writer at a time, and a listener's connection threads all queue for it. In one
interpreter the writer also competes with those threads for the GIL: every statement and the
commit's fsync let go of it, and getting it back means waiting for a thread that is parsing the
next message. On the 2-core bench machine the listener then used one core and left most of the
other idle (bench/ingest.py, 8 connections). Here the transactions run in a process of their
own: connection threads parse, check and build ACKs; the writer process takes whatever units
of work have arrived, runs them in one transaction (flagging.storage.batches.run_batch),
commits, and sends each unit's result back. A unit's reply reaches its caller only after that
commit.

The two pipes join two processes of ours and nothing else (pickle is safe on them). Units of
work must be picklable callables taking a `Raw` (plain data, no connections) whose classes the
writer can import. The writer process ends when its input does: when the listener stops it or
dies. If the writer dies, the units it held fail (their callers answer AR, so senders resend)
and a unit at least a second after its start starts a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, TypeVar

from config import Settings
from config.logs import configure_logging
from flagging import memory
from flagging.logs import Throttle
from flagging.storage.batches import acquired_lock, run_batch
from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = b"stop"  # not a pickle: asks the writer process to end after what it holds
_PIPE_BYTES = 1 << 20
_RESTART_AFTER = 1.0  # seconds between starts, so a writer that cannot start is not respawned
# for every message


class WriterGone(Exception):
    """The writer process ended before it answered: the unit may or may not be committed."""


@dataclass
class _Waiting(Generic[T]):
    result: T | None = None
    error: BaseException | None = None
    wake: threading.Lock = field(default_factory=acquired_lock)


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    units: Connection  # ours to write
    replies: Connection  # ours to read, on the reader thread
    waiting: dict[int, _Waiting[Any]] = field(default_factory=dict)  # sent, not answered


class WriterProcess(Generic[T]):
    """Runs units of work in a separate writer process; `run` returns after their commit."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards starting the process and sending to it
        self._child: _Child | None = None
        self._last_start = -_RESTART_AFTER

    @property
    def pid(self) -> int | None:
        """The running writer process's id (for operators and tests)."""
        child = self._child
        return child.process.pid if child else None

    def start(self) -> None:
        """Start the writer process now rather than with the first unit."""
        with self._lock:
            self._running()

    def run(self, work: Callable[[Raw], T]) -> T:
        """Run `work` in the writer process; return its result once that is committed."""
        key = next(self._ids)
        data = pickle.dumps((key, work), pickle.HIGHEST_PROTOCOL)
        waiting: _Waiting[T] = _Waiting()
        with self._lock:  # registered and sent together: a reader that found the process
            child = self._running()  # gone has failed everything sent to it before this
            child.waiting[key] = waiting
            try:
                child.units.send_bytes(data)
            except OSError as exc:  # it died since; its reader fails what it held
                del child.waiting[key]
                raise WriterGone("the writer process is not running") from exc
        waiting.wake.acquire()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    def _running(self) -> _Child:
        """The running writer process, started now if there is none (lock held)."""
        if self._child is not None:
            return self._child
        if time.monotonic() - self._last_start < _RESTART_AFTER:
            raise WriterGone("the writer process ended; a new one starts in a moment")
        self._last_start = time.monotonic()
        units_in, units_out = os.pipe()
        replies_in, replies_out = os.pipe()
        # A pipe holds 64 KiB unless asked for more: a 200 KB message's unit then crossed in
        # four pieces, the listener waiting for the writer to take each. Linux lets any
        # process have 1 MiB (fs/pipe-max-size); where it does not, 64 KiB still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(units_out, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        # The project root first, so the child imports this same code (-P: not the current
        # directory's, which `-m` would otherwise put before it).
        path = [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-P",
                "-m",
                "flagging.storage.writer",
                str(units_in),
                str(replies_out),
            ],
            pass_fds=(units_in, replies_out),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.close(units_in)
        os.close(replies_out)
        child = _Child(
            process,
            Connection(units_out, readable=False),
            Connection(replies_in, writable=False),
        )
        child.units.send_bytes(pickle.dumps(self._settings, pickle.HIGHEST_PROTOCOL))
        self._child = child
        threading.Thread(
            target=self._read_replies, args=(child,), name="writer-replies", daemon=True
        ).start()
        return child

    def _read_replies(self, child: _Child) -> None:
        try:
            while True:
                for key, result, error in pickle.loads(child.replies.recv_bytes()):  # noqa: S301
                    waiting = child.waiting.pop(key)
                    waiting.result, waiting.error = result, error
                    waiting.wake.release()
        except (EOFError, OSError):
            pass
        with self._lock:
            if self._child is child:
                self._child = None
                log.error("the writer process ended; the units it held get an error")
            child.replies.close()
            with contextlib.suppress(OSError):
                child.units.close()
            for waiting in child.waiting.values():
                waiting.error = WriterGone("the writer process ended before it answered")
                waiting.wake.release()
            child.waiting.clear()
        child.process.wait()

    def close(self) -> None:
        """Stop the writer process once it has answered every unit sent to it."""
        with self._lock:
            child, self._child = self._child, None
            if child is None:
                return
            with contextlib.suppress(OSError):
                child.units.send_bytes(_STOP)
        try:
            child.process.wait(30)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait(5)


def serve(units: Connection, replies: Connection, max_batch: int = 32) -> None:
    """The writer process: settings, then batches of units in; one commit each; results out."""
    settings: Settings = pickle.loads(units.recv_bytes())  # noqa: S301
    configure_logging(settings.log_level, settings.log_format)
    memory.tune()
    db = Database(settings)
    throttle = Throttle(log)
    integrity_error: type[Exception] = db.engine.dialect.loaded_dbapi.IntegrityError
    try:
        while True:
            try:
                batch = [units.recv_bytes()]
                while len(batch) < max_batch and units.poll():
                    batch.append(units.recv_bytes())
            except EOFError:  # the listener is gone
                return
            stop = batch[-1] == _STOP
            jobs = [pickle.loads(data) for data in batch if data != _STOP]  # noqa: S301
            outcomes: list[tuple[Any, BaseException | None]]
            try:
                outcomes = run_batch(db, [work for _, work in jobs], integrity_error)
            except Exception as exc:  # the commit failed: nothing in the batch was stored
                outcomes = [(None, exc)] * len(jobs)
            # The traceback is only here (the listener gets the error alone); a failed commit
            # is the same error for every unit, and a failure that repeats (a full disk) is
            # one line a second.
            errors = {id(e): e for _, e in outcomes if e is not None}.values()
            for error in errors:
                throttle.error(
                    f"unit {type(error).__name__}",
                    "a unit failed in the writer process",
                    exc_info=error,
                )
            db.keep_wal(next(iter(errors), None))
            if not errors and throttle.active():
                log.warning("units succeed again (%d failures were not logged)", throttle.reset())
            answers = [
                (key, result, _picklable(error))
                for (key, _), (result, error) in zip(jobs, outcomes, strict=True)
            ]
            replies.send_bytes(pickle.dumps(answers, pickle.HIGHEST_PROTOCOL))
            if stop:
                return
            size = max(len(data) for data in batch)
            del batch, jobs, outcomes, answers  # before the trim, so that it can give them back
            if size >= memory.LARGE:
                db.release_writer()
            memory.after(size)
    finally:
        db.dispose()


def _picklable(error: BaseException | None) -> BaseException | None:
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301
    except Exception:
        return WriterGone(f"{type(error).__name__} in the writer process")
    return error


def main(argv: list[str]) -> None:
    """`python -m flagging.storage.writer UNITS_FD REPLIES_FD`, as `WriterProcess` starts it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the listener decides when to stop
    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))


if __name__ == "__main__":
    # Through the imported module, so what is pickled names flagging.storage.writer, not __main__.
    from flagging.storage import writer

    writer.main(sys.argv[1:])
