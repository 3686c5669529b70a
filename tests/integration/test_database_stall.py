"""A PostgreSQL server that stops answering the ingest writer: the message is answered AR once
FLAGGING_DATABASE_TIMEOUT has passed, nothing of it is stored, and the next message is taken
once the server answers again (flagging/storage/pgwire.py, `make_engine`). PostgreSQL only:
SQLite has its own bound on waiting for a lock (busy_timeout), and no network."""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import make_url

from config import Settings
from flagging.models import InboundMessage
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples

TIMEOUT = 1.0  # seconds: FLAGGING_DATABASE_TIMEOUT in these tests


@pytest.fixture
def postgresql(settings: Settings) -> Settings:
    if settings.is_sqlite:
        pytest.skip("PostgreSQL only: needs FLAGGING_TEST_DATABASE_URL=postgresql://...")
    return settings


def _handler(settings: Settings) -> tuple[MessageHandler, Database]:
    db = Database(settings)
    return MessageHandler(Receiver(db, settings)), db


def _stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def test_a_message_waiting_for_a_lock_held_elsewhere_is_answered_ar_and_its_wait_cancelled(
    postgresql: Settings, db: Database, sender_token: str
) -> None:
    handler, own = _handler(dataclasses.replace(postgresql, database_timeout=TIMEOUT))
    try:
        assert handler.handle(samples.mdm(control_id="L0"), transport="mllp").code == "AA"
        with db.engine.connect() as other:
            # Another transaction holds the audit chain's head, which every message moves on.
            other.execute(text("SELECT 1 FROM audit_head FOR UPDATE"))
            reply = handler.handle(samples.mdm(control_id="L1"), transport="mllp")
            assert reply.code == "AR"
            assert b"^207&" in reply.ack  # ERR-3 207: application internal error
            # The server was asked to cancel: no backend of the test's database is left
            # waiting for the lock (and holding what the message's transaction had locked).
            assert _waiters_gone(other)
            other.rollback()
        assert _stored(db) == 1
        # The same message sent again is stored: the AR left nothing of it behind.
        assert handler.handle(samples.mdm(control_id="L1"), transport="mllp").code == "AA"
        assert _stored(db) == 2
    finally:
        handler.close()
        own.dispose()


def _waiters_gone(connection: Connection, bound: float = 10.0) -> bool:
    """Whether, within `bound` seconds, no backend of this database waits for a lock."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
        ).scalar()
        if waiting == 0:
            return True
        time.sleep(0.05)
    return False


class _Proxy:
    """A TCP relay on 127.0.0.1 in front of the PostgreSQL server that can be frozen: then it
    reads nothing from either side (nor accepts), as a network that drops every packet."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.frozen.is_set():
                time.sleep(0.02)
                continue
            for key, _ in self._selector.select(0.05):
                sock = key.fileobj
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    server = socket.create_connection(self._upstream)
                    self._selector.register(client, selectors.EVENT_READ, server)
                    self._selector.register(server, selectors.EVENT_READ, client)
                    continue
                assert isinstance(sock, socket.socket)
                data = b""
                with contextlib.suppress(OSError):
                    data = sock.recv(65536)
                if data:
                    key.data.sendall(data)
                else:  # one side closed: close both
                    for end in (sock, key.data):
                        self._selector.unregister(end)
                        end.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@pytest.fixture
def proxy(postgresql: Settings) -> Iterator[_Proxy]:
    url = make_url(postgresql.database_url)
    relay = _Proxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield relay
    finally:
        relay.close()


def test_a_network_that_stops_answering_gets_ar_not_silence_and_ingest_resumes_after(
    postgresql: Settings, db: Database, sender_token: str, proxy: _Proxy
) -> None:
    url = make_url(postgresql.database_url).set(host="127.0.0.1", port=proxy.port)
    through = dataclasses.replace(
        postgresql,
        database_url=url.render_as_string(hide_password=False),
        database_timeout=TIMEOUT,
    )
    handler, own = _handler(through)
    try:
        assert handler.handle(samples.mdm(control_id="N0"), transport="mllp").code == "AA"
        proxy.frozen.set()
        # On the connection the last message used, the answer never comes; then on a new
        # connection, the server's greeting never comes (libpq's connect_timeout).
        for control_id in ("N1", "N2"):
            reply = handler.handle(samples.mdm(control_id=control_id), transport="mllp")
            assert reply.code == "AR"
        proxy.frozen.clear()
        assert handler.handle(samples.mdm(control_id="N1"), transport="mllp").code == "AA"
        assert _stored(db) == 2
    finally:
        proxy.frozen.clear()
        handler.close()
        own.dispose()
