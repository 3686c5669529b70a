"""SQLite's WAL is written over, not grown: a file that grows makes every commit's fdatasync
commit the file system's journal too. It is truncated only when the volume is short of space.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from flagging import organisations
from flagging.receiver import Receiver
from flagging.storage import engine
from flagging.storage.engine import WAL_CHECKPOINT_PAGES, WAL_SIZE_LIMIT, Database
from flagging.storage.migrate import upgrade
from hl7.handler import MessageHandler
from tests import samples

FRAME = 4096 + 24  # a 4 KiB page and its frame header


@pytest.fixture
def own_sqlite(tmp_path: Path, settings: Settings) -> Iterator[tuple[Database, Path]]:
    """A SQLite database of this test's own (the WAL is SQLite's), with a sender and practice."""
    path = tmp_path / "wal.sqlite3"
    db = Database(dataclasses.replace(settings, database_url=f"sqlite:///{path}"))
    upgrade(db.engine)
    with db.transaction() as session:
        organisations.add_sender(session, samples.SENDER, "Test Hospitals NHS Trust")
        organisations.add_practice(session, samples.PRACTICE, "The Surgery")
    try:
        yield db, Path(f"{path}-wal")
    finally:
        db.dispose()


def _send(db: Database, settings: Settings, first: int, count: int) -> None:
    handler = MessageHandler(Receiver(db, settings))
    try:
        for i in range(first, first + count):
            message = samples.mdm(control_id=f"WAL{i}", number=f"WAL-{i}", lines=("x" * 900,))
            assert handler.handle(message, transport="mllp").code == "AA"
    finally:
        handler.close()


def _frames_in_use(wal: Path) -> int:
    """The frames of the WAL's current generation (a passive checkpoint reports them)."""
    with sqlite3.connect(str(wal)[: -len("-wal")]) as conn:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def test_the_wal_is_written_over_from_its_start_after_the_automatic_checkpoint(
    own_sqlite: tuple[Database, Path], settings: Settings
) -> None:
    db, wal = own_sqlite
    sizes = []
    for first in range(0, 600, 50):
        _send(db, settings, first, 50)
        sizes.append(wal.stat().st_size)
        if sizes[-1] > WAL_CHECKPOINT_PAGES * FRAME:
            break
    else:
        pytest.fail(f"600 messages did not fill {WAL_CHECKPOINT_PAGES} pages of WAL: {sizes}")
    largest = sizes[-1]
    assert largest <= WAL_SIZE_LIMIT  # never cut back, so never grown again
    _send(db, settings, 1000, 20)
    # Past the automatic checkpoint the pages went to the start of the same file.
    assert wal.stat().st_size == largest
    assert _frames_in_use(wal) * FRAME < largest / 2


def test_the_periodic_checkpoint_keeps_the_file_and_the_next_commit_writes_over_it(
    own_sqlite: tuple[Database, Path], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, wal = own_sqlite
    _send(db, settings, 0, 30)
    size, frames = wal.stat().st_size, _frames_in_use(wal)
    assert frames > 30
    monkeypatch.setattr(engine, "CHECKPOINT_INTERVAL", 0.0)
    db.keep_wal()
    assert wal.stat().st_size == size
    _send(db, settings, 100, 1)
    assert wal.stat().st_size == size
    assert 0 < _frames_in_use(wal) < frames


def test_a_write_that_failed_for_space_truncates_the_wal(
    own_sqlite: tuple[Database, Path], settings: Settings
) -> None:
    db, wal = own_sqlite
    _send(db, settings, 0, 30)
    assert wal.stat().st_size > 0
    db.keep_wal(sqlite3.OperationalError("database or disk is full"))
    assert wal.stat().st_size == 0
