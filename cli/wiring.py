"""Building the parts of a process from settings: database, HL7 handler, web app, listener."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from flask import Flask

from api import create_app
from config import Settings
from flagging.db import Database
from flagging.gp import Annotation
from hl7.annotate import annotate
from hl7.inbound import MessageHandler
from hl7.inspect import inspect
from hl7.listener import MLLPListener


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
    return Services(settings, db, MessageHandler(db, settings, writer_process=writer_process))


def web_app(services: Services) -> Flask:
    handler = services.handler

    def ingest(raw: bytes, *, transport: str, peer: str, sender_id: int) -> tuple[str, bytes]:
        reply = handler.handle(raw, transport=transport, peer=peer, sender_id=sender_id)
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
    return MLLPListener(
        services.handler,
        host=settings.mllp_host,
        port=settings.mllp_port if port is None else port,
        max_connections=settings.mllp_max_connections,
        idle_timeout=settings.mllp_idle_timeout,
        max_message_bytes=settings.max_message_bytes,
        ssl_context=context,
    )
