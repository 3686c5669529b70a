"""An MLLP client: sends messages over one persistent connection and reads each ACK."""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

from hl7.errors import FramingError
from hl7.mllp import Frame, FrameDecoder, TruncatedFrame, encode

MAX_ACK_BYTES = 1024 * 1024


def tls_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client's TLS context: the server's certificate checked against `ca` (a CA file;
    empty: the system's CAs) and its name, and our own certificate and key presented when
    given (mutual TLS)."""
    context = ssl.create_default_context(cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


class MLLPClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> None:
        sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=source_address
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = ssl_context.wrap_socket(sock, server_hostname=host) if ssl_context else sock
        self._decoder = FrameDecoder(MAX_ACK_BYTES)
        self._pending: list[bytes] = []

    def send(self, message: bytes) -> bytes:
        """Send one message and wait for its acknowledgement."""
        self._sock.sendall(encode(message))
        return self.receive()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for tests of framing edge cases)."""
        self._sock.sendall(data)

    def receive(self) -> bytes:
        """The next acknowledgement frame from the server."""
        while not self._pending:
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection before acknowledging")
            for event in self._decoder.feed(data):
                if isinstance(event, TruncatedFrame):
                    continue  # the server began it again: the next frame is the answer
                if not isinstance(event, Frame):
                    raise FramingError("the acknowledgement was too large")
                self._pending.append(event.payload)
        return self._pending.pop(0)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
