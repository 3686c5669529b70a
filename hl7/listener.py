"""The MLLP listener: persistent connections, one thread each, one transaction per message.

Each connection reads in large chunks, decodes frames with `FrameDecoder`, and answers each
complete frame in order once its transaction has committed. Connections are bounded in number
(in all, and per source address), closed after an idle timeout or when a frame takes longer than
its deadline, and optionally wrapped in TLS (mutual TLS when the context requires client
certificates). Some slots are kept for registered senders' networks (`reserved_for`), so that
connections from elsewhere, however slow, never lock them out. Who is at the other end (address,
client certificate) is read once when a connection opens and handed with each frame to the
handler, which checks that the sender MSH-4 names is bound to it (flagging/bindings.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Protocol

from flagging import memory
from flagging.bindings import Peer
from flagging.received import Problem
from hl7.ack import build_ack
from hl7.handler import Reply
from hl7.mllp import Frame, FrameDecoder, OversizeFrame, TruncatedFrame, encode

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
_BETWEEN_FRAMES = b" \t\r\n"
_GENERIC_PROBLEM = Problem(code="207", text="the message could not be processed; resend it later")


class Handler(Protocol):
    def handle(
        self, raw: bytes, *, transport: str, peer: str = "", connection: Peer | None = None
    ) -> Reply: ...

    def handle_oversize(
        self, head: bytes, size: int, *, transport: str, peer: str = ""
    ) -> Reply: ...

    def record_truncated(
        self, head: bytes, size: int, *, transport: str, peer: str = ""
    ) -> None: ...


class _Slots:
    """Who holds the listener's connections: in all, from elsewhere than the reserved
    networks, and per source address."""

    def __init__(self, total: int, per_address: int, reserved: int) -> None:
        self.total, self.per_address, self.reserved = total, per_address, reserved
        self._lock = threading.Lock()
        self._open = 0
        self._unreserved = 0
        self._by_address: dict[str, int] = {}

    def take(self, address: str, reserved: bool) -> str:
        """Take a slot; returns "" or why none was given."""
        with self._lock:
            if self._open >= self.total:
                return f"{self.total} connections open"
            if not reserved:
                if self._unreserved >= self.total - self.reserved:
                    return f"the {self.total - self.reserved} unreserved connections are open"
                if self._by_address.get(address, 0) >= self.per_address:
                    return f"{self.per_address} connections open from that address"
                self._unreserved += 1
            self._open += 1
            self._by_address[address] = self._by_address.get(address, 0) + 1
            return ""

    def give_back(self, address: str, reserved: bool) -> None:
        with self._lock:
            self._open -= 1
            if not reserved:
                self._unreserved -= 1
            left = self._by_address[address] - 1
            if left:
                self._by_address[address] = left
            else:
                del self._by_address[address]


class MLLPListener:
    """Accepts MLLP connections on `host:port` (port 0 picks a free one) until `stop()`."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 2575,
        max_connections: int = 64,
        idle_timeout: float = 300.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
        frame_deadline: float = 60.0,
        max_connections_per_address: int | None = None,
        reserved_connections: int = 16,
        reserved_for: Callable[[str], bool] | None = None,
    ) -> None:
        """`reserved_for(address)` says whether a peer address belongs to a registered sender
        (its networks): only those may use the last `reserved_connections` slots, and they
        are not held to `max_connections_per_address` (default: a quarter of the slots, at
        least one). Without it, no slot is reserved."""
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.frame_deadline = frame_deadline
        self.max_message_bytes = max_message_bytes
        self.ssl_context = ssl_context
        self.reserved_for = reserved_for
        per_address = max_connections_per_address or max(1, max_connections // 4)
        reserved = min(reserved_connections, max_connections - 1) if reserved_for else 0
        self._slots = _Slots(max_connections, per_address, reserved)
        self.truncated_frames = 0  # frames cut short, recorded (a counter for operators)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._socket = socket.create_server((host, port), backlog=128)
        self._accept_thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> MLLPListener:
        """Accept connections on a background thread."""
        self._accept_thread = threading.Thread(
            target=self.serve_forever, name="mllp-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def serve_forever(self) -> None:
        log.info("MLLP listener on %s:%s", *self.address)
        self._socket.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                conn, addr = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            reserved = self._is_reserved(addr[0])
            refusal = self._slots.take(addr[0], reserved)
            if refusal:
                log.warning("MLLP connection from %s refused: %s", addr[0], refusal)
                conn.close()
                continue
            thread = threading.Thread(
                target=self._serve_connection,
                args=(conn, addr, reserved),
                name="mllp-conn",
                daemon=True,
            )
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let each connection finish the message in hand, close them all."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() at once
        self._socket.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
        for thread in threads:
            thread.join(timeout)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)

    def _is_reserved(self, address: str) -> bool:
        if self.reserved_for is None:
            return False
        try:
            return self.reserved_for(address)
        except Exception as exc:  # a broken lookup must not stop the accept loop
            log.error("MLLP reserved-slot check failed: %s", type(exc).__name__)
            return False

    def _serve_connection(
        self, conn: socket.socket, addr: tuple[str, int], reserved: bool = False
    ) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        decoder = FrameDecoder(self.max_message_bytes)
        try:
            conn.settimeout(min(self.idle_timeout, self.frame_deadline))
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            with self._lock:
                self._connections.add(conn)
            self._converse(conn, peer, decoder, _identify(conn, addr))
        except (ssl.SSLError, OSError) as exc:
            log.info("MLLP connection %s ended: %s", peer, type(exc).__name__)
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()
            self._slots.give_back(addr[0], reserved)
            pending = decoder.pending()
            if pending is not None and pending.size:
                self._truncated(pending, peer)
            # Last: `stop()` waits for the threads in this set, so a frame the connection left
            # unfinished is recorded before the listener counts as stopped.
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _converse(
        self, conn: socket.socket, peer: str, decoder: FrameDecoder, identity: Peer
    ) -> None:
        # Idle is counted from the last byte that was not whitespace between frames, so a
        # trickle of line feeds does not keep a slot; `due` is when the bytes in hand must
        # have become a whole frame (None: nothing in hand), so a trickle of anything else
        # does not either.
        active = time.monotonic()
        due: float | None = None
        while True:
            now = time.monotonic()
            if due is not None and now >= due:
                log.info(
                    "MLLP connection %s closed: no whole frame within %ss",
                    peer,
                    self.frame_deadline,
                )
                return
            if now >= active + self.idle_timeout:
                log.info("MLLP connection %s idle for %ss, closed", peer, self.idle_timeout)
                return
            conn.settimeout(min(active + self.idle_timeout, due or float("inf")) - now)
            try:
                data = conn.recv(READ_SIZE)
            except TimeoutError:
                continue  # the checks above say which limit it was
            if not data:
                return
            in_frame = decoder.in_frame
            events = decoder.feed(data)
            if in_frame or events or decoder.in_frame or data.strip(_BETWEEN_FRAMES):
                active = time.monotonic()
                if due is None:
                    due = active + self.frame_deadline
            del data
            if not events:
                continue
            answered, largest = self._deliver(conn, events, peer, identity)  # it empties `events`
            if not decoder.in_frame:
                due = None
            elif answered:  # the next frame has a deadline of its own (not a truncated one:
                due = time.monotonic() + self.frame_deadline  # that would restart the clock)
            memory.after(largest)  # a large message's buffers go back to the system

    def _deliver(
        self,
        conn: socket.socket,
        events: list[Frame | OversizeFrame | TruncatedFrame],
        peer: str,
        identity: Peer,
    ) -> tuple[bool, int]:
        """Answer (or record) each event in order, letting go of each once done with it.
        Returns whether a frame was answered, and the largest size seen."""
        answered, largest = False, 0
        while events:
            event = events.pop(0)
            if isinstance(event, TruncatedFrame):
                self._truncated(event, peer)
                largest = max(largest, event.size)
                continue
            size = event.size if isinstance(event, OversizeFrame) else len(event.payload)
            largest = max(largest, size)
            ack = encode(self._answer(event, peer, identity))
            del event
            conn.settimeout(self.idle_timeout)  # a reader as slow as an idle one is let go
            conn.sendall(ack)
            answered = True
        return answered, largest

    def _answer(self, event: Frame | OversizeFrame, peer: str, identity: Peer) -> bytes:
        """The ACK for a frame; the last line of defence answers AR rather than drop it."""
        data = event.payload if isinstance(event, Frame) else event.head
        try:
            if isinstance(event, Frame):
                return self.handler.handle(
                    data, transport="mllp", peer=peer, connection=identity
                ).ack
            return self.handler.handle_oversize(data, event.size, transport="mllp", peer=peer).ack
        except Exception as exc:
            log.error(
                "MLLP frame sha256:%s from %s not handled: %s",
                hashlib.sha256(data).hexdigest()[:16],
                peer,
                type(exc).__name__,
            )
            return build_ack(None, "AR", problem=_GENERIC_PROBLEM).encode("latin-1")

    def _truncated(self, event: TruncatedFrame, peer: str) -> None:
        self.truncated_frames += 1
        try:
            self.handler.record_truncated(event.head, event.size, transport="mllp", peer=peer)
        except Exception as exc:
            log.error("truncated frame from %s not recorded: %s", peer, type(exc).__name__)


def _identify(conn: socket.socket, addr: tuple[str, int]) -> Peer:
    """The connection's address and, when the handshake verified one, its client certificate."""
    if not isinstance(conn, ssl.SSLSocket):
        return Peer.of(addr[0])
    der = conn.getpeercert(binary_form=True)
    # getpeercert() describes only a certificate the handshake verified against the CA.
    subject = (conn.getpeercert() or {}).get("subject", ()) if der else ()
    return Peer.of(addr[0], der, subject)  # type: ignore[arg-type]
