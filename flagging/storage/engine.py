"""Engines and sessions: SQLite made durable, PostgreSQL by URL, one transaction per entry point."""

from __future__ import annotations

import errno
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, PoolProxiedConnection, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from flagging.audit import ask_head, flush_deferred
from flagging.feed import ask_numbers, number_deferred
from flagging.storage.pgwire import Wire
from flagging.storage.rawsql import Raw

# Execution option marking a connection that only reads (see `Database.reading`).
READ_ONLY_OPTION = "flagging_read_only"
# The WAL is checkpointed every WAL_CHECKPOINT_PAGES pages (16.5 MB of 4 KiB pages) and its file
# kept at up to WAL_SIZE_LIMIT, so that the pages of the next commits are written over the old
# ones. A WAL that grows instead makes every commit's fdatasync commit the file system's
# journal too (the file's size and blocks changed): with the file cut back to 16 MiB after each
# checkpoint at 16,000 pages, three pages in four grew it, and a message committed alone cost
# 1.35 ms of CPU against 1.09 with the file written over (`bench/cost.py --threads 1`, median
# of six alternating runs each).
WAL_CHECKPOINT_PAGES = 4000
WAL_SIZE_LIMIT = 32 * 1024 * 1024
# Seconds between checkpoints that empty the WAL (`Database.keep_wal`), and the least time
# between two attempts made because the WAL outgrew the free space or a write found none.
CHECKPOINT_INTERVAL = 30.0
CHECKPOINT_RETRY = 1.0
_SQLITE_FULL = 13
LOW_SPACE = 1024 * 1024  # below this, readiness says the volume is full
# A PostgreSQL writer connection unused for longer than this goes back through the pool (and
# its pre-ping) before it is used again; one in steady use is reused as it is.
HELD_IDLE = 5.0

log = logging.getLogger(__name__)


def write_probe(raw: Raw) -> None:
    """A write that costs nothing but still reaches the disk at commit (readiness checks it
    while writes fail): SQLite rewrites its header's user_version with the value it has,
    PostgreSQL takes a transaction id, whose commit is written to its WAL."""
    if raw.postgres:
        raw.scalar("SELECT txid_current()", {})
        return
    version = int(raw.scalar("PRAGMA user_version", {}) or 0)
    raw.execute(f"PRAGMA user_version = {version}", {})


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether a write failed for lack of space (SQLite's SQLITE_FULL, or ENOSPC)."""
    while exc is not None:
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None)
    return False


def make_engine(url: str, *, connect_timeout: float = 10.0, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL and immediate write transactions.
    PostgreSQL connections give up on a server that does not complete their start-up within
    `connect_timeout` seconds (libpq's, 2 at least): a host that takes a connection and never
    answers must not hold whoever connects for ever."""
    # Parameters are patient data (NHS numbers, names, document text): no SQL error or log
    # line may carry them.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _make_sqlite_durable(engine)
        return engine
    connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout))}
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _make_sqlite_durable(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers carry on while one writer commits; FULL syncs the WAL on every
        # commit, so a message that was acknowledged survives a power cut.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A message touches a dozen index pages; checkpointing the WAL every 1,000 pages (the
        # default) copied the same hot pages into the database over and over, so it is done
        # every 4,000 (WAL_CHECKPOINT_PAGES). After a checkpoint the WAL file is cut back to
        # WAL_SIZE_LIMIT, above what 4,000 pages take, so that it is written over rather than
        # grown and a burst does not leave it at its largest for good.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages kept per connection
        # The group commit gives each message a savepoint; their journal is a temporary file,
        # which a batch of messages outgrew (64 KiB) and wrote to disk page by page: an open,
        # an unlink and a couple of hundred writes a commit, none needed to survive a crash
        # (the WAL is what does). In memory, ingest wrote half the system time a message.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            # A reader (a GP poll) takes no write lock: WAL gives it a snapshot of what was
            # committed when it first reads, while writers carry on.
            connection.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock up front: two deferred transactions that both read and
        # then write would otherwise fail with "database is locked" instead of waiting.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one process, built from settings."""

    def __init__(self, settings: Settings, **engine_kwargs: Any) -> None:
        self.settings = settings
        timeout = settings.database_timeout
        self.engine = make_engine(settings.database_url, connect_timeout=timeout, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
        )
        # PostgreSQL without BEGIN/ROLLBACK: each statement sees what was committed when it
        # ran. Saves two round trips per request, a third of a GP poll's cost.
        self._statement_sessions = (
            self._read_sessions
            if settings.is_sqlite
            else sessionmaker(
                self.engine.execution_options(
                    **{READ_ONLY_OPTION: True}, isolation_level="AUTOCOMMIT"
                ),
                expire_on_commit=False,
            )
        )
        # SQLite has one writer at a time; threads of this process queue here rather than
        # spinning in SQLite's busy handler.
        self._write_lock: threading.Lock | None = threading.Lock() if settings.is_sqlite else None
        self._held: PoolProxiedConnection | None = None  # the SQLite writer's, between uses
        # PostgreSQL writer connections between uses, with when each was last used: a busy
        # group commit (storage/batches.py) reuses one and pays no pool check-out and no
        # pre-ping (a round trip) a batch. A server restart within HELD_IDLE of the last use
        # fails the batch on it (answered AR, resent) and the connection is dropped.
        self._held_pg: list[tuple[PoolProxiedConnection, float]] = []
        self._held_lock = threading.Lock()
        # PostgreSQL writer connections come from a pool of their own, on which nothing but
        # storage/pgwire.py runs statements: psycopg, which prepares a statement it has run
        # five times, answers a rollback with DEALLOCATE ALL, and that would take the
        # writer's prepared statements with it. Here psycopg prepares nothing.
        self._writer_engine = (
            self.engine
            if settings.is_sqlite
            else make_engine(
                settings.database_url,
                connect_timeout=timeout,
                connect_args={"prepare_threshold": None},
                **engine_kwargs,
            )
        )
        path = settings.database_url.split("///", 1)[-1] if settings.is_sqlite else ""
        self._sqlite_path = path if path and path != ":memory:" else ""
        self._last_checkpoint = time.monotonic()
        self._last_attempt = 0.0
        self._last_space_check = 0.0

    @contextmanager
    def _writer(self) -> Iterator[None]:
        lock = self._write_lock
        if lock is None:
            yield
            return
        with lock:
            yield

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Open a session, commit when the block ends without error, roll back otherwise."""
        with self._writer(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def writer(self) -> Iterator[Raw]:
        """A write transaction on a plain DBAPI connection, committed at the end: for the
        ingest hot path, which needs none of SQLAlchemy's bookkeeping (storage/rawsql.py)."""
        with self._writer():
            # SQLite: the one writer connection is kept between transactions (under the
            # write lock), which spares a pool check-out and check-in a batch. PostgreSQL:
            # one kept per concurrent writer (`_take_held`).
            if self.settings.is_sqlite:
                pooled, self._held = self._held or self.engine.raw_connection(), None
            else:
                pooled = self._take_held()
            raw: Raw | None = None
            try:
                dbapi = pooled.dbapi_connection
                if self.settings.is_sqlite:
                    raw = Raw(dbapi, postgres=False)
                    raw.execute("BEGIN IMMEDIATE", {})
                else:
                    wire = Wire(cast(Any, dbapi), timeout=self.settings.database_timeout)
                    raw = Raw(dbapi, postgres=True, wire=wire)  # it begins
                yield raw
                # The locks every writer contends for last, held only to the commit: the
                # practices' feed rows (in the order of their ids), then the audit chain's;
                # the counters' updates all sent ahead and pipelined, so the locks are held
                # for two round trips (the counters read, then the inserts and the commit),
                # however many practices the batch's events are for.
                with raw.pipelined():
                    ask_numbers(raw)
                    ask_head(raw)
                    number_deferred(raw)
                    flush_deferred(raw)
                    raw.commit()
            except BaseException:
                try:
                    if raw is not None:
                        raw.close()
                    pooled.rollback()
                except Exception:
                    pooled.invalidate()  # the connection itself failed: never reuse it
                pooled.close()
                raise
            if self.settings.is_sqlite:
                self._held = pooled
            else:
                with self._held_lock:
                    self._held_pg.append((pooled, time.monotonic()))

    def _take_held(self) -> PoolProxiedConnection:
        """A PostgreSQL writer connection: the most recently used one kept, if it was used
        in the last HELD_IDLE seconds; otherwise one from the pool, whose pre-ping replaces
        a connection that died while idle."""
        now = time.monotonic()
        fresh: PoolProxiedConnection | None = None
        stale: list[PoolProxiedConnection] = []
        with self._held_lock:
            while self._held_pg and fresh is None:
                pooled, used = self._held_pg.pop()
                if now - used < HELD_IDLE:
                    fresh = pooled
                else:
                    stale.append(pooled)
        for pooled in stale:
            pooled.close()  # back to the pool, which pings it when it is next checked out
        return fresh if fresh is not None else self._writer_engine.raw_connection()

    @contextmanager
    def reading(self, *, snapshot: bool = True) -> Iterator[Session]:
        """A session for reads only, rolled back at the end: it waits for no writer (on SQLite
        neither this process's write lock nor the database's), so polls run side by side.

        `snapshot=False` is for reads whose statements need not agree with each other (a feed
        page: the token check, then the page): on PostgreSQL they then run without a
        transaction around them. SQLite always reads one snapshot (it costs nothing there).
        """
        with (self._read_sessions if snapshot else self._statement_sessions)() as session:
            yield session

    def keep_wal(self, error: BaseException | None = None) -> None:
        """SQLite, after a write transaction (`error`: why it failed, if it did): checkpoint
        the WAL every CHECKPOINT_INTERVAL seconds, so that readers that kept the automatic
        checkpoints from finishing do not leave it to grow, and the next commits write over
        its file from the start. When a write failed for lack of space, or the WAL has
        outgrown the free space left on its volume, the checkpoint also truncates the file:
        a full volume lets nothing be written, not even the checkpoint."""
        if not self._sqlite_path:
            return
        now = time.monotonic()
        short_of_space = is_disk_full(error)
        if now - self._last_checkpoint < CHECKPOINT_INTERVAL:
            if now - self._last_attempt < CHECKPOINT_RETRY:
                return
            if not short_of_space:
                # The volume is looked at once a CHECKPOINT_RETRY at most: a stat of the WAL
                # and of the volume after every batch cost a message alone a twentieth of its
                # CPU (py-spy). A write that fails for space in between checkpoints at once.
                if now - self._last_space_check < CHECKPOINT_RETRY:
                    return
                self._last_space_check = now
                if not self._wal_outgrows_free_space():
                    return
                short_of_space = True
        self._last_attempt = now
        if self.checkpoint(truncate=short_of_space):
            self._last_checkpoint = now

    def _wal_outgrows_free_space(self) -> bool:
        try:
            wal = os.path.getsize(self._sqlite_path + "-wal")
            volume = os.statvfs(os.path.dirname(os.path.abspath(self._sqlite_path)))
        except OSError:
            return False
        return wal > volume.f_bavail * volume.f_frsize

    def low_on_space(self) -> str | None:
        """SQLite: why its volume is too full to take messages (less than LOW_SPACE left), or
        None. PostgreSQL's server says so itself, by failing."""
        if not self._sqlite_path:
            return None
        try:
            volume = os.statvfs(os.path.dirname(os.path.abspath(self._sqlite_path)))
        except OSError:
            return None
        free = volume.f_bavail * volume.f_frsize
        if free >= LOW_SPACE:
            return None
        return f"the database's volume has {free // 1024} KiB free"

    def checkpoint(self, *, truncate: bool = True) -> bool:
        """Copy the WAL into the database (SQLite) and start it again from the beginning of its
        file, cutting the file to nothing if `truncate`; False if it could not be done now (a
        reader still needs the WAL, or there is no room for the database to grow). On its own
        short-lived connection, so that it waits for nobody for long."""
        if not self._sqlite_path:
            return True
        mode = "TRUNCATE" if truncate else "RESTART"
        try:
            conn = sqlite3.connect(self._sqlite_path, timeout=0.2, isolation_level=None)
            try:
                busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            log.debug("WAL checkpoint failed: %s", exc)
            return False
        return bool(busy == 0)

    def release_writer(self) -> None:
        """Close SQLite's kept writer connection (the next transaction opens another): after a
        large message its page cache and its cached statements, whose bindings keep a copy
        of the last values bound, hold tens of MiB for nothing."""
        with self._writer():
            if self._held is not None:
                self._held.invalidate()  # closes the DBAPI connection, not only the checkout
                self._held = None

    def dispose(self) -> None:
        with self._writer():
            if self._held is not None:
                self._held.close()
                self._held = None
        with self._held_lock:
            held, self._held_pg = self._held_pg, []
        for pooled, _used in held:
            pooled.close()
        self.engine.dispose()
        self._writer_engine.dispose()
