"""The MLLP listener over loopback: persistent connections, framing, limits, TLS."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flagging.models import Document, InboundMessage
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from hl7.mllp import encode
from tests import samples


def _code(ack: bytes) -> str:
    return ack.split(b"MSA|", 1)[1][:2].decode()


def _count(db: Database, model: type) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_many_messages_on_one_connection_are_each_acknowledged_in_order(
    listener: MLLPListener, db: Database
) -> None:
    with MLLPClient(*listener.address) as client:
        acks = [client.send(samples.mdm(control_id=f"P{i}", number=f"D{i}")) for i in range(30)]
    assert [_code(a) for a in acks] == ["AA"] * 30
    assert [a.split(b"MSA|AA|", 1)[1].split(b"\r")[0] for a in acks] == [
        f"P{i}".encode() for i in range(30)
    ]
    assert _count(db, Document) == 30


def test_split_frames_and_several_frames_in_one_write_are_answered_once_each(
    listener: MLLPListener,
) -> None:
    first = encode(samples.mdm(control_id="S1", number="D1"))
    second = encode(samples.mdm(control_id="S2", number="D2"))
    third = encode(samples.mdm(control_id="S3", number="D3"))
    with MLLPClient(*listener.address) as client:
        client.send_raw(first[:10])
        client.send_raw(first[10:50])
        client.send_raw(first[50:] + second + b"\r\n  junk \n" + third)
        acks = [client.receive() for _ in range(3)]
    assert [_code(a) for a in acks] == ["AA", "AA", "AA"]
    assert [b"MSA|AA|S%d" % i in a for i, a in enumerate(acks, start=1)] == [True] * 3


def test_oversize_message_is_rejected_ar_and_the_connection_stays_in_step(
    listener: MLLPListener, db: Database
) -> None:
    huge = samples.mdm(control_id="BIG", lines=("y" * 400 * 1024,))
    with MLLPClient(*listener.address) as client:
        too_big = client.send(huge)
        after = client.send(samples.mdm(control_id="AFTER"))
    assert _code(too_big) == "AR"
    assert b"MSA|AR|BIG" in too_big
    assert b"over this service's limit" in too_big
    assert b"MSA|AA|AFTER" in after
    with db.transaction() as session:
        big = session.scalars(
            select(InboundMessage).where(InboundMessage.control_id == "BIG")
        ).one()
    assert big.size == len(huge)
    assert big.raw is not None
    assert len(big.raw) < len(huge)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "AR"),
        (b"hello, this is not HL7", "AR"),
        (b"MSH|^~", "AR"),
        (samples.mdm(charset="UNICODE UTF-8").replace(b"Discharged", b"Dis\xffcharged"), "AE"),
        (samples.mdm(control_id="Z1", charset="ASCII").replace(b"home", b"h\xe9me"), "AE"),
    ],
    ids=["empty", "plain-text", "truncated-msh", "invalid-utf8", "not-the-declared-charset"],
)
def test_bad_input_is_answered_and_recorded_and_the_connection_stays_usable(
    listener: MLLPListener, db: Database, payload: bytes, code: str
) -> None:
    with MLLPClient(*listener.address) as client:
        ack = client.send(payload)
        after = client.send(samples.mdm(control_id="NEXT"))
    assert _code(ack) == code
    assert b"ERR|" in ack
    assert _code(after) == "AA"
    assert _count(db, InboundMessage) == 2


def test_concurrent_connections_each_get_their_own_answers(
    listener: MLLPListener, db: Database
) -> None:
    errors: list[str] = []

    def send(worker: int) -> None:
        with MLLPClient(*listener.address) as client:
            for i in range(15):
                ack = client.send(samples.mdm(control_id=f"W{worker}-{i}", number=f"W{worker}-{i}"))
                if f"MSA|AA|W{worker}-{i}".encode() not in ack:
                    errors.append(ack.decode())

    threads = [threading.Thread(target=send, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(db, Document) == 90


def test_idle_connection_is_closed_after_the_timeout(handler: MessageHandler) -> None:
    server = MLLPListener(handler, port=0, idle_timeout=0.3).start()
    try:
        with socket.create_connection(server.address, timeout=5) as sock:
            assert sock.recv(10) == b""  # the server closed it
    finally:
        server.stop()


def test_connections_beyond_the_limit_are_refused(handler: MessageHandler) -> None:
    server = MLLPListener(handler, port=0, max_connections=1).start()
    try:
        with MLLPClient(*server.address) as first:
            assert _code(first.send(samples.mdm(control_id="L1"))) == "AA"
            with socket.create_connection(server.address, timeout=5) as second:
                assert second.recv(10) == b""
            assert _code(first.send(samples.mdm(control_id="L2", number="D2"))) == "AA"
    finally:
        server.stop()


def test_tls_connections_are_served_when_configured(
    handler: MessageHandler, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.check_hostname = False
    server = MLLPListener(handler, port=0, ssl_context=server_context).start()
    try:
        with MLLPClient("127.0.0.1", server.address[1], ssl_context=client_context) as client:
            assert _code(client.send(samples.mdm(control_id="T1"))) == "AA"
        with socket.create_connection(server.address, timeout=5) as plain:
            plain.sendall(encode(samples.mdm(control_id="T2")))
            try:
                answer = plain.recv(1000)
            except ConnectionResetError:
                answer = b""
            assert b"MSA" not in answer  # nothing is processed or answered in clear text
    finally:
        server.stop()


def test_msa2_over_mllp_is_the_msh10_bytes_as_sent_for_a_resend_too(
    listener: MLLPListener,
) -> None:
    message = samples.mdm(control_id="MDM^T02", number="ECHO-1")
    with MLLPClient(*listener.address) as client:
        first = client.send(message)
        resend = client.send(message)
    for ack in (first, resend):
        msa = next(s for s in ack.split(b"\r") if s.startswith(b"MSA|"))
        assert msa.split(b"|")[1:3] == [b"AA", b"MDM^T02"]
