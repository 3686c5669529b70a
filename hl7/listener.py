"""The MLLP listener: persistent connections, one thread each, one transaction per message.

Each connection reads in large chunks, decodes frames with `FrameDecoder`, and answers each
complete frame in order once its transaction has committed. Connections are bounded in number,
closed after an idle timeout, and optionally wrapped in TLS (mutual TLS when the context
requires client certificates). Who is at the other end (address, client certificate) is read
once when a connection opens and handed with each frame to the handler, which checks that the
sender MSH-4 names is bound to it (flagging/bindings.py).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from typing import Protocol

from flagging.bindings import Peer
from hl7.inbound import Reply
from hl7.mllp import Frame, FrameDecoder, encode

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024


class Handler(Protocol):
    def handle(
        self, raw: bytes, *, transport: str, peer: str = "", connection: Peer | None = None
    ) -> Reply: ...

    def handle_oversize(
        self, head: bytes, size: int, *, transport: str, peer: str = ""
    ) -> Reply: ...


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
    ) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_message_bytes = max_message_bytes
        self.ssl_context = ssl_context
        self._slots = threading.BoundedSemaphore(max_connections)
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
            if not self._slots.acquire(blocking=False):
                log.warning(
                    "MLLP connection from %s refused: %d connections open",
                    addr[0],
                    self.max_connections,
                )
                conn.close()
                continue
            thread = threading.Thread(
                target=self._serve_connection, args=(conn, addr), name="mllp-conn", daemon=True
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

    def _serve_connection(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        try:
            conn.settimeout(self.idle_timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            with self._lock:
                self._connections.add(conn)
            self._converse(conn, peer, _identify(conn, addr))
        except (ssl.SSLError, OSError) as exc:
            log.info("MLLP connection %s ended: %s", peer, type(exc).__name__)
        finally:
            with self._lock:
                self._connections.discard(conn)
                self._threads.discard(threading.current_thread())
            conn.close()
            self._slots.release()

    def _converse(self, conn: socket.socket, peer: str, identity: Peer) -> None:
        decoder = FrameDecoder(self.max_message_bytes)
        while True:
            try:
                data = conn.recv(READ_SIZE)
            except TimeoutError:
                log.info("MLLP connection %s idle for %ss, closed", peer, self.idle_timeout)
                return
            if not data:
                return
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    reply = self.handler.handle(
                        event.payload, transport="mllp", peer=peer, connection=identity
                    )
                else:
                    reply = self.handler.handle_oversize(
                        event.head, event.size, transport="mllp", peer=peer
                    )
                conn.sendall(encode(reply.ack))


def _identify(conn: socket.socket, addr: tuple[str, int]) -> Peer:
    """The connection's address and, when the handshake verified one, its client certificate."""
    if not isinstance(conn, ssl.SSLSocket):
        return Peer.of(addr[0])
    der = conn.getpeercert(binary_form=True)
    # getpeercert() describes only a certificate the handshake verified against the CA.
    subject = (conn.getpeercert() or {}).get("subject", ()) if der else ()
    return Peer.of(addr[0], der, subject)  # type: ignore[arg-type]
