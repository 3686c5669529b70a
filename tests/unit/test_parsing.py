"""From ER7 to the domain's inputs: what is accepted, and the documents a message carries."""

from __future__ import annotations

import base64
import binascii
import random
from datetime import UTC, date, datetime

import pytest

from flagging.models.documents import VersionChange
from flagging.received import DocumentInput
from hl7 import er7, parsing
from hl7.errors import MessageRejected
from hl7.parsing import (
    TEXT_PLAIN,
    Header,
    check_supported,
    parse_datetime,
    read_documents,
    read_header,
)
from tests import samples
from tests.samples import INVALID_NHS_NUMBER, NHS_NUMBERS, TINY_PDF, segment

PROCESSING_IDS = ("P", "T", "D")
MDM_CHANGES = {
    "T01": VersionChange.ORIGINAL,
    "T02": VersionChange.ORIGINAL,
    "T03": VersionChange.STATUS,
    "T04": VersionChange.STATUS,
    "T05": VersionChange.ADDENDUM,
    "T06": VersionChange.ADDENDUM,
    "T07": VersionChange.EDIT,
    "T08": VersionChange.EDIT,
    "T09": VersionChange.REPLACEMENT,
    "T10": VersionChange.REPLACEMENT,
    "T11": VersionChange.CANCEL,
}
WITH_CONTENT = ["T02", "T04", "T06", "T08", "T10"]
WITHOUT_CONTENT = ["T01", "T03", "T05", "T07", "T09", "T11"]


def read(raw: bytes) -> tuple[er7.Message, Header]:
    message = er7.parse(raw, "windows-1252")
    return message, read_header(message)


def documents(raw: bytes) -> list[DocumentInput]:
    message, header = read(raw)
    check_supported(header, PROCESSING_IDS)
    return read_documents(message, header)


def document(raw: bytes) -> DocumentInput:
    (only,) = documents(raw)
    return only


def error_of(raw: bytes) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        documents(raw)
    return info.value


def unsupported(raw: bytes, processing_ids: tuple[str, ...] = PROCESSING_IDS) -> MessageRejected:
    _, header = read(raw)
    with pytest.raises(MessageRejected) as info:
        check_supported(header, processing_ids)
    return info.value


def mdm_with(
    *,
    event: str = "T02",
    pid: str | None = None,
    pd1: str | None = None,
    txa: str | None = None,
    observations: list[str] | None = None,
) -> bytes:
    """An MDM message with any of its parts replaced."""
    return samples.build(
        samples.msh(message_type=f"MDM^{event}^MDM_{event}"),
        segment("EVN", {1: event, 2: "20261124093000"}),
        samples.pid() if pid is None else pid,
        samples.pd1() if pd1 is None else pd1,
        "PV1|1|I",
        samples.txa() if txa is None else txa,
        samples.obx_text("Seen in clinic.") if observations is None else observations,
    )


def obr(number: str, *, status: str = "F", service: str = "XR^Chest X-ray") -> str:
    return segment("OBR", {1: "1", 2: "PLACER-1", 3: number, 4: service, 25: status})


def oru_with(*groups: str | list[str]) -> bytes:
    return samples.build(
        samples.msh("ORU0001", "ORU^R01^ORU_R01"), samples.pid(), samples.pd1(), *groups
    )


def obx_ed(value: str) -> list[str]:
    return [segment("OBX", {1: "1", 2: "ED", 3: "PDF", 5: value, 11: "F"})]


def obx_nm(value: str = "5.4") -> list[str]:
    return [segment("OBX", {1: "1", 2: "NM", 3: "K^Potassium", 5: value, 6: "mmol/L"})]


# The header


def test_header_reads_the_routing_fields_of_msh() -> None:
    _, header = read(samples.mdm(control_id="ABC-123", version="2.5.1", processing_id="T"))

    assert header.sending_application == samples.APPLICATION
    assert header.sending_facility == samples.SENDER
    assert header.receiving_application == "FLAGGING"
    assert header.receiving_facility == "FLAGGING"
    assert header.control_id == "ABC-123"
    assert (header.message_type, header.trigger_event) == ("MDM", "T02")
    assert header.type_label == "MDM^T02"
    assert header.version == "2.5.1"
    assert header.processing_id == "T"
    assert (header.msh3, header.msh4, header.msh5, header.msh6) == (
        samples.APPLICATION,
        samples.SENDER,
        "FLAGGING",
        "FLAGGING",
    )
    assert not header.enhanced_mode


def test_header_reads_an_hd_universal_id_when_the_namespace_is_empty() -> None:
    raw = samples.mdm().replace(b"|RXX|", b"|^rxx.nhs.uk^DNS|", 1)

    _, header = read(raw)

    assert header.sending_facility == "rxx.nhs.uk"
    assert header.msh4 == "^rxx.nhs.uk^DNS"


def test_header_message_type_and_processing_id_are_read_in_capitals() -> None:
    raw = samples.mdm(processing_id="p").replace(b"MDM^T02^MDM_T02", b"mdm^t02")

    _, header = read(raw)

    assert (header.message_type, header.trigger_event, header.processing_id) == (
        "MDM",
        "T02",
        "P",
    )
    check_supported(header, PROCESSING_IDS)


@pytest.mark.parametrize(
    ("accept", "application", "enhanced"),
    [("", "", False), ("AL", "", True), ("", "NE", True), ("ne", "al", True)],
)
def test_enhanced_mode_is_msh15_or_msh16_valued(
    accept: str, application: str, enhanced: bool
) -> None:
    _, header = read(samples.mdm(accept_ack=accept, app_ack=application))

    assert header.enhanced_mode is enhanced
    assert header.accept_ack_type == accept.upper()


def test_header_is_read_with_odd_separators() -> None:
    raw = samples.mdm().translate(bytes.maketrans(b"|^~", b"^~|"))

    message, header = read(raw)

    assert (header.message_type, header.trigger_event, header.version) == ("MDM", "T02", "2.4")
    assert header.control_id == "MSG0001"
    doc = read_documents(message, header)[0]
    assert doc.patient.nhs_number == NHS_NUMBERS[0]
    assert doc.practice_ods_code == samples.PRACTICE


# What is accepted


@pytest.mark.parametrize("event", sorted(MDM_CHANGES))
def test_every_mdm_trigger_event_is_accepted(event: str) -> None:
    _, header = read(samples.mdm(event))

    check_supported(header, PROCESSING_IDS)


def test_oru_r01_is_accepted() -> None:
    _, header = read(samples.oru())

    check_supported(header, PROCESSING_IDS)


@pytest.mark.parametrize("message_type", ["ADT^A01^ADT_A01", "ADT^A03", "ORM^O01", "", "ACK"])
def test_other_message_types_are_rejected_as_unsupported_type(message_type: str) -> None:
    raw = samples.mdm().replace(b"MDM^T02^MDM_T02", message_type.encode())

    error = unsupported(raw)

    assert error.ack_code == "AR"
    assert error.problem.code == "200"
    assert error.problem.location == "MSH^1^9^1^1"


@pytest.mark.parametrize("message_type", ["MDM^T12^MDM_T01", "MDM^T00", "MDM", "ORU^R30"])
def test_other_events_of_accepted_types_are_rejected_as_unsupported_event(
    message_type: str,
) -> None:
    raw = samples.mdm().replace(b"MDM^T02^MDM_T02", message_type.encode())

    error = unsupported(raw)

    assert error.ack_code == "AR"
    assert error.problem.code == "201"
    assert error.problem.location == "MSH^1^9^1^2"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7.1", "2.8"])
def test_versions_from_2_3_on_are_accepted(version: str) -> None:
    _, header = read(samples.mdm(version=version))

    check_supported(header, PROCESSING_IDS)


@pytest.mark.parametrize("version", ["2.2", "2.1", "2", "3.0", "", "two", "2.x", "v2.4"])
def test_older_missing_or_unreadable_versions_are_rejected(version: str) -> None:
    error = unsupported(samples.mdm(version=version))

    assert error.ack_code == "AR"
    assert error.problem.code == "203"
    assert error.problem.location == "MSH^1^12"


def test_version_with_a_component_is_read_from_its_first_component() -> None:
    raw = samples.mdm().replace(b"|P|2.4", b"|P|2.4^GBR^2.4")

    _, header = read(raw)

    assert header.version == "2.4"
    check_supported(header, PROCESSING_IDS)


@pytest.mark.parametrize("processing_id", ["X", "", "Q"])
def test_processing_id_not_in_the_accepted_list_is_rejected(processing_id: str) -> None:
    error = unsupported(samples.mdm(processing_id=processing_id))

    assert error.ack_code == "AR"
    assert error.problem.code == "202"
    assert error.problem.location == "MSH^1^11"


def test_accepted_processing_ids_come_from_the_settings() -> None:
    _, header = read(samples.mdm(processing_id="T"))

    check_supported(header, ("P", "T"))
    with pytest.raises(MessageRejected) as info:
        check_supported(header, ("P",))
    assert info.value.problem.code == "202"


def test_processing_id_with_a_mode_component_is_read_from_its_first_component() -> None:
    _, header = read(samples.mdm(processing_id="P^T"))

    assert header.processing_id == "P"


# MDM documents


@pytest.mark.parametrize(("event", "change"), sorted(MDM_CHANGES.items()))
def test_mdm_event_gives_the_version_change(event: str, change: VersionChange) -> None:
    doc = document(samples.mdm(event))

    assert doc.kind == "MDM"
    assert doc.event == event
    assert doc.change is change
    assert doc.cancel is (event == "T11")


@pytest.mark.parametrize("event", WITH_CONTENT)
def test_events_with_content_need_an_obx(event: str) -> None:
    error = error_of(samples.mdm(event, lines=()))

    assert error.ack_code == "AE"
    assert error.problem.code == "101"
    assert error.problem.location == "OBX^1^5"
    assert f"MDM^{event}" in error.problem.text


@pytest.mark.parametrize("event", WITH_CONTENT)
def test_events_with_content_need_text_not_just_blank_obx(event: str) -> None:
    error = error_of(samples.mdm(event, lines=("", "  ")))

    assert (error.ack_code, error.problem.code) == ("AE", "101")


@pytest.mark.parametrize("event", WITHOUT_CONTENT)
def test_events_without_content_are_read_without_obx(event: str) -> None:
    doc = document(samples.mdm(event, lines=()))

    assert doc.content is None
    assert doc.content_type == ""


def test_mdm_document_carries_its_metadata() -> None:
    doc = document(samples.mdm())

    assert doc.number == "DOC-1"
    assert doc.parent_number == ""
    assert doc.document_type == "DS"
    assert doc.title == "Discharge summary"
    assert doc.author_code == "C1234567"
    assert doc.author_name == "DR SAM GREY"
    assert doc.provider == "DR SAM GREY"
    assert doc.origination_time == datetime(2026, 11, 24, 9, 25, tzinfo=UTC)
    assert doc.completion_status == "AU"
    assert doc.confidentiality == "U"
    assert doc.availability == "AV"
    assert doc.practice_ods_code == samples.PRACTICE
    assert doc.content_type == TEXT_PLAIN
    assert doc.content == b"Discharged home.\nFollow up in clinic."


def test_mdm_patient_is_read_from_pid() -> None:
    patient = document(samples.mdm()).patient

    assert patient.nhs_number == NHS_NUMBERS[0]
    assert (patient.family_name, patient.given_name) == ("TESTPATIENT", "ALEX")
    assert patient.birth_date == date(1970, 1, 1)


def test_title_comes_from_txa25_when_given() -> None:
    doc = document(mdm_with(txa=samples.txa(title="Letter from \\T\\ to clinic")))

    assert doc.title == "Letter from & to clinic"


def test_missing_txa12_is_a_content_error_at_its_location() -> None:
    error = error_of(mdm_with(txa=samples.txa(number="")))

    assert error.ack_code == "AE"
    assert error.problem.code == "101"
    assert error.problem.location == "TXA^1^12"


def test_missing_txa_segment_is_a_content_error() -> None:
    raw = samples.build(
        samples.msh(), samples.pid(), samples.pd1(), "PV1|1|I", samples.obx_text("Text")
    )

    error = error_of(raw)

    assert (error.ack_code, error.problem.code, error.problem.location) == ("AE", "100", "TXA")


def test_txa13_names_the_parent_document() -> None:
    doc = document(samples.mdm("T06", number="DOC-2", parent="DOC-1"))

    assert doc.number == "DOC-2"
    assert doc.parent_number == "DOC-1"
    assert doc.change is VersionChange.ADDENDUM


def test_document_numbers_are_read_from_the_first_ei_component() -> None:
    doc = document(mdm_with(txa=samples.txa("DOC-9^EPR^1.2.3^ISO", parent="DOC-8^EPR")))

    assert (doc.number, doc.parent_number) == ("DOC-9", "DOC-8")


# The patient's NHS number


@pytest.mark.parametrize(
    "pid3",
    [
        f"{NHS_NUMBERS[2]}^^^NHS^NH",
        f"{NHS_NUMBERS[2]}^^^^NH",
        f"{NHS_NUMBERS[2]}^^^NHS",
        f"{NHS_NUMBERS[2]}^^^nhs^PI",
        f"{NHS_NUMBERS[2]}^^^NHS&2.16.840.1.113883.2.1.4.1&ISO^NH",
        f"H123^^^RXX^MR~{NHS_NUMBERS[2]}^^^NHS^NH",
        "999 000 0034^^^NHS^NH",
        "999-000-0034^^^NHS^NH",
    ],
)
def test_nhs_number_is_found_by_type_nh_or_authority_nhs(pid3: str) -> None:
    doc = document(mdm_with(pid=segment("PID", {1: "1", 3: pid3, 5: "X^Y"})))

    assert doc.patient.nhs_number == NHS_NUMBERS[2]


def test_nhs_number_is_found_in_pid2_from_older_senders() -> None:
    pid = segment("PID", {1: "1", 2: f"{NHS_NUMBERS[3]}^^^NHS^NH", 3: "H123^^^RXX^MR"})

    assert document(mdm_with(pid=pid)).patient.nhs_number == NHS_NUMBERS[3]


def test_a_hospital_number_is_not_taken_for_the_nhs_number() -> None:
    pid = segment("PID", {1: "1", 3: f"{NHS_NUMBERS[3]}^^^RXX^MR"})

    error = error_of(mdm_with(pid=pid))

    assert (error.ack_code, error.problem.code, error.problem.location) == ("AE", "101", "PID^1^3")


def test_missing_nhs_number_is_a_content_error_at_pid3() -> None:
    error = error_of(samples.mdm(nhs_number=""))

    assert error.ack_code == "AE"
    assert error.problem.code == "101"
    assert error.problem.location == "PID^1^3"


def test_missing_pid_segment_is_a_content_error() -> None:
    raw = samples.build(samples.msh(), samples.txa(), samples.obx_text("Text"))

    error = error_of(raw)

    assert (error.ack_code, error.problem.code, error.problem.location) == ("AE", "100", "PID")


@pytest.mark.parametrize("number", [INVALID_NHS_NUMBER, "9990000000", "999000001", "99900000AB"])
def test_invalid_nhs_number_is_a_content_error_that_does_not_echo_it(number: str) -> None:
    error = error_of(samples.mdm(nhs_number=number))

    assert error.ack_code == "AE"
    assert error.problem.code == "102"
    assert error.problem.location == "PID^1^3"
    assert number not in error.problem.text
    assert number not in str(error)
    assert number[:3] + " " + number[3:6] not in error.problem.text


# The practice


@pytest.mark.parametrize(
    ("pd1", "practice"),
    [
        (samples.pd1("A81001"), "A81001"),  # XON-3 id number
        (segment("PD1", {3: "THE SURGERY^^^^^^^^^B82002"}), "B82002"),  # XON-10
        (segment("PD1", {3: "THE SURGERY^^A81001^^^^^^^B82002"}), "B82002"),
        (segment("PD1", {3: "THE SURGERY^^a81001"}), "A81001"),
        (segment("PD1", {3: "C83003"}), "C83003"),  # an ODS code sent as the name
        (segment("PD1", {3: "THE SURGERY"}), ""),
        ("PD1|", ""),
    ],
)
def test_practice_is_read_from_pd1_3(pd1: str, practice: str) -> None:
    assert document(mdm_with(pd1=pd1)).practice_ods_code == practice


def test_practice_is_empty_without_pd1() -> None:
    raw = samples.build(
        samples.msh(), samples.pid(), "PV1|1|I", samples.txa(), samples.obx_text("Text")
    )

    assert document(raw).practice_ods_code == ""


# Content


def test_ft_text_line_breaks_become_newlines() -> None:
    doc = document(
        mdm_with(observations=samples.obx_text("Line one\\.br\\Line two", value_type="FT"))
    )

    assert doc.content_type == TEXT_PLAIN
    assert doc.content == b"Line one\nLine two"


def test_text_lines_are_unescaped_joined_in_order_and_kept_as_utf8() -> None:
    lines = ("Blood \\T\\ urine: normal", "Ratio 1\\S\\2", "Caf\u00e9 visit")
    doc = document(mdm_with(observations=samples.obx_text(*lines)))

    assert doc.content == "Blood & urine: normal\nRatio 1^2\nCaf\u00e9 visit".encode()


def test_text_repetitions_are_separate_lines() -> None:
    doc = document(mdm_with(observations=samples.obx_text("first~second", value_type="ST")))

    assert doc.content == b"first\nsecond"


def test_non_text_observations_do_not_join_the_text() -> None:
    doc = document(mdm_with(observations=[*samples.obx_text("Report"), *obx_nm()]))

    assert doc.content == b"Report"


def test_ed_base64_pdf_is_checked_and_kept_as_base64_with_its_mime_type() -> None:
    doc = document(mdm_with(observations=samples.obx_pdf()))

    assert doc.content_type == "application/pdf"
    assert (doc.content, doc.content_base64) == (None, base64.b64encode(TINY_PDF).decode())
    assert doc.decoded().content == TINY_PDF


def test_ed_base64_text_is_decoded_at_once_for_screening() -> None:
    data = base64.b64encode(b"<p>Seen in clinic.</p>").decode()
    doc = document(mdm_with(observations=obx_ed(f"^TEXT^HTML^Base64^{data}")))

    assert (doc.content_type, doc.content, doc.content_base64) == (
        "text/html",
        b"<p>Seen in clinic.</p>",
        None,
    )


def test_ed_rendition_wins_over_text_lines() -> None:
    doc = document(mdm_with(observations=[*samples.obx_text("Summary"), *samples.obx_pdf()]))

    assert (doc.content_type, doc.decoded().content) == ("application/pdf", TINY_PDF)


def test_ed_base64_may_be_wrapped_over_lines_of_escaped_breaks() -> None:
    data = base64.b64encode(TINY_PDF).decode()
    wrapped = data[:20] + " " + data[20:40] + "\\.br\\" + data[40:]

    doc = document(mdm_with(observations=obx_ed(f"^AP^PDF^Base64^{wrapped}")))

    assert doc.content == TINY_PDF


def test_ed_hex_and_text_encodings_are_decoded() -> None:
    hex_doc = document(mdm_with(observations=obx_ed("^TEXT^PLAIN^Hex^48656C6C6F")))
    text_doc = document(mdm_with(observations=obx_ed("^TEXT^RTF^A^{\\E\\rtf1 hi}")))

    assert (hex_doc.content_type, hex_doc.content) == ("text/plain", b"Hello")
    assert (text_doc.content_type, text_doc.content) == ("text/rtf", b"{\\rtf1 hi}")


def test_bad_base64_is_a_content_error_at_the_obx() -> None:
    error = error_of(mdm_with(observations=obx_ed("^AP^PDF^Base64^not*base64!")))

    assert error.ack_code == "AE"
    assert error.problem.code == "102"
    assert error.problem.location == "OBX^1^5"


@pytest.mark.parametrize(
    "data", ["QUJD=QUJD", "=QUJD", "QUJD\\F\\QUJD", "QUJDé", "QUJ", "QU===", "===="]
)
def test_base64_with_padding_inside_other_characters_or_missing_padding_is_a_content_error(
    data: str,
) -> None:
    error = error_of(mdm_with(observations=obx_ed(f"^AP^PDF^Base64^{data}")))

    assert (error.ack_code, error.problem.code) == ("AE", "102")


def test_unknown_ed_encoding_is_a_content_error() -> None:
    error = error_of(mdm_with(observations=obx_ed("^AP^PDF^UUENCODE^begin 644")))

    assert (error.ack_code, error.problem.code, error.problem.location) == ("AE", "103", "OBX^1^5")


# ORU reports


def test_oru_report_is_one_document() -> None:
    doc = document(samples.oru())

    assert doc.kind == "ORU"
    assert doc.event == "R01"
    assert doc.number == "FILLER-1"
    assert doc.placer_number == "PLACER-1"
    assert doc.change is None
    assert not doc.cancel
    assert (doc.document_type, doc.title) == ("XR", "Chest X-ray")
    assert doc.completion_status == "F"
    assert (doc.author_code, doc.author_name) == ("C7654321", "ROBIN BLUE")
    assert doc.origination_time == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert doc.patient.nhs_number == NHS_NUMBERS[1]
    assert doc.practice_ods_code == samples.PRACTICE
    assert doc.content == b"No acute abnormality."


def test_oru_with_an_ed_pdf_reads_back_decoded() -> None:
    doc = document(samples.oru(observations=samples.obx_pdf()))

    assert (doc.content_type, doc.decoded().content) == ("application/pdf", TINY_PDF)


def test_oru_with_several_obr_groups_gives_several_documents() -> None:
    raw = oru_with(
        obr("FILLER-1"),
        samples.obx_text("First report."),
        obr("FILLER-2", service="CT^CT head"),
        samples.obx_text("Second report.", "Two lines."),
    )

    docs = documents(raw)

    assert [d.number for d in docs] == ["FILLER-1", "FILLER-2"]
    assert [d.content for d in docs] == [b"First report.", b"Second report.\nTwo lines."]
    assert docs[1].title == "CT head"


def test_oru_groups_take_the_patient_that_precedes_them() -> None:
    raw = samples.build(
        samples.msh("ORU0001", "ORU^R01^ORU_R01"),
        samples.pid(NHS_NUMBERS[0]),
        samples.pd1("A81001"),
        obr("FILLER-1"),
        samples.obx_text("For the first patient."),
        samples.pid(NHS_NUMBERS[1]),
        obr("FILLER-2"),
        samples.obx_text("For the second patient."),
    )

    first, second = documents(raw)

    assert (first.patient.nhs_number, first.practice_ods_code) == (NHS_NUMBERS[0], "A81001")
    assert (second.patient.nhs_number, second.practice_ods_code) == (NHS_NUMBERS[1], "")


def test_oru_obr25_x_is_a_cancel_without_content() -> None:
    doc = document(samples.oru(status="X", observations=[]))

    assert doc.cancel
    assert doc.completion_status == "X"
    assert doc.content is None


def test_oru_group_with_only_numeric_results_is_skipped() -> None:
    raw = oru_with(obr("FILLER-1"), obx_nm(), obr("FILLER-2"), samples.obx_text("Report."))

    assert [d.number for d in documents(raw)] == ["FILLER-2"]


def test_oru_with_only_numeric_results_is_a_content_error() -> None:
    error = error_of(samples.oru(observations=obx_nm()))

    assert error.ack_code == "AE"
    assert error.problem.code == "101"
    assert error.problem.location == "OBX^1^5"


def test_oru_without_obr_is_a_content_error() -> None:
    raw = samples.build(samples.msh("ORU0001", "ORU^R01^ORU_R01"), samples.pid())

    error = error_of(raw)

    assert (error.ack_code, error.problem.code, error.problem.location) == ("AE", "100", "OBR")


def test_oru_missing_obr3_is_a_content_error_at_that_group() -> None:
    raw = oru_with(obr("FILLER-1"), samples.obx_text("One."), obr(""), samples.obx_text("Two."))

    error = error_of(raw)

    assert error.ack_code == "AE"
    assert error.problem.code == "101"
    assert error.problem.location == "OBR^2^3"


def test_oru_invalid_nhs_number_is_a_content_error() -> None:
    error = error_of(samples.oru(nhs_number=INVALID_NHS_NUMBER))

    assert (error.ack_code, error.problem.code) == ("AE", "102")
    assert INVALID_NHS_NUMBER not in error.problem.text


# Date and time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20260701120000+0100", datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
        ("20260115120000-0500", datetime(2026, 1, 15, 17, 0, tzinfo=UTC)),
        ("20260115120000+0000", datetime(2026, 1, 15, 12, 0, tzinfo=UTC)),
        ("202601151200+0530", datetime(2026, 1, 15, 6, 30, tzinfo=UTC)),
    ],
)
def test_datetime_with_an_offset_is_converted_to_utc(value: str, expected: datetime) -> None:
    assert parse_datetime(value) == expected


def test_datetime_without_an_offset_in_summer_is_british_summer_time() -> None:
    assert parse_datetime("20260701120000") == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)


def test_datetime_without_an_offset_in_winter_is_greenwich_mean_time() -> None:
    assert parse_datetime("20260115120000") == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        ("202607", datetime(2026, 6, 30, 23, 0, tzinfo=UTC)),
        ("20260115", datetime(2026, 1, 15, 0, 0, tzinfo=UTC)),
        ("2026011509", datetime(2026, 1, 15, 9, 0, tzinfo=UTC)),
        ("202601150930", datetime(2026, 1, 15, 9, 30, tzinfo=UTC)),
        (" 20260115093015 ", datetime(2026, 1, 15, 9, 30, 15, tzinfo=UTC)),
    ],
)
def test_datetime_of_partial_precision_starts_at_the_beginning_of_its_period(
    value: str, expected: datetime
) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("fraction", "microseconds"),
    [(".5", 500000), (".0157", 15700), (".123456", 123456), (".1234567", 123456)],
)
def test_datetime_fractions_of_a_second_are_exact(fraction: str, microseconds: int) -> None:
    result = parse_datetime("20260115093015" + fraction)

    assert result is not None
    assert result.microsecond == microseconds


def test_parsed_datetimes_are_in_utc() -> None:
    result = parse_datetime("20260701120000")

    assert result is not None
    assert result.utcoffset() is not None
    assert result.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "value",
    ["", "yesterday", "2026-01-15", "20261340", "20260230", "202601151", "20260115+01", "26"],
)
def test_unreadable_datetime_gives_none(value: str) -> None:
    assert parse_datetime(value) is None


def test_base64_taken_undecoded_is_base64_that_a_strict_decode_accepts() -> None:
    # The parser checks a PDF's Base64 without decoding it (the rendition is decoded when
    # read): whatever it lets through must decode. What it does not let through is decoded at
    # once, as before (and refused if that fails), so it may be stricter than the decoder.
    rng = random.Random(20261203)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    taken = 0
    for _ in range(20_000):
        data = base64.b64encode(rng.randbytes(rng.randrange(1, 10))).decode()
        if rng.random() < 0.5:
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(alphabet + "==-é ") + data[at:]
        if parsing._whole_base64(data):
            taken += 1
            binascii.a2b_base64(data, strict_mode=True)  # raises if it does not decode
    assert taken > 5_000  # canonical Base64, and some altered forms that still decode
