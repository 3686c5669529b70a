"""Building the parts of a process from settings: database, HL7 handler, web app, listener."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from api import create_app
from config import Settings
from flagging import memory
from flagging.bindings import bound_networks
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.zfl import Annotation
from hl7.annotate import annotate
from hl7.handler import MessageHandler
from hl7.inspect import inspect
from hl7.listener import MLLPListener

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    handler: MessageHandler

    def close(self) -> None:
        """Stop the writer process, if any, then close the database connections."""
        self.handler.close()
        self.db.dispose()


def build(settings: Settings, *, writer_process: bool = False) -> Services:
    db = Database(settings)
    return Services(
        settings, db, MessageHandler(Receiver(db, settings, writer_process=writer_process))
    )


def web_app(services: Services) -> Flask:
    handler = services.handler

    def ingest(raw: bytes, *, transport: str, peer: str, sender_id: int) -> tuple[str, bytes]:
        reply = handler.handle(raw, transport=transport, peer=peer, sender_id=sender_id)
        memory.after(len(raw))
        return reply.code, reply.ack

    def reprocess(message_id: int, actor: str) -> tuple[str, int | None]:
        reply = handler.reprocess(message_id, actor)
        return reply.code, reply.message_id

    fallback_charset = services.settings.fallback_charset

    def annotate_for_gp(raw: bytes, annotation: Annotation) -> bytes:
        return annotate(raw, annotation, fallback_charset=fallback_charset)

    app = create_app(
        services.settings,
        db=services.db,
        ingest=ingest,
        reprocess=reprocess,
        annotate=annotate_for_gp,
        write_problem=handler.write_problem,
    )
    # The admin message page labels fields with the HL7 edge's inspector (hl7apy).
    app.extensions["flagging.inspect"] = inspect
    return app


def mllp_listener(services: Services, *, port: int | None = None) -> MLLPListener:
    settings = services.settings
    context = None
    if settings.mllp_tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.mllp_tls_cert, settings.mllp_tls_key)
        if settings.mllp_tls_client_ca:
            # Mutual TLS: a client without a certificate from this CA fails the handshake.
            context.load_verify_locations(cafile=settings.mllp_tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    return MLLPListener(
        services.handler,
        host=settings.mllp_host,
        port=settings.mllp_port if port is None else port,
        max_connections=settings.mllp_max_connections,
        idle_timeout=settings.mllp_idle_timeout,
        max_message_bytes=settings.max_message_bytes,
        ssl_context=context,
        frame_deadline=settings.mllp_frame_deadline,
        max_connections_per_address=settings.mllp_max_connections_per_address,
        reserved_connections=settings.mllp_reserved_connections,
        reserved_for=SenderNetworks(services.db, settings.mllp_reserved_networks),
    )


class SenderNetworks:
    """Whether a peer address may use the listener's reserved slots: it is in a network some
    registered sender is bound to (`flagging senders set --allow-network`), or in
    FLAGGING_MLLP_RESERVED_NETWORKS. The bindings are read again at most every `refresh`
    seconds, so a new binding counts without a restart; if the database cannot be read, the
    networks read last still count."""

    def __init__(self, db: Database, configured: tuple[str, ...], refresh: float = 30.0) -> None:
        self._db = db
        self._configured = configured
        self._refresh = refresh
        self._lock = threading.Lock()
        self._due = 0.0
        self._check = in_networks(configured)

    def __call__(self, address: str) -> bool:
        with self._lock:
            if time.monotonic() >= self._due:
                self._due = time.monotonic() + self._refresh
                try:
                    with self._db.reading() as session:
                        bound = bound_networks(session)
                    self._check = in_networks((*self._configured, *bound))
                except Exception as exc:  # never stop the accept loop; keep what we had
                    log.error("sender networks not read: %s", type(exc).__name__)
            check = self._check
        return check is not None and check(address)


def in_networks(networks: tuple[str, ...]) -> Callable[[str], bool] | None:
    """Whether a peer address is in one of `networks` (CIDR); None when there are none."""
    if not networks:
        return None
    parsed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def reserved_for(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in parsed)

    return reserved_for
