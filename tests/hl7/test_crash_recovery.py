"""The listener killed with SIGKILL mid-stream loses nothing it acknowledged."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config import Settings
from flagging.models import Document, InboundMessage
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from tests import samples

TOTAL = 150


@contextmanager
def _listener_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    env = {
        **os.environ,
        "FLAGGING_ENV": "test",
        "FLAGGING_DATABASE_URL": settings.database_url,
        "FLAGGING_INSTANCE_PATH": str(settings.instance_path),
        "FLAGGING_SECRET_KEY": "test-secret",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "mllp", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        port = 0
        while not port and time.monotonic() < deadline:
            line = process.stderr.readline().decode()
            match = re.search(r"MLLP on [\d.]+:(\d+)", line)
            if match:
                port = int(match.group(1))
            elif not line and process.poll() is not None:
                break
        assert port, "the listener did not start"
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited


def _message(i: int) -> bytes:
    return samples.mdm(control_id=f"K{i}", number=f"KDOC-{i}")


@pytest.mark.slow
def test_acknowledged_messages_survive_sigkill_and_resends_store_each_document_once(
    db: Database, settings: Settings, sender_token: str
) -> None:
    acknowledged: list[int] = []
    with _listener_process(settings) as (process, port):

        def send_all() -> None:
            try:
                with MLLPClient("127.0.0.1", port, timeout=10) as client:
                    for i in range(TOTAL):
                        if b"MSA|AA|" in client.send(_message(i)):
                            acknowledged.append(i)
            except OSError:
                pass  # the server died under us: the point of the test

        sender = threading.Thread(target=send_all)
        sender.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < TOTAL // 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        # On SQLite, the writer process (and multiprocessing's resource tracker).
        children = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        sender.join(30)
    assert TOTAL // 3 <= len(acknowledged) < TOTAL, "the kill did not land mid-stream"
    assert bool(children) == settings.is_sqlite
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children):  # each sees its input end and exits
        assert time.monotonic() < deadline, "a child process outlived its listener"
        time.sleep(0.05)

    with _listener_process(settings) as (_, port):
        with db.transaction() as session:
            stored = set(
                session.scalars(
                    select(InboundMessage.control_id).where(InboundMessage.outcome == "accepted")
                )
            )
        assert {f"K{i}" for i in acknowledged} <= stored

        # The sender resends every message it has no AA for.
        with MLLPClient("127.0.0.1", port) as client:
            for i in sorted(set(range(TOTAL)) - set(acknowledged)):
                assert b"MSA|AA|" in client.send(_message(i))

    with db.transaction() as session:
        numbers = list(session.scalars(select(Document.document_number)))
        assert session.scalar(select(func.count()).select_from(Document)) == TOTAL
    assert sorted(numbers) == sorted(f"KDOC-{i}" for i in range(TOTAL))
