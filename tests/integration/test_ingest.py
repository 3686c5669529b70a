"""The inbound pipeline against a real database: outcomes, ACKs, duplicates, versions."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config import Settings, load_settings
from flagging import organisations
from flagging.models import (
    Document,
    DocumentVersion,
    FeedEvent,
    InboundMessage,
    MessageOutcome,
)
from flagging.models.documents import DocumentStatus
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.storage.rawsql import Raw
from hl7.handler import MessageHandler
from tests import samples


def _msa(ack: bytes | None) -> list[str]:
    assert ack is not None
    for segment in ack.decode().split("\r"):
        if segment.startswith("MSA"):
            return segment.split("|")
    raise AssertionError("no MSA in ACK")


def _err(ack: bytes | None) -> list[str]:
    assert ack is not None
    for segment in ack.decode().split("\r"):
        if segment.startswith("ERR"):
            return segment.split("|")
    raise AssertionError("no ERR in ACK")


def _count(db: Database, model: type) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _messages(db: Database) -> list[InboundMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def _documents(db: Database) -> list[Document]:
    with db.transaction() as session:
        return list(session.scalars(select(Document).order_by(Document.id)))


def _versions(db: Database, document_id: int) -> list[DocumentVersion]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version)
            )
        )


def test_discharge_summary_is_stored_with_its_raw_bytes_and_acknowledged_aa(
    handler: MessageHandler, db: Database
) -> None:
    raw = samples.mdm(control_id="A1")
    reply = handler.handle(raw, transport="mllp", peer="127.0.0.1:5000")

    assert reply.code == "AA"
    assert _msa(reply.ack)[1:3] == ["AA", "A1"]
    [message] = _messages(db)
    assert message.raw == raw
    assert message.outcome == MessageOutcome.ACCEPTED
    assert message.ack == reply.ack
    assert (message.transport, message.peer) == ("mllp", "127.0.0.1:5000")
    [document] = _documents(db)
    assert (document.document_number, document.nhs_number) == ("DOC-1", samples.NHS_NUMBERS[0])
    assert document.practice_ods_code == samples.PRACTICE
    assert document.practice_id is not None
    [version] = _versions(db, document.id)
    assert version.content == b"Discharged home.\nFollow up in clinic."
    assert version.author_code == "C1234567"


def test_resent_message_is_acknowledged_again_and_not_stored_twice(
    handler: MessageHandler, db: Database
) -> None:
    raw = samples.mdm(control_id="DUP1")
    first = handler.handle(raw, transport="mllp")
    again = handler.handle(raw, transport="mllp")

    assert again.code == "AA"
    assert again.ack == first.ack
    assert _count(db, Document) == 1
    assert _count(db, DocumentVersion) == 1
    original, resend = _messages(db)
    assert resend.outcome == MessageOutcome.DUPLICATE
    assert resend.duplicate_of_id == original.id
    assert resend.raw is None  # the bytes are kept once, on the original


def test_same_control_id_with_other_content_is_rejected_ae_205(
    handler: MessageHandler, db: Database
) -> None:
    handler.handle(samples.mdm(control_id="X1", number="DOC-1"), transport="mllp")
    reply = handler.handle(samples.mdm(control_id="X1", number="DOC-2"), transport="mllp")

    assert reply.code == "AE"
    err = _err(reply.ack)
    assert err[1].startswith("MSH^1^10^205&")  # 2.4: ERR-1 is location ^ code
    assert _count(db, Document) == 1
    assert _messages(db)[-1].outcome == MessageOutcome.QUARANTINED


def test_unregistered_sender_is_rejected_ar_and_the_attempt_recorded(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(sender="RZZ"), transport="mllp")

    assert reply.code == "AR"
    assert "204" in _err(reply.ack)[1]
    [message] = _messages(db)
    assert (message.outcome, message.sending_facility) == (MessageOutcome.REJECTED, "RZZ")
    assert message.raw is not None
    assert _count(db, Document) == 0


def test_content_error_is_answered_ae_with_location_and_kept_in_quarantine(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(version="2.5.1", nhs_number=""), transport="mllp")

    assert reply.code == "AE"
    err = _err(reply.ack)
    assert (err[2], err[3].split("^")[0], err[4]) == ("PID^1^3", "101", "E")
    assert "NHS number" in err[8]
    [message] = _messages(db)
    assert message.outcome == MessageOutcome.QUARANTINED
    assert (message.error_code, message.error_location) == ("101", "PID^1^3")


def test_invalid_nhs_number_is_a_content_error_that_does_not_echo_the_number(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(nhs_number=samples.INVALID_NHS_NUMBER), transport="mllp")
    assert reply.code == "AE"
    assert reply.ack is not None
    assert samples.INVALID_NHS_NUMBER.encode() not in reply.ack
    assert _messages(db)[0].error_code == "102"


def test_unsupported_message_type_is_rejected_ar_200(handler: MessageHandler, db: Database) -> None:
    raw = samples.build(samples.msh("ADT1", "ADT^A01^ADT_A01"), samples.pid())
    reply = handler.handle(raw, transport="mllp")
    assert reply.code == "AR"
    assert "200" in _err(reply.ack)[1]
    assert _messages(db)[0].outcome == MessageOutcome.REJECTED


def test_garbage_is_rejected_ar_and_its_bytes_kept(handler: MessageHandler, db: Database) -> None:
    garbage = b"\x00\xffhello, this is not HL7"
    reply = handler.handle(garbage, transport="mllp")
    assert reply.code == "AR"
    assert _msa(reply.ack)[1] == "AR"
    [message] = _messages(db)
    assert message.raw == garbage


def test_missing_control_id_is_a_content_error(handler: MessageHandler) -> None:
    reply = handler.handle(samples.mdm(control_id=""), transport="mllp")
    assert reply.code == "AE"
    assert "MSH^1^10" in _err(reply.ack)[1]


def test_addendum_joins_the_thread_of_its_parent_as_a_new_version(
    handler: MessageHandler, db: Database
) -> None:
    handler.handle(samples.mdm("T02", control_id="M1", number="DOC-1"), transport="mllp")
    reply = handler.handle(
        samples.mdm("T06", control_id="M2", number="DOC-1-A", parent="DOC-1", lines=("Add.",)),
        transport="mllp",
    )
    assert reply.code == "AA"
    [document] = _documents(db)
    assert document.latest_version == 2
    _, addendum = _versions(db, document.id)
    assert (addendum.change, addendum.document_number, addendum.parent_number) == (
        "addendum",
        "DOC-1-A",
        "DOC-1",
    )
    assert addendum.content == b"Add."


def test_text_made_of_the_message_lines_is_stored_once_as_spans_of_its_bytes(
    handler: MessageHandler, db: Database
) -> None:
    lines = tuple(f"Line {i}: discharged home, follow up in clinic." for i in range(40))
    handler.handle(samples.mdm(control_id="S1", lines=lines), transport="mllp")
    [document] = _documents(db)
    [version] = _versions(db, document.id)
    assert version.stored_content is None
    assert version.content_spans is not None
    assert version.content == "\n".join(lines).encode()


def test_escaped_text_is_stored_as_parsed(handler: MessageHandler, db: Database) -> None:
    handler.handle(
        samples.mdm(control_id="S2", lines=("Tea \\T\\ toast, then home.",)), transport="mllp"
    )
    [document] = _documents(db)
    [version] = _versions(db, document.id)
    assert version.content_spans is None
    assert version.content == b"Tea & toast, then home."


def test_status_change_without_content_keeps_the_previous_text(
    handler: MessageHandler, db: Database
) -> None:
    handler.handle(samples.mdm("T02", control_id="M1"), transport="mllp")
    handler.handle(samples.mdm("T03", control_id="M2", lines=()), transport="mllp")
    [document] = _documents(db)
    original, status = _versions(db, document.id)
    assert status.change == "status"
    assert status.content == original.content


def test_every_mdm_event_is_accepted_as_a_version_of_one_thread(
    handler: MessageHandler, db: Database
) -> None:
    events = ["T01", "T02", "T03", "T04", "T05", "T06", "T07", "T08", "T09", "T10", "T11"]
    for i, trigger in enumerate(events):
        reply = handler.handle(samples.mdm(trigger, control_id=f"E{i}"), transport="mllp")
        assert reply.code == "AA", trigger
    [document] = _documents(db)
    assert document.latest_version == len(events)
    assert document.status == DocumentStatus.WITHDRAWN
    assert [v.event for v in _versions(db, document.id)] == events


def test_cancel_withdraws_the_document(handler: MessageHandler, db: Database) -> None:
    handler.handle(samples.mdm("T02", control_id="C1"), transport="mllp")
    handler.handle(samples.mdm("T11", control_id="C2", lines=()), transport="mllp")
    [document] = _documents(db)
    assert document.status == DocumentStatus.WITHDRAWN
    assert _versions(db, document.id)[-1].change == "cancel"


def test_oru_correction_and_cancel_are_versions_of_the_same_filler_number(
    handler: MessageHandler, db: Database
) -> None:
    handler.handle(samples.oru(control_id="O1"), transport="mllp")
    handler.handle(
        samples.oru(control_id="O2", status="C", observations=samples.obx_text("Corrected.")),
        transport="mllp",
    )
    handler.handle(samples.oru(control_id="O3", status="X", observations=[]), transport="mllp")
    [document] = _documents(db)
    assert [v.change for v in _versions(db, document.id)] == ["original", "correction", "cancel"]
    assert document.status == DocumentStatus.WITHDRAWN


def test_oru_pdf_rendition_is_stored_decoded_with_its_mime_type(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.oru(observations=samples.obx_pdf()), transport="http")
    assert reply.code == "AA"
    [document] = _documents(db)
    [version] = _versions(db, document.id)
    assert (version.content_type, version.content) == ("application/pdf", samples.TINY_PDF)
    # Kept once: as the span of its Base64 in the message, not as a second, decoded copy.
    assert version.stored_content is None
    assert version.content_spans is not None
    assert version.content_spans.startswith("base64:")


def test_a_rendition_whose_base64_is_broken_into_lines_is_stored_as_decoded(
    handler: MessageHandler, db: Database
) -> None:
    [obx] = samples.obx_pdf()
    data = obx.split("^Base64^")[1].split("|")[0]
    wrapped = obx.replace(data, " ".join(data[i : i + 20] for i in range(0, len(data), 20)))
    reply = handler.handle(samples.oru(observations=[wrapped]), transport="mllp")
    assert reply.code == "AA"
    [document] = _documents(db)
    [version] = _versions(db, document.id)
    assert (version.content_spans, version.content) == (None, samples.TINY_PDF)


def test_unknown_and_unregistered_practices_are_accepted_as_unroutable(
    handler: MessageHandler, db: Database
) -> None:
    for i, practice in enumerate(["V81999", "B82002", ""]):
        reply = handler.handle(
            samples.mdm(control_id=f"U{i}", number=f"U{i}", practice=practice), transport="mllp"
        )
        assert reply.code == "AA"
    assert [d.practice_id for d in _documents(db)] == [None, None, None]


def test_quarantined_message_is_reprocessed_after_the_sender_is_registered(
    handler: MessageHandler, db: Database
) -> None:
    rejected = handler.handle(samples.mdm(sender="RNEW", control_id="R1"), transport="mllp")
    assert rejected.code == "AR"
    with db.transaction() as session:
        organisations.add_sender(session, "RNEW", "New Trust")

    assert rejected.message_id is not None
    reply = handler.reprocess(rejected.message_id)

    assert reply.code == "AA"
    assert _count(db, Document) == 1
    original = _messages(db)[0]
    assert original.outcome == MessageOutcome.REPROCESSED
    assert original.reprocessed_as_id == reply.message_id


def test_enhanced_mode_is_answered_with_a_commit_acknowledgement(
    handler: MessageHandler,
) -> None:
    reply = handler.handle(samples.mdm(accept_ack="AL", app_ack="NE"), transport="mllp")
    assert reply.code == "AA"
    assert _msa(reply.ack)[1] == "CA"


def test_enhanced_mode_without_accept_ack_is_answered_with_the_application_ack(
    handler: MessageHandler, db: Database
) -> None:
    reply = handler.handle(samples.mdm(accept_ack="NE", app_ack="AL"), transport="mllp")
    assert _msa(reply.ack)[1] == "AA"
    assert _count(db, Document) == 1


def test_enhanced_mode_error_only_gets_a_commit_reject_for_content_errors(
    handler: MessageHandler,
) -> None:
    reply = handler.handle(
        samples.mdm(accept_ack="ER", app_ack="NE", nhs_number=""), transport="mllp"
    )
    assert _msa(reply.ack)[1] == "CE"


@pytest.mark.parametrize("writer_process", [False, True], ids=["group commit", "writer process"])
@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "sqlite:///{dir}"])
def test_unreachable_database_is_answered_ar_never_aa(
    url: str, writer_process: bool, tmp_path: Path
) -> None:
    # A server nobody listens on; a SQLite "database" that is a folder.
    unreachable = Settings(env="test", database_url=url.format(dir=tmp_path), secret_key="x")
    broken = MessageHandler(
        Receiver(Database(unreachable), unreachable, writer_process=writer_process)
    )
    try:
        for _ in range(2):  # and again: a failure leaves the handler usable
            reply = broken.handle(samples.mdm(), transport="mllp")
            assert reply.code == "AR"
            assert _msa(reply.ack)[1] == "AR"
            assert "207" in _err(reply.ack)[1]
    finally:
        broken.close()


def test_database_failure_at_commit_is_answered_ar(
    handler: MessageHandler, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver_error = db.engine.dialect.loaded_dbapi.OperationalError

    def commit_fails(raw: Raw) -> None:
        """The driver fails to commit (a full disk, a lost server)."""
        raise driver_error("disk I/O error")

    monkeypatch.setattr(Raw, "commit", commit_fails)
    reply = handler.handle(samples.mdm(control_id="F1"), transport="mllp")
    monkeypatch.undo()
    assert reply.code == "AR"
    assert _count(db, Document) == 0
    assert _count(db, InboundMessage) == 0
    # The connection the failed transaction ran on serves the next one.
    assert handler.handle(samples.mdm(control_id="F2"), transport="mllp").code == "AA"
    assert _count(db, Document) == 1


@pytest.mark.parametrize("processing_id", ["T", "D"])
def test_training_and_debug_messages_are_rejected_ar_202_in_production_and_reach_no_practice(
    db: Database, settings: Settings, sender_token: str, processing_id: str
) -> None:
    production = load_settings(
        {
            "FLAGGING_ENV": "production",
            "FLAGGING_SECRET_KEY": secrets.token_hex(32),
            "FLAGGING_INSTANCE_PATH": str(settings.instance_path),
            "FLAGGING_DATABASE_URL": settings.database_url,
        }
    )
    handler = MessageHandler(Receiver(db, production))

    reply = handler.handle(
        samples.mdm(control_id="TRAIN1", processing_id=processing_id, version="2.5.1"),
        transport="mllp",
    )

    assert reply.code == "AR"
    assert _err(reply.ack)[3].split("^")[0] == "202"
    assert _count(db, Document) == 0
    assert _count(db, FeedEvent) == 0
    assert _messages(db)[0].outcome == MessageOutcome.REJECTED
    # The same message marked P is production data and is taken.
    assert handler.handle(samples.mdm(control_id="PROD1"), transport="mllp").code == "AA"
