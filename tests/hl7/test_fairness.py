"""Connection fairness (issue 10): slow or greedy clients never lock registered senders out."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from cli.wiring import SenderNetworks, in_networks
from flagging.bindings import set_bindings
from flagging.models import InboundMessage, MessageOutcome, Sender
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import samples

REGISTERED = "127.0.0.2"  # the registered sender's network, in these tests


def _connect_from(source: str, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(address)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), False if it is open."""
    sock.settimeout(0.0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(10)


def _refused(sock: socket.socket) -> bool:
    """The server closed this new connection at once, without a word."""
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def _trickling(socks: list[socket.socket], interval: float = 0.2) -> Iterator[None]:
    """Each socket sends one byte of a frame every `interval` seconds until the block ends
    (at most 300 rounds)."""
    stop = threading.Event()
    frame = b"\x0b" + samples.mdm(control_id="SLOW")

    def run() -> None:
        for i in range(300):
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(frame[i : i + 1])
            if stop.wait(interval):
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_sixty_four_trickling_connections_do_not_stop_a_registered_sender(
    handler: MessageHandler,
) -> None:
    server = MLLPListener(
        handler, port=0, max_connections=64, reserved_for=lambda address: address == REGISTERED
    ).start()
    tricklers: list[socket.socket] = []
    try:
        # 64 slow clients, each from an address of its own (so the per-address limit alone
        # would not stop them), connect first and trickle a byte every 0.2 s.
        tricklers = [_connect_from(f"127.0.0.{10 + i}", server.address) for i in range(64)]
        with _trickling(tricklers):
            with MLLPClient(*server.address, source_address=(REGISTERED, 0)) as client:
                acks = [
                    client.send(samples.mdm(control_id=f"R{i}", number=f"R{i}")) for i in range(3)
                ]
            latecomer = _connect_from("127.0.0.100", server.address)
            refused_latecomer = _refused(latecomer)
            latecomer.close()
            held = sum(not _closed_by_server(sock) for sock in tricklers)
    finally:
        for sock in tricklers:
            sock.close()
        server.stop()
    assert [b"MSA|AA|R%d" % i in ack for i, ack in enumerate(acks)] == [True] * 3
    # The tricklers really held every slot they could: the 48 not reserved.
    assert held == 48
    assert refused_latecomer


def test_connections_from_one_address_beyond_its_limit_are_refused_others_are_served(
    handler: MessageHandler,
) -> None:
    server = MLLPListener(handler, port=0, max_connections=10, max_connections_per_address=2)
    server.start()
    try:
        first = _connect_from("127.0.0.3", server.address)
        second = _connect_from("127.0.0.3", server.address)
        third = _connect_from("127.0.0.3", server.address)
        assert _refused(third)
        with MLLPClient(*server.address, source_address=("127.0.0.4", 0)) as other:
            assert b"MSA|AA|OTHER" in other.send(samples.mdm(control_id="OTHER"))
        first.close()
        assert _wait_for_accept(server, "127.0.0.3")
        for sock in (second, third):
            sock.close()
    finally:
        server.stop()


def _wait_for_accept(server: MLLPListener, source: str) -> bool:
    """A new connection from `source` is served once a slot of its own is free again (the
    listener notices a closed connection when its thread reads the end of it)."""
    for _ in range(100):
        with MLLPClient(*server.address, source_address=(source, 0)) as client:
            try:
                return b"MSA|AA|" in client.send(samples.mdm(control_id="AGAIN", number="AGAIN"))
            except OSError:  # refused: the old connection's slot is not free yet
                threading.Event().wait(0.05)
    return False


def test_a_frame_trickled_past_its_deadline_closes_the_connection_and_is_recorded(
    handler: MessageHandler, db: Database
) -> None:
    server = MLLPListener(handler, port=0, frame_deadline=0.5).start()
    try:
        sock = _connect_from("127.0.0.5", server.address)
        frame = b"\x0b" + samples.mdm(control_id="SLOW")
        closed_at = None
        for i in range(200):  # a byte every 50 ms: 10 s for 200 bytes, 20 times the deadline
            if _closed_by_server(sock):
                closed_at = i
                break
            try:
                sock.sendall(frame[i : i + 1])
            except OSError:
                closed_at = i
                break
            threading.Event().wait(0.05)
        sock.close()
    finally:
        server.stop()
    assert closed_at is not None  # closed while the sender was still trickling
    with db.transaction() as session:
        rows = session.scalars(select(InboundMessage)).all()
    assert [(row.outcome, row.raw) for row in rows] == [
        (MessageOutcome.TRUNCATED, frame[1 : rows[0].size + 1])
    ]


def test_line_feeds_between_frames_do_not_keep_an_idle_connection_open(
    handler: MessageHandler,
) -> None:
    server = MLLPListener(handler, port=0, idle_timeout=0.5).start()
    try:
        with MLLPClient(*server.address) as client:
            assert b"MSA|AA|" in client.send(samples.mdm(control_id="ONE"))
            closed = False
            for _ in range(200):  # 10 s of line feeds, 20 times the idle timeout
                try:
                    client.send_raw(b"\r\n")
                except OSError:
                    closed = True
                    break
                threading.Event().wait(0.05)
            if not closed:
                with pytest.raises((ConnectionError, OSError)):
                    client.receive()
                closed = True
    finally:
        server.stop()
    assert closed


@pytest.mark.parametrize(
    ("address", "reserved"),
    [
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("::ffff:10.1.0.9", True),
        ("2001:db8::5", True),
        ("2001:db9::5", False),
        ("not an address", False),
    ],
)
def test_reserved_networks_name_the_peers_that_may_use_reserved_slots(
    address: str, reserved: bool
) -> None:
    check = in_networks(("10.1.0.0/16", "2001:db8::/32"))
    assert check is not None
    assert check(address) is reserved


def test_without_reserved_networks_no_slot_is_reserved() -> None:
    assert in_networks(()) is None


def test_a_senders_bound_networks_use_the_reserved_slots_from_the_next_refresh(
    db: Database, sender_token: str
) -> None:
    reserved = SenderNetworks(db, ("192.0.2.0/24",), refresh=0)
    assert [reserved("192.0.2.7"), reserved("10.9.8.7")] == [True, False]
    with db.transaction() as session:
        sender_id = session.scalars(select(Sender.id)).one()
        set_bindings(session, sender_id, networks=["10.9.0.0/16"])
    assert [reserved("192.0.2.7"), reserved("10.9.8.7"), reserved("10.8.0.1")] == [
        True,
        True,
        False,
    ]
