"""A full disk under SQLite (issue 10): AR while full, AA again once space returns, no restart.

The database lives on a small tmpfs volume the test mounts (we need to be root for that; the
test is skipped, saying why, where the machine does not allow it). A file fills the volume,
messages are answered AR and readiness is false; the file is removed, and the same service
answers AA again, resends of what it refused included.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.wiring import Services, web_app
from config import Settings
from flagging import organisations
from flagging import receiver as receiver_module
from flagging.models import InboundMessage, MessageOutcome
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.storage.migrate import upgrade
from hl7.handler import MessageHandler
from tests import samples

VOLUME = "8m"


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "volume"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={VOLUME}", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs volume here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs volume here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _free(path: Path) -> int:
    volume = os.statvfs(path)
    return volume.f_bavail * volume.f_frsize


def _message(i: int) -> bytes:
    return samples.mdm(control_id=f"FULL{i}", number=f"FULL-{i}", lines=("x" * 30_000,))


@pytest.mark.parametrize("filled_by", ["a file", "the database"])
def test_a_full_volume_is_answered_ar_and_aa_comes_back_once_space_is_freed_without_a_restart(
    filled_by: str,
    small_volume: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    own = dataclasses.replace(settings, database_url=f"sqlite:///{small_volume / 'db.sqlite3'}")
    db = Database(own)
    upgrade(db.engine)
    with db.transaction() as session:
        organisations.add_sender(session, samples.SENDER, "Test Hospitals NHS Trust")
        organisations.add_practice(session, samples.PRACTICE, "The Surgery")
    # As `flagging serve` on SQLite:
    handler = MessageHandler(Receiver(db, own, writer_process=True))
    client = web_app(Services(own, db, handler)).test_client()
    try:
        assert handler.handle(_message(0), transport="mllp").code == "AA"
        assert client.get("/readyz").status_code == 200

        filler = small_volume / "filler"
        if filled_by == "a file":
            filler.write_bytes(b"\0" * (_free(small_volume) - 256 * 1024))
        else:  # the database fills the rest itself; the file is what the operator frees
            filler.write_bytes(b"\0" * 2 * 1024 * 1024)
        codes: dict[int, str] = {}
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="hl7.handler"):
            for i in range(1, 400):
                codes[i] = handler.handle(_message(i), transport="mllp").code
                if list(codes.values())[-5:] == ["AR"] * 5:
                    break
            full_for = time.monotonic() - started
            refused = [i for i, code in codes.items() if code == "AR"]
            assert len(refused) >= 5  # the disk did fill
            assert set(codes.values()) <= {"AA", "AR"}
            readiness_while_full = client.get("/readyz")
            filler.unlink()
            # No message since: readiness finds out with a probe write of its own.
            monkeypatch.setattr(receiver_module, "PROBE_AFTER", 0.0)
            readiness_freed = client.get("/readyz")
            again = {i: handler.handle(_message(i), transport="mllp").code for i in refused}
            more = handler.handle(_message(500), transport="mllp").code
        readiness_after = client.get("/readyz")
    finally:
        handler.close()
    assert readiness_while_full.status_code == 503
    assert "cannot be stored" in readiness_while_full.get_data(as_text=True)
    assert readiness_freed.status_code == 200
    assert set(again.values()) == {"AA"}  # the resends of what was refused, no restart
    assert more == "AA"
    assert readiness_after.status_code == 200
    # Every AA is a stored message; what was refused is stored once, now.
    with db.transaction() as session:
        accepted = session.scalars(
            select(InboundMessage.control_id).where(
                InboundMessage.outcome == MessageOutcome.ACCEPTED
            )
        ).all()
    db.dispose()
    answered_aa = {f"FULL{i}" for i, code in codes.items() if code == "AA"}
    assert answered_aa | {f"FULL{i}" for i in refused} | {"FULL0", "FULL500"} == set(accepted)
    assert len(accepted) == len(set(accepted))
    # One line a second at most for the same failure: not two per message.
    seconds = int(full_for) + 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 2 * seconds
    writer_errors = capfd.readouterr().err.count("a unit failed in the writer process")
    assert writer_errors <= seconds
