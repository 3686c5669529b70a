"""The writer process: units run there, one failing unit fails alone, a dead writer is replaced.

Units are module-level classes so the writer process can unpickle them (it imports this
module by name).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from config import Settings
from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw
from flagging.storage.writer import WriterGone, WriterProcess


@dataclass(frozen=True)
class Add:
    code: str

    def __call__(self, raw: Raw) -> int:
        raw.execute("INSERT INTO writer_test_units (code) VALUES (:code)", {"code": self.code})
        return os.getpid()


class Refuse:
    def __call__(self, raw: Raw) -> None:
        Add("HALF")(raw)  # rolled back with its unit
        raise ValueError("refused")


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__(threading.Lock())  # a lock cannot be pickled


class RaiseUnpicklable:
    def __call__(self, raw: Raw) -> None:
        raise Unpicklable()


@dataclass(frozen=True)
class Sleep:
    seconds: float

    def __call__(self, raw: Raw) -> None:
        time.sleep(self.seconds)


@pytest.fixture
def writer(settings: Settings, db: Database) -> Iterator[WriterProcess[object]]:
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS writer_test_units")
        conn.exec_driver_sql("CREATE TABLE writer_test_units (code VARCHAR(20) PRIMARY KEY)")
    process: WriterProcess[object] = WriterProcess(settings)
    yield process
    process.close()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE writer_test_units")


def _codes(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return sorted(row[0] for row in conn.exec_driver_sql("SELECT code FROM writer_test_units"))


def test_units_run_in_another_process_and_are_committed_when_run_returns(
    writer: WriterProcess[object], db: Database
) -> None:
    assert writer.run(Add("A81001")) != os.getpid()
    assert _codes(db) == ["A81001"]  # read from this process: committed


def test_a_failing_unit_fails_alone_with_its_own_error(
    writer: WriterProcess[object], db: Database, capfd: pytest.CaptureFixture[str]
) -> None:
    results: dict[str, object] = {}

    def run(name: str, unit: object) -> None:
        try:
            results[name] = writer.run(unit)  # type: ignore[arg-type]
        except Exception as exc:
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=(name, unit))
        for name, unit in (
            ("first", Add("A81001")),
            ("refused", Refuse()),
            ("unpicklable", RaiseUnpicklable()),
            ("last", Add("A81002")),
        )
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert isinstance(results["refused"], ValueError)
    assert str(results["refused"]) == "refused"
    assert isinstance(results["unpicklable"], WriterGone)
    assert "Unpicklable" in str(results["unpicklable"])
    assert _codes(db) == ["A81001", "A81002"]
    # The writer logs what only it saw: where the unit failed.
    logged = capfd.readouterr().err
    assert "a unit failed in the writer process" in logged
    assert 'raise ValueError("refused")' in logged


def test_a_killed_writer_fails_the_units_it_held_and_the_next_unit_starts_another(
    writer: WriterProcess[object], db: Database
) -> None:
    first_pid = writer.run(Add("A81001"))
    assert isinstance(first_pid, int)
    failure: list[BaseException] = []

    def run_sleeper() -> None:
        try:
            writer.run(Sleep(30))
        except BaseException as exc:
            failure.append(exc)

    sleeper = threading.Thread(target=run_sleeper)
    sleeper.start()
    time.sleep(0.5)  # the writer is inside the sleeping unit
    os.kill(first_pid, signal.SIGKILL)
    sleeper.join(30)
    assert not sleeper.is_alive()
    assert len(failure) == 1
    assert isinstance(failure[0], WriterGone)

    deadline = time.monotonic() + 10
    while True:  # until this side has seen the process end
        try:
            second_pid = writer.run(Add("A81002"))
            break
        except WriterGone:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert second_pid not in (first_pid, os.getpid())
    assert _codes(db) == ["A81001", "A81002"]
