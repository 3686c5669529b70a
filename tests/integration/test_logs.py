"""Logs never hold patient data: no NHS number, patient name or document text, whatever the
outcome of a message, a decision or the release job."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from flagging.models import Visibility
from flagging.storage.engine import Database
from flagging.visibility import Actor, decide_visibility, release_lapsed
from hl7.handler import MessageHandler
from tests import accounts, samples

OUR_LOGGERS = ("flagging", "hl7", "api", "cli")
SECRET_TEXT = "Seen by the safeguarding team about her partner."


def test_logs_of_accepted_rejected_and_decided_messages_hold_no_patient_data(
    handler: MessageHandler, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    for name in OUR_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    bad_number = samples.NHS_NUMBERS[1][:-1] + str((int(samples.NHS_NUMBERS[1][-1]) + 1) % 10)

    handler.handle(samples.mdm(control_id="L1", lines=(SECRET_TEXT,)), transport="mllp")
    handler.handle(samples.mdm(control_id="L2", nhs_number=bad_number), transport="mllp")
    handler.handle(samples.mdm(control_id="L1", lines=("other",)), transport="mllp")  # AE 205
    handler.handle(b"MSH|^~\\&|garbage " + samples.NHS_NUMBERS[2].encode(), transport="mllp")
    document = accounts.document_id(db, "DOC-1")
    with db.transaction() as session:
        decide_visibility(
            session,
            document_id=document,
            visibility=Visibility.WITHHELD,
            actor=Actor(code="C1234567", name="Dr Sam Grey"),
            reason="safeguarding",
            note="Partner reads her record.",
            withhold_until=datetime.now(UTC) + timedelta(days=1),
            now=datetime.now(UTC),
        )
    with db.transaction() as session:
        release_lapsed(session, datetime.now(UTC) + timedelta(days=2))

    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name.split(".")[0] in OUR_LOGGERS
    )
    assert caplog.records, "the path logged nothing, so this test would prove nothing"
    for patient_data in (
        *samples.NHS_NUMBERS[:3],
        bad_number,
        "TESTPATIENT",
        "ALEX",
        SECRET_TEXT,
        "Partner reads her record.",
    ):
        assert patient_data not in logged
