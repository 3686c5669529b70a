"""Every frame answered, whatever arrives (issue 10): inputs that once cost the connection."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from flagging.models import Document, InboundMessage, MessageOutcome
from flagging.storage.engine import Database
from hl7 import handler as handler_module
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from hl7.mllp import encode
from hl7.parsing import parse_datetime
from tests import hostile, samples


def _code(ack: bytes) -> str:
    return ack.split(b"MSA|", 1)[1][:2].decode()


def _messages(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_a_bare_msh_line_is_answered_ar_and_the_frame_behind_it_in_the_same_write_aa(
    listener: MLLPListener, db: Database
) -> None:
    with MLLPClient(*listener.address) as client:
        # printf '\x0bMSH\rPID|1\r\x1c\r' | nc HOST PORT, and a valid frame in the same write
        client.send_raw(b"\x0bMSH\rPID|1\r\x1c\r" + encode(samples.mdm(control_id="BEHIND")))
        first, second = client.receive(), client.receive()
    assert _code(first) == "AR"
    assert b"ERR|" in first
    assert b"MSA|AA|BEHIND" in second
    rows = _messages(db)
    assert [row.outcome for row in rows] == [MessageOutcome.REJECTED, MessageOutcome.ACCEPTED]
    assert rows[0].raw == hostile.BARE_MSH


@pytest.mark.parametrize(
    ("payload", "code", "outcome"),
    [
        (hostile.OFFSET_2500, "AA", MessageOutcome.ACCEPTED),
        (hostile.BYTE_85_IN_MSH_9, "AR", MessageOutcome.REJECTED),
        (hostile.NUL_IN_MSH_4, "AR", MessageOutcome.REJECTED),
        (hostile.ESCAPED_NUL_IN_TITLE, "AA", MessageOutcome.ACCEPTED),
    ],
    ids=["ts-offset-2500", "byte-85-in-msh-9", "nul-in-msh-4", "escaped-nul-in-a-title"],
)
def test_inputs_that_once_broke_parsing_are_answered_and_recorded(
    listener: MLLPListener,
    db: Database,
    payload: bytes,
    code: str,
    outcome: MessageOutcome,
) -> None:
    with MLLPClient(*listener.address) as client:
        ack = client.send(payload)
        after = client.send(samples.mdm(control_id="NEXT", number="NEXT-1"))
    assert _code(ack) == code
    assert b"MSA|AA|NEXT" in after
    assert [row.outcome for row in _messages(db)] == [outcome, MessageOutcome.ACCEPTED]


def test_a_time_zone_offset_of_25_hours_reads_as_no_time() -> None:
    assert parse_datetime("20261124092500+2500") is None
    assert parse_datetime("20261124092500-2400") is None
    assert parse_datetime("20261124092500+2359") is not None


def test_byte_85_in_msh_9_is_rejected_as_an_unknown_event_not_read_as_t02(
    handler: MessageHandler,
) -> None:
    reply = handler.handle(hostile.BYTE_85_IN_MSH_9, transport="mllp")

    assert reply.code == "AR"
    assert b"ERR|" in reply.ack
    assert b"201" in reply.ack  # table 0357: unsupported event code


def test_control_ids_longer_than_the_column_are_resent_and_told_apart_at_any_length(
    handler: MessageHandler, db: Database
) -> None:
    first_id, other_id = hostile.long_control_id("A"), hostile.long_control_id("B")
    first = samples.mdm(control_id=first_id, number="LONG-1")
    other = samples.mdm(control_id=other_id, number="LONG-2")

    replies = [
        handler.handle(first, transport="mllp"),
        handler.handle(first, transport="mllp"),  # the resend
        handler.handle(other, transport="mllp"),  # shares the first 199 characters
        handler.handle(other, transport="mllp"),
    ]

    assert [r.code for r in replies] == ["AA", "AA", "AA", "AA"]
    assert f"MSA|AA|{first_id}".encode() in replies[1].ack
    assert f"MSA|AA|{other_id}".encode() in replies[2].ack
    assert [row.outcome for row in _messages(db)] == [
        MessageOutcome.ACCEPTED,
        MessageOutcome.DUPLICATE,
        MessageOutcome.ACCEPTED,
        MessageOutcome.DUPLICATE,
    ]
    with db.transaction() as session:
        assert len(session.scalars(select(Document)).all()) == 2


def test_a_long_control_id_reused_for_other_content_is_still_ae_205(
    handler: MessageHandler,
) -> None:
    control_id = hostile.long_control_id()
    handler.handle(samples.mdm(control_id=control_id, number="L-1"), transport="mllp")

    reply = handler.handle(samples.mdm(control_id=control_id, number="L-2"), transport="mllp")

    assert reply.code == "AE"
    assert b"205" in reply.ack


def test_a_document_number_longer_than_the_column_keeps_its_thread(
    handler: MessageHandler, db: Database
) -> None:
    number = "N" * 300
    assert handler.handle(samples.mdm(control_id="V1", number=number), transport="mllp").code == (
        "AA"
    )
    addendum = samples.mdm("T06", control_id="V2", number=number + "-ADD", parent=number)
    assert handler.handle(addendum, transport="mllp").code == "AA"
    with db.transaction() as session:
        documents = session.scalars(select(Document)).all()
    assert [d.latest_version for d in documents] == [2]
    assert all(len(d.document_number) <= 199 for d in documents)


def test_an_unforeseen_failure_is_answered_ar_207_recorded_and_logged_by_hash_only(
    handler: MessageHandler,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(raw: bytes, settings: object) -> None:
        raise RuntimeError(raw.decode())  # an error whose text would leak the message

    monkeypatch.setattr(handler_module, "read", broken)
    message = samples.mdm(control_id="BROKEN")

    with caplog.at_level(logging.INFO):
        reply = handler.handle(message, transport="mllp")

    assert reply.code == "AR"
    assert b"MSA|AR|BROKEN" in reply.ack
    assert b"207" in reply.ack
    rows = _messages(db)
    assert [(row.outcome, row.raw) for row in rows] == [(MessageOutcome.REJECTED, message)]
    assert "sha256:" in caplog.text
    assert "TESTPATIENT" not in caplog.text
    assert samples.NHS_NUMBERS[0] not in caplog.text


class _Exploding:
    """A handler that fails on every frame: what the listener's last line of defence is for."""

    def handle(self, raw: bytes, *, transport: str, peer: str = "") -> handler_module.Reply:
        raise RuntimeError("boom")

    def handle_oversize(
        self, head: bytes, size: int, *, transport: str, peer: str = ""
    ) -> handler_module.Reply:
        raise RuntimeError("boom")

    def record_truncated(self, head: bytes, size: int, *, transport: str, peer: str = "") -> None:
        raise RuntimeError("boom")


def test_the_listener_answers_ar_207_when_its_handler_fails_and_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MLLPListener(_Exploding(), port=0).start()
    try:
        with caplog.at_level(logging.INFO), MLLPClient(*server.address) as client:
            acks = [client.send(samples.mdm(control_id=f"X{i}")) for i in range(3)]
    finally:
        server.stop()
    assert [_code(a) for a in acks] == ["AR"] * 3
    assert all(b"207" in a for a in acks)
    assert "sha256:" in caplog.text
    assert "TESTPATIENT" not in caplog.text


def test_a_frame_cut_short_by_a_new_start_block_is_recorded_and_counted(
    listener: MLLPListener, db: Database
) -> None:
    cut = samples.mdm(control_id="CUT")[:120]
    with MLLPClient(*listener.address) as client:
        client.send_raw(b"\x0b" + cut)
        ack = client.send(samples.mdm(control_id="WHOLE"))
    assert b"MSA|AA|WHOLE" in ack
    rows = _messages(db)
    assert listener.truncated_frames == 1
    truncated = [row for row in rows if row.outcome == MessageOutcome.TRUNCATED]
    assert [(row.raw, row.size, row.control_id, row.ack) for row in truncated] == [
        (cut, len(cut), "CUT", None)
    ]
