"""End to end over MESH: documents in over MLLP for two practices on MESH and one on the REST
feed, clinicians deciding, a document withdrawn; NHS England's MESH sandbox then holds, in each
MESH practice's mailbox, every feed event once, in order, as an ITK3 FHIR message; and the
practices' ITK3 responses come back to our mailbox and are matched to the documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from api import itk
from flagging import mesh_channels, mesh_sending
from flagging.models import MeshMessage, Practice, Visibility
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from mesh import channel
from tests import samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, decide, document_id, feed_table
from tests.mesh.conftest import PRACTICE_MAILBOXES, MeshServer, inbox

pytestmark = pytest.mark.slow

REST_PRACTICE = "C83003"
NOPAT = "NOPAT"


@pytest.fixture
def mllp(handler: MessageHandler) -> Iterator[MLLPListener]:
    server = MLLPListener(handler, host="127.0.0.1", port=0, max_message_bytes=256 * 1024)
    server.start()
    yield server
    server.stop()


def send_all(db: Database, server: MeshServer) -> int:
    return channel.send_due(db, server.config(), itk.render, itk.subject)


def security_codes(resource: dict[str, Any]) -> set[str]:
    return {c["code"] for c in resource.get("meta", {}).get("security", [])}


def parts(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The MessageHeader and DocumentReference of a message, after fhir.resources has
    validated the whole Bundle."""
    bundle = json.loads(body)
    Bundle.model_validate(bundle)
    resources = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert bundle["type"] == "message"
    assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"
    assert {"Patient", "Organization", "DocumentReference"} <= set(resources)
    return resources["MessageHeader"], resources["DocumentReference"]


def test_each_mesh_practice_receives_every_event_once_in_order_as_validated_fhir_messages(
    db: Database, mllp: MLLPListener, mesh_server: MeshServer
) -> None:
    add_practice(db, OTHER_PRACTICE)
    add_practice(db, REST_PRACTICE)
    workflows = {samples.PRACTICE: "GPFED_CONSULT_REPORT", OTHER_PRACTICE: "TOC_FHIR_IP_DISCH"}
    with db.transaction() as session:
        mesh_channels.configure_channel(session, samples.PRACTICE, PRACTICE_MAILBOXES[0])
        mesh_channels.configure_channel(
            session, OTHER_PRACTICE, PRACTICE_MAILBOXES[1], workflow="TOC_FHIR_IP_DISCH"
        )
    practices = (samples.PRACTICE, OTHER_PRACTICE, REST_PRACTICE)
    with MLLPClient(*mllp.address) as client:
        for i in range(6):
            raw = samples.mdm(control_id=f"M{i}", number=f"DOC-{i}", practice=practices[i % 3])
            assert b"MSA|AA" in client.send(raw)
            if i == 2:
                # MESH sends while documents are still arriving.
                assert send_all(db, mesh_server) == 2
        decide(db, document_id(db, "DOC-0"), Visibility.WITHHELD)
        decide(db, document_id(db, "DOC-1"), Visibility.VISIBLE)
        decide(db, document_id(db, "DOC-2"), Visibility.VISIBLE)
        decide(db, document_id(db, "DOC-3"), Visibility.VISIBLE)
        send_all(db, mesh_server)
        # Released, then withdrawn by the hospital: never to be shown again.
        cancel = samples.mdm("T11", control_id="M-CAN3", number="DOC-3", lines=())
        assert b"MSA|AA" in client.send(cancel)
    rest_feed = feed_table(db, REST_PRACTICE)
    send_all(db, mesh_server)
    assert send_all(db, mesh_server) == 0  # nothing left, nothing sent twice

    for ods, mailbox in zip((samples.PRACTICE, OTHER_PRACTICE), PRACTICE_MAILBOXES, strict=True):
        feed = feed_table(db, ods)
        messages = inbox(mesh_server, mailbox)
        assert [h["localid"] for _, h, _ in messages] == [
            mesh_sending.local_id(ods, seq) for seq, *_ in feed
        ]
        assert {h["workflowid"] for _, h, _ in messages} == {workflows[ods]}
        assert {h["from"] for _, h, _ in messages} == {mesh_server.config().mailbox}
        for (seq, event_type, doc_id, _, visibility), (_, _, body) in zip(
            feed, messages, strict=True
        ):
            header, reference = parts(body)
            assert header["id"] == mesh_sending.header_id(ods, seq)
            assert header["reason"]["coding"][0]["code"] == event_type
            assert reference["id"].startswith(f"{doc_id}-")
            assert header["destination"][0]["endpoint"].endswith(mailbox)
            hidden = visibility != Visibility.VISIBLE or event_type == "document.withdrawn"
            if hidden:
                assert {"R", NOPAT} <= security_codes(reference), (seq, event_type)
                assert {c["coding"][0]["code"] for c in reference["securityLabel"]} >= {NOPAT}
            else:
                assert NOPAT not in security_codes(reference), (seq, event_type)

    # The scenario's own facts, read from the practice's mailbox.
    first = {h["localid"]: parts(b) for _, h, b in inbox(mesh_server, PRACTICE_MAILBOXES[0])}
    by_event = [(h["reason"]["coding"][0]["code"], r) for h, r in first.values()]
    withdrawn = [r for code, r in by_event if code == "document.withdrawn"]
    assert len(withdrawn) == 1
    assert withdrawn[0]["status"] == "entered-in-error"
    assert NOPAT in security_codes(withdrawn[0])
    # DOC-0 (withheld) never appears without NOPAT.
    doc0 = document_id(db, "DOC-0")
    assert all(NOPAT in security_codes(r) for _, r in by_event if r["id"].startswith(f"{doc0}-"))

    # The REST practice: no channel, no message, and a feed MESH did not touch.
    assert feed_table(db, REST_PRACTICE) == rest_feed
    assert [t for _, t, *_ in rest_feed] == ["document.available"] * 2 + ["visibility.changed"]
    with db.reading() as session:
        rest_id = session.scalar(select(Practice.id).where(Practice.ods_code == REST_PRACTICE))
        assert (
            session.scalar(
                select(func.count())
                .select_from(MeshMessage)
                .where(MeshMessage.practice_id == rest_id)
            )
            == 0
        )
        assert mesh_channels.channel_of(session, REST_PRACTICE) is None
