"""Memory after large messages (issue 10): the processes give back what a message needed."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

from config import Settings
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import samples

MIB = 1024 * 1024


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) / 1024


def _settles_below(pid: int, limit: float, seconds: float = 10.0) -> float:
    """The process's RSS once it is below `limit`, or after `seconds` of waiting for it (the
    writer trims after it has answered, so the answer can arrive first)."""
    deadline = time.monotonic() + seconds
    while (rss := _rss_mib(pid)) >= limit and time.monotonic() < deadline:
        time.sleep(0.05)
    return rss


def test_large_messages_do_not_leave_the_listener_and_writer_holding_their_peak(
    db: Database, settings: Settings, sender_token: str
) -> None:
    roomy = dataclasses.replace(settings, max_message_bytes=16 * MIB)
    handler = MessageHandler(Receiver(db, roomy, writer_process=True))
    listener = MLLPListener(handler, port=0, max_message_bytes=16 * MIB).start()
    try:
        with MLLPClient(*listener.address) as client:
            assert b"MSA|AA|WARM" in client.send(samples.mdm(control_id="WARM"))
            writer = handler.receiver._group.pid  # type: ignore[union-attr]
            assert writer is not None
            before = _rss_mib(writer), _rss_mib(os.getpid())
            for i in range(4):
                pdf = samples.obx_pdf(os.urandom(11 * MIB))  # about 15 MiB as base64
                message = samples.oru(control_id=f"BIG{i}", number=f"BIG-{i}", observations=pdf)
                assert len(message) > 14 * MIB
                assert f"MSA|AA|BIG{i}".encode() in client.send(message)
                del pdf, message
        writer_after = _settles_below(writer, before[0] + 16)
        listener_after = _settles_below(os.getpid(), before[1] + 16)
    finally:
        listener.stop()
        handler.close()
    # Before the fix the writer process kept 302 MB after four such messages.
    assert writer_after < before[0] + 16
    assert listener_after < before[1] + 16
