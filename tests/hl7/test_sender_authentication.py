"""Senders prove who they are on MLLP: MSH-4 is a claim, the connection is the credential.

The attack of issue 9: a client with no credentials opens the MLLP port and sends an MDM^T08
naming another trust in MSH-4, that trust's TXA-12, new text and ZFL V, to release a document
the trust's clinician withheld. Every test here runs real listeners on 127.0.0.1; a trust's
integration engine is bound to the network 192.0.2.0/24 or to a certificate, so the loopback
client is the outsider.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flagging import bindings, organisations
from flagging.bindings import Peer
from flagging.errors import Conflict
from flagging.models import Document, DocumentVersion, FeedEvent, InboundMessage, Sender
from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw
from flagging.visibility import Actor, decide_visibility
from hl7.client import MLLPClient
from hl7.handler import MessageHandler, Reply
from hl7.listener import MLLPListener
from tests import samples
from tests.pki import CertificateAuthority, Issued

TRUST = "RA7"
ENGINE = Peer("192.0.2.10")  # the trust's integration engine, on its registered network
CLINICIAN = Actor(code="C1234567", name="Dr Sam Grey")


def _code(ack: bytes) -> str:
    return ack.split(b"MSA|", 1)[1][:2].decode()


def _zfl_visible() -> str:
    return samples.segment("ZFL", {1: "1", 2: "V", 8: "message"})


def _forgery(control_id: str = "FORGED-1") -> bytes:
    """The attacker's MDM^T08: the trust's MSH-4 and TXA-12, new text, ZFL V."""
    return (
        samples.mdm(
            "T08",
            control_id=control_id,
            sender=TRUST,
            number="RA7-DOC-1",
            lines=("Forged text that releases the document.",),
        )
        + _zfl_visible().encode()
        + b"\r"
    )


def _state(db: Database) -> tuple[int, int, list[tuple[int, str, str]], str]:
    """What the forged message must not change: documents, versions, the feed, visibility."""
    with db.reading() as session:
        documents = session.scalar(select(func.count()).select_from(Document)) or 0
        versions = session.scalar(select(func.count()).select_from(DocumentVersion)) or 0
        feed = [
            (e.seq, e.type, e.visibility)
            for e in session.scalars(select(FeedEvent).order_by(FeedEvent.id))
        ]
        visibility = session.scalars(
            select(Document.visibility).where(Document.document_number == "RA7-DOC-1")
        ).one()
    return documents, versions, feed, visibility


def _recorded(db: Database, control_id: str) -> InboundMessage:
    with db.reading() as session:
        return session.scalars(
            select(InboundMessage).where(InboundMessage.control_id == control_id)
        ).one()


@pytest.fixture
def trust(db: Database, handler: MessageHandler) -> int:
    """RA7, bound to its engine's network, with a document its clinician withheld for
    safeguarding (received from the engine)."""
    with db.transaction() as session:
        organisations.add_sender(session, TRUST, "Example Hospitals")
        sender_id = session.scalars(select(Sender.id).where(Sender.ods_code == TRUST)).one()
        bindings.set_bindings(session, sender_id, networks=["192.0.2.0/24"])
    original = samples.mdm(control_id="RA7-1", sender=TRUST, number="RA7-DOC-1")
    assert handler.handle(original, transport="mllp", connection=ENGINE).code == "AA"
    with db.transaction() as session:
        document_id = session.scalars(select(Document.id)).one()
        decide_visibility(
            session,
            document_id=document_id,
            visibility="withheld",  # type: ignore[arg-type]
            reason="safeguarding",
            actor=CLINICIAN,
            now=datetime.now(UTC),
        )
    return sender_id


@pytest.fixture
def plain_listener(handler: MessageHandler) -> Iterator[MLLPListener]:
    server = MLLPListener(handler, host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def server_cert(ca: CertificateAuthority) -> Issued:
    return ca.issue("localhost", organisation="Flagging service")


def _tls_listener(handler: MessageHandler, context: ssl.SSLContext) -> MLLPListener:
    return MLLPListener(handler, host="127.0.0.1", port=0, ssl_context=context).start()


def _assert_refused_and_nothing_changed(
    db: Database, ack: bytes, before: tuple[object, ...]
) -> None:
    assert _code(ack) == "AR"
    assert b"sender RA7 may not send on this connection" in ack
    assert _state(db) == before
    assert before[3] == "withheld"
    recorded = _recorded(db, "FORGED-1")
    assert (recorded.outcome, recorded.ack_code) == ("rejected", "AR")
    assert recorded.error_text == "sender RA7 may not send on this connection"
    assert recorded.raw == _forgery()  # the evidence is kept exactly as received


def test_forged_sender_on_plain_mllp_is_refused_and_nothing_changes(
    db: Database, trust: int, plain_listener: MLLPListener
) -> None:
    before = _state(db)
    with MLLPClient(*plain_listener.address) as client:
        ack = client.send(_forgery())
    _assert_refused_and_nothing_changed(db, ack, before)


def test_forged_sender_on_tls_mllp_without_client_certificates_is_refused(
    db: Database,
    trust: int,
    handler: MessageHandler,
    ca: CertificateAuthority,
    server_cert: Issued,
) -> None:
    before = _state(db)
    server = _tls_listener(handler, ca.server_context(server_cert, require_client=False))
    try:
        with MLLPClient(*server.address, ssl_context=ca.client_context()) as client:
            ack = client.send(_forgery())
    finally:
        server.stop()
    _assert_refused_and_nothing_changed(db, ack, before)


@pytest.fixture
def mutual_tls(
    db: Database, trust: int, handler: MessageHandler, ca: CertificateAuthority, server_cert: Issued
) -> Iterator[tuple[MLLPListener, Issued, Issued]]:
    """A listener that requires client certificates from the CA; RA7 bound to its own
    (by fingerprint, replacing its network), RXX to a certificate by subject."""
    ra7, rxx = ca.issue("ra7-engine", organisation="Example Hospitals"), ca.issue("rxx-engine")
    with db.transaction() as session:
        rxx_id = session.scalars(select(Sender.id).where(Sender.ods_code == samples.SENDER)).one()
        bindings.set_bindings(session, trust, networks=[], certificates=[ra7.fingerprint])
        bindings.set_bindings(session, rxx_id, certificates=["CN=rxx-engine, O=Test Trust"])
    server = _tls_listener(handler, ca.server_context(server_cert))
    yield server, ra7, rxx
    server.stop()


def test_mutual_tls_accepts_the_certificate_the_sender_is_bound_to(
    ca: CertificateAuthority, mutual_tls: tuple[MLLPListener, Issued, Issued]
) -> None:
    server, ra7, rxx = mutual_tls
    addendum = samples.mdm(
        "T06", control_id="RA7-2", sender=TRUST, number="RA7-DOC-1-A", parent="RA7-DOC-1"
    )
    with MLLPClient(*server.address, ssl_context=ca.client_context(ra7)) as client:
        assert _code(client.send(addendum)) == "AA"
    with MLLPClient(*server.address, ssl_context=ca.client_context(rxx)) as client:
        assert _code(client.send(samples.mdm(control_id="RXX-1"))) == "AA"  # bound by subject


def test_mutual_tls_without_a_client_certificate_fails_the_handshake(
    db: Database, ca: CertificateAuthority, mutual_tls: tuple[MLLPListener, Issued, Issued]
) -> None:
    server = mutual_tls[0]
    before = _state(db)
    # With TLS 1.3 the refusal arrives on the first read, after the client's first write.
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        MLLPClient(*server.address, ssl_context=ca.client_context()) as client,
    ):
        client.send(_forgery())
    assert _state(db) == before
    with db.reading() as session:
        assert (
            session.scalars(
                select(InboundMessage).where(InboundMessage.control_id == "FORGED-1")
            ).all()
            == []
        )


def test_mutual_tls_with_another_senders_certificate_is_refused(
    db: Database, ca: CertificateAuthority, mutual_tls: tuple[MLLPListener, Issued, Issued]
) -> None:
    server, _ra7, rxx = mutual_tls
    before = _state(db)
    with MLLPClient(*server.address, ssl_context=ca.client_context(rxx)) as client:
        ack = client.send(_forgery())
        _assert_refused_and_nothing_changed(db, ack, before)
        # The connection still speaks for the sender it is bound to.
        assert _code(client.send(samples.mdm(control_id="RXX-2"))) == "AA"


def test_sender_outside_its_allowed_networks_is_refused(
    db: Database, trust: int, plain_listener: MLLPListener
) -> None:
    addendum = samples.mdm(
        "T06", control_id="RA7-2", sender=TRUST, number="RA7-DOC-1-A", parent="RA7-DOC-1"
    )
    with MLLPClient(*plain_listener.address) as client:
        ack = client.send(addendum)
    assert _code(ack) == "AR"
    assert b"ERR|" in ack
    assert b"sender RA7 may not send on this connection" in ack
    assert _recorded(db, "RA7-2").outcome == "rejected"

    # Bound to loopback too, a new connection from here may send as RA7.
    with db.transaction() as session:
        bindings.set_bindings(session, trust, networks=["192.0.2.0/24", "127.0.0.0/8"])
    with MLLPClient(*plain_listener.address) as client:
        assert _code(client.send(addendum.replace(b"RA7-2", b"RA7-3"))) == "AA"


def test_bindings_are_read_once_per_connection_and_sender(
    db: Database, trust: int, plain_listener: MLLPListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    execute = Raw.execute

    def counting(self: Raw, statement: str, params: dict[str, object]) -> object:
        if "FROM sender_bindings" in statement:
            lookups.append(str(params["sender"]))
        return execute(self, statement, params)

    reads: list[bool] = []
    reading = Database.reading

    def counting_reads(self: Database, **kwargs: bool) -> Any:
        reads.append(True)
        return reading(self, **kwargs)

    monkeypatch.setattr(Raw, "execute", counting)
    monkeypatch.setattr(Database, "reading", counting_reads)
    with MLLPClient(*plain_listener.address) as client:
        codes = [_code(client.send(samples.mdm(control_id=f"M{i}"))) for i in range(5)]
        codes += [_code(client.send(_forgery(f"FORGED-{i}"))) for i in range(3)]
    monkeypatch.undo()
    assert codes == ["AA"] * 5 + ["AR"] * 3
    assert len(lookups) == 2  # RXX once, RA7 once
    assert len(reads) == 2  # and no other read transaction for the messages after the first


def test_a_refused_message_is_never_reprocessed(
    db: Database, trust: int, handler: MessageHandler, plain_listener: MLLPListener
) -> None:
    with MLLPClient(*plain_listener.address) as client:
        assert _code(client.send(_forgery())) == "AR"
    message_id = _recorded(db, "FORGED-1").id
    with pytest.raises(Conflict, match="not bound"):
        handler.reprocess(message_id)
    assert _state(db)[3] == "withheld"


def test_an_unregistered_sender_is_still_answered_as_unregistered(
    plain_listener: MLLPListener,
) -> None:
    with MLLPClient(*plain_listener.address) as client:
        ack = client.send(samples.mdm(sender="RNEW"))
    assert _code(ack) == "AR"
    assert b"is not registered" in ack


def test_the_listener_reads_each_connections_certificate_once(
    ca: CertificateAuthority,
    handler: MessageHandler,
    mutual_tls: tuple[MLLPListener, Issued, Issued],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, _ra7, rxx = mutual_tls
    seen: list[Peer | None] = []
    handle = handler.handle

    def spy(raw: bytes, **kwargs: Any) -> Reply:
        seen.append(kwargs.get("connection"))
        return handle(raw, **kwargs)

    monkeypatch.setattr(handler, "handle", spy)
    with MLLPClient(*server.address, ssl_context=ca.client_context(rxx)) as client:
        client.send(samples.mdm(control_id="RXX-1"))
        client.send(samples.mdm(control_id="RXX-2"))
    first, second = seen
    assert first is second  # one identity for the connection, handed with each frame
    assert first is not None
    assert first.address == "127.0.0.1"
    assert first.certificate_sha256 == rxx.fingerprint
    assert ("CN", "rxx-engine") in first.certificate_subject
