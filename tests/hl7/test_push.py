"""MLLP push of a practice's feed to a receiver on a loopback port: in order, checked, retried."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from cli.scheduler import JOBS
from flagging import practice_settings
from flagging.models import Practice, Visibility
from flagging.push_job import push_due
from flagging.storage.engine import Database
from hl7 import er7
from hl7.handler import MessageHandler
from hl7.mllp import Frame, FrameDecoder, encode
from hl7.push import MLLPPush, PushRejected, PushSettings, check_ack
from tests import samples
from tests.gp_helpers import decide, document_id, now, send
from tests.pki import CertificateAuthority

Answer = Callable[[er7.Message], str | None]


def aa(message: er7.Message) -> str | None:
    return f"MSH|^~\\&|GP|GP|||20261124||ACK|A1|P|2.4\rMSA|AA|{message.msh.field(10)}\r"


class Receiver:
    """A GP system's MLLP endpoint: records each message and answers with `answer` (None
    closes the connection without answering)."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.answer: Answer = aa
        self.received: list[er7.Message] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            if self.context is not None:
                try:
                    conn = self.context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            with conn:
                self._converse(conn)

    def _converse(self, conn: socket.socket) -> None:
        decoder = FrameDecoder(1024 * 1024)
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            for frame in decoder.feed(data):
                assert isinstance(frame, Frame)
                message = er7.parse(frame.payload, "utf-8")
                self.received.append(message)
                answer = self.answer(message)
                if answer is None:
                    return
                conn.sendall(encode(answer.encode()))

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def pushing(db: Database, handler: MessageHandler, receiver: Receiver) -> Database:
    """Three events for the practice, which pushes to the receiver."""
    send(handler, samples.mdm(control_id="M1", number="D1"))
    send(handler, samples.mdm(control_id="M2", number="D2"))
    decide(db, document_id(db, "D1"), Visibility.WITHHELD)
    with db.transaction() as session:
        practice_settings.configure_practice(
            session, samples.PRACTICE, push_host="127.0.0.1", push_port=receiver.port
        )
    return db


def _practice(db: Database) -> Practice:
    with db.reading() as session:
        return session.scalars(select(Practice).where(Practice.ods_code == samples.PRACTICE)).one()


def _retry_now(db: Database) -> None:
    with db.transaction() as session:
        session.execute(update(Practice).values(push_retry_at=now() - timedelta(seconds=1)))


SETTINGS = MLLPPush(PushSettings(timeout=5))


def test_events_are_delivered_in_order_annotated_for_the_practice(
    pushing: Database, receiver: Receiver
) -> None:
    assert push_due(pushing, SETTINGS) == 3

    controls = [m.msh.field(10) for m in receiver.received]
    assert controls == [f"{samples.PRACTICE}-{n:013d}" for n in (1, 2, 3)]
    assert all(m.msh.field(6) == samples.PRACTICE for m in receiver.received)
    flags = [m.first("ZFL") for m in receiver.received]
    assert [f.field(2) if f else "" for f in flags] == ["P", "P", "W"]
    practice = _practice(pushing)
    assert (practice.push_seq, practice.push_failures, practice.push_retry_at) == (3, 0, None)
    assert push_due(pushing, SETTINGS) == 0  # nothing new: nothing sent again
    assert len(receiver.received) == 3


def test_commit_acknowledgement_ca_counts_as_delivered(
    pushing: Database, receiver: Receiver
) -> None:
    receiver.answer = lambda m: (aa(m) or "").replace("MSA|AA|", "MSA|CA|")
    assert push_due(pushing, SETTINGS) == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda m: (aa(m) or "").replace("MSA|AA|", "MSA|AE|"), "answered AE"),
        (lambda m: (aa(m) or "").replace("MSA|AA|", "MSA|AR|"), "answered AR"),
        (lambda m: "MSH|^~\\&|GP|GP|||20261124||ACK|A1|P|2.4\rMSA|AA|SOMETHING-ELSE\r", "MSA-2"),
        (lambda m: None, "closed the connection"),
    ],
)
def test_a_delivery_not_accepted_is_retried_later_and_nothing_after_it_is_sent(
    pushing: Database, receiver: Receiver, answer: Answer, error: str
) -> None:
    def second_fails(message: er7.Message) -> str | None:
        return answer(message) if message.msh.field(10).endswith("2") else aa(message)

    receiver.answer = second_fails
    assert push_due(pushing, SETTINGS) == 1
    practice = _practice(pushing)
    assert practice.push_seq == 1
    assert practice.push_failures == 1
    assert practice.push_error.startswith("event 2: ")
    assert error in practice.push_error
    assert practice.push_retry_at is not None
    assert practice.push_retry_at > now()
    assert [m.msh.field(10)[-1] for m in receiver.received] == ["1", "2"]

    assert push_due(pushing, SETTINGS) == 0  # before the retry time: not tried
    _retry_now(pushing)
    assert push_due(pushing, SETTINGS) == 0  # still failing: tried again, not skipped
    assert _practice(pushing).push_failures == 2
    assert [m.msh.field(10)[-1] for m in receiver.received] == ["1", "2", "2"]

    receiver.answer = aa
    _retry_now(pushing)
    assert push_due(pushing, SETTINGS) == 2
    assert [m.msh.field(10)[-1] for m in receiver.received] == ["1", "2", "2", "2", "3"]
    practice = _practice(pushing)
    assert (practice.push_seq, practice.push_failures, practice.push_error) == (3, 0, "")


def test_an_unreachable_endpoint_is_recorded_for_administrators(
    pushing: Database, receiver: Receiver
) -> None:
    with contextlib.closing(socket.create_server(("127.0.0.1", 0))) as probe:
        closed_port = probe.getsockname()[1]
    with pushing.transaction() as session:
        practice_settings.configure_practice(session, samples.PRACTICE, push_port=closed_port)
    assert push_due(pushing, SETTINGS) == 0
    practice = _practice(pushing)
    assert practice.push_seq == 0
    assert "cannot connect" in practice.push_error
    assert practice.push_failures == 1


def test_ack_check_reads_msa_and_err() -> None:
    ack = (
        b"MSH|^~\\&|GP|GP|||20261124||ACK|A1|P|2.5\r"
        b"MSA|AE|X1\r"
        b"ERR||PID^1^3|101^x^HL70357|E||||bad\r"
    )
    with pytest.raises(PushRejected, match="answered AE: bad"):
        check_ack(ack, "X1", "utf-8")
    assert check_ack(ack.replace(b"MSA|AE|", b"MSA|AA|"), "X1", "utf-8") == "AA"


def test_the_push_job_is_scheduled() -> None:
    assert "push" in [name for name, _, _ in JOBS]


def test_a_practice_that_requires_mutual_tls_receives_the_push_with_our_certificate(
    db: Database, handler: MessageHandler, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    ours = ca.issue("flagging-push", organisation="Flagging service")
    receiver = Receiver(ca.server_context(ca.issue("localhost")))
    try:
        send(handler, samples.mdm(control_id="M1", number="D1"))
        with db.transaction() as session:
            practice_settings.configure_practice(
                session,
                samples.PRACTICE,
                push_host="localhost",
                push_port=receiver.port,
                push_tls=True,
            )
        without_certificate = MLLPPush(PushSettings(timeout=5, ssl_context=ca.client_context()))
        assert push_due(db, without_certificate) == 0
        assert receiver.received == []
        assert _practice(db).push_failures == 1

        _retry_now(db)
        with_certificate = MLLPPush(PushSettings(timeout=5, ssl_context=ca.client_context(ours)))
        assert push_due(db, with_certificate) == 1
        assert [m.msh.field(10) for m in receiver.received] == [f"{samples.PRACTICE}-{1:013d}"]
        assert (_practice(db).push_seq, _practice(db).push_error) == (1, "")
    finally:
        receiver.close()
