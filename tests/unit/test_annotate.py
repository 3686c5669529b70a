"""The annotated HL7 v2 message: ZFL, MSH-5/6, MSH-10, one ORU group, and hl7apy reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.parser import parse_message

from flagging.zfl import Annotation, Flag
from hl7 import er7
from hl7.annotate import AnnotationError, annotate
from hl7.parsing import read_flag
from tests import samples

WITHHELD = Flag(
    status="W",
    reason="serious-harm",
    reason_text="Likely to cause serious harm",
    decided_by_code="C1234567",
    decided_by_name="Dr Sam Grey",
    decided_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    withhold_until=datetime(2027, 1, 1, tzinfo=UTC),
    source="clinician",
)


def _annotation(flag: Flag, *, kind: str = "MDM", number: str = "DOC-1") -> Annotation:
    return Annotation(
        practice_ods_code="A81001",
        control_id="A81001-0000000000042",
        kind=kind,
        document_number=number,
        flag=flag,
    )


def _segments(raw: bytes) -> list[er7.Segment]:
    return er7.parse(raw, "windows-1252").segments


def test_withheld_message_carries_zfl_with_nopat_reason_and_decision() -> None:
    out = annotate(samples.mdm(), _annotation(WITHHELD))

    zfl = [s for s in _segments(out) if s.name == "ZFL"]
    assert len(zfl) == 1
    assert zfl[0].fields == [
        "ZFL",
        "1",
        "W",
        "NOPAT^no disclosure to patient, family or caregivers without attending provider's "
        "authorization^v3-ActCode",
        "serious-harm^Likely to cause serious harm^FLAGREASON",
        "C1234567^Dr Sam Grey",
        "20261124100000+0000",
        "20270101000000+0000",
        "clinician",
    ]


def test_msh_is_addressed_to_the_practice_with_a_new_control_id() -> None:
    out = annotate(samples.mdm(control_id="ORIGINAL-1"), _annotation(WITHHELD))

    msh = _segments(out)[0]
    assert msh.field(3) == samples.APPLICATION
    assert msh.field(4) == samples.SENDER
    assert msh.field(5) == "A81001"
    assert msh.field(6) == "A81001"
    assert msh.field(10) == "A81001-0000000000042"
    assert b"ORIGINAL-1" not in out


def test_visible_message_has_no_security_label() -> None:
    out = annotate(samples.mdm(), _annotation(Flag(status="V", source="review-window")))

    zfl = next(s for s in _segments(out) if s.name == "ZFL")
    assert zfl.field(2) == "V"
    assert zfl.field(3) == ""
    assert zfl.field(8) == "review-window"


def test_the_senders_zfl_is_replaced_where_it_stood_and_the_rest_is_unchanged() -> None:
    original = samples.build(
        samples.msh("M1", "MDM^T02^MDM_T02"),
        "EVN|T02|20261124093000",
        samples.pid(),
        "ZFL|1|V",
        samples.pd1(),
        "PV1|1|I",
        samples.txa("DOC-1"),
        samples.obx_text("Line one."),
    )
    out = annotate(original, _annotation(WITHHELD))

    before = [s.name for s in _segments(original)]
    after = _segments(out)
    assert [s.name for s in after] == before
    assert next(s for s in after if s.name == "ZFL").field(2) == "W"
    for old, new in zip(_segments(original)[1:], after[1:], strict=True):
        if old.name != "ZFL":
            assert old.fields == new.fields


def test_values_are_escaped_with_the_messages_separators() -> None:
    flag = Flag(
        status="W",
        reason="other",
        reason_text="Other | see ^ note & more ~ \\ here",
        decided_by_name="O'Neil|Smith",
        source="clinician",
    )
    out = annotate(samples.mdm(), _annotation(flag))

    message = er7.parse(out, "utf-8")
    zfl = message.first("ZFL")
    assert zfl is not None
    assert len(zfl.fields) == 9  # no separator leaked into a field
    assert message.components(zfl.field(4))[1] == "Other | see ^ note & more ~ \\ here"
    assert message.components(zfl.field(5))[1] == "O'Neil|Smith"


def test_the_flag_reads_back_as_the_same_decision() -> None:
    out = annotate(samples.mdm(), _annotation(WITHHELD))

    flag = read_flag(er7.parse(out, "utf-8"))
    assert flag is not None
    assert flag.visibility == "withheld"
    assert flag.reason == "serious-harm"
    assert flag.decided_by.code == "C1234567"
    assert flag.decided_at == WITHHELD.decided_at
    assert flag.withhold_until == WITHHELD.withhold_until


@pytest.mark.parametrize("version", ["2.3", "2.4", "2.5.1"])
def test_annotated_message_parses_again_with_hl7apy(version: str) -> None:
    out = annotate(samples.mdm(version=version), _annotation(WITHHELD)).decode()

    message = parse_message(out)  # the structure, with groups, as a receiver would read it
    assert message.msh.msh_10.value == "A81001-0000000000042"
    assert message.msh.msh_6.to_er7() == "A81001"
    flat = parse_message(out, find_groups=False)
    zfl = [s for s in flat.children if s.name == "ZFL"]
    assert len(zfl) == 1
    assert zfl[0].to_er7().startswith("ZFL|1|W|NOPAT^")


def test_oru_keeps_only_the_documents_patient_and_obr_group() -> None:
    other_patient = [
        samples.pid(samples.NHS_NUMBERS[2], family="OTHER", given="PATIENT"),
        samples.pd1("B82002"),
        "ORC|RE|P2|F2",
        samples.segment("OBR", {1: "1", 2: "P2", 3: "FILLER-2", 4: "US^Ultrasound", 25: "F"}),
        *samples.obx_text("Someone else's report."),
    ]
    raw = samples.build(
        samples.msh("ORU1", "ORU^R01^ORU_R01"),
        samples.pid(samples.NHS_NUMBERS[1]),
        samples.pd1(),
        "ORC|RE|P1|FILLER-1",
        samples.segment("OBR", {1: "1", 2: "P1", 3: "FILLER-1", 4: "XR^Chest X-ray", 25: "F"}),
        samples.obx_text("First report."),
        "ORC|RE|P3|FILLER-3",
        samples.segment("OBR", {1: "2", 2: "P3", 3: "FILLER-3", 4: "CT^CT head", 25: "F"}),
        samples.obx_text("Second report, same patient."),
        other_patient,
    )
    out = annotate(raw, _annotation(WITHHELD, kind="ORU", number="FILLER-3"))

    segments = _segments(out)
    assert [s.name for s in segments] == ["MSH", "PID", "PD1", "ORC", "OBR", "OBX", "ZFL"]
    assert segments[4].field(3) == "FILLER-3"
    assert b"OTHER" not in out
    assert b"First report" not in out
    assert parse_message(out.decode()).msh.msh_9.to_er7() == "ORU^R01^ORU_R01"


def test_oru_without_the_documents_obr_is_refused_rather_than_sent_whole() -> None:
    with pytest.raises(AnnotationError):
        annotate(samples.oru(), _annotation(WITHHELD, kind="ORU", number="NOT-THERE"))


def test_the_messages_character_set_is_kept() -> None:
    raw = samples.mdm(charset="8859/1", lines=("Caf\u00e9 au lait.",)).decode("utf-8")
    latin = raw.encode("iso8859-1")
    out = annotate(latin, _annotation(Flag(status="P")))

    assert "Caf\u00e9".encode("iso8859-1") in out
    assert er7.parse(out, "ascii").charset == "iso8859-1"
