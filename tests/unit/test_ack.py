"""Building ACKs: a pure function of the header, the code and the problem, checked with hl7apy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message, parse_segment

from flagging.received import Problem
from hl7 import er7
from hl7.ack import ack_code, build_ack, escape
from hl7.parsing import Header, read_header
from tests import samples

STRICT = VALIDATION_LEVEL.STRICT
NOW = datetime(2026, 7, 1, 12, 30, 45, tzinfo=UTC)
NHS_PROBLEM = Problem(
    "102", "the NHS number in PID-3 is not 10 digits with a valid check digit", "PID^1^3"
)
AWKWARD_TEXT = "bad | field ^ comp ~ rep \\ esc & sub\r\nnext line"


def header_of(raw: bytes) -> Header:
    return read_header(er7.parse(raw, "windows-1252"))


def ack_for(raw: bytes, code: str = "AA", problem: Problem | None = None) -> str:
    return build_ack(header_of(raw), code, problem=problem, now=NOW, control_id="ACK0001")


def read_back(ack_text: str) -> er7.Message:
    """Our own parser reading the ACK, as a sender using the same rules would."""
    return er7.parse(ack_text.encode("utf-8"), "utf-8")


def seg(message: er7.Message, name: str) -> er7.Segment:
    found = message.first(name)
    assert found is not None, f"no {name} segment"
    return found


# Original mode, accepted


@pytest.mark.parametrize("version", ["2.4", "2.5.1"])
def test_aa_swaps_sender_and_receiver_and_echoes_the_control_id(version: str) -> None:
    raw = samples.mdm(control_id="CTRL-42", version=version)

    ack = read_back(ack_for(raw))

    msh = ack.msh
    assert msh.field(3) == "FLAGGING"
    assert msh.field(4) == "FLAGGING"
    assert msh.field(5) == samples.APPLICATION
    assert msh.field(6) == samples.SENDER
    assert msh.field(7) == "20260701123045+0000"
    assert msh.field(10) == "ACK0001"
    assert msh.field(11) == "P"
    assert msh.field(12) == version
    assert seg(ack, "MSA").fields == ["MSA", "AA", "CTRL-42"]
    assert [s.name for s in ack.segments] == ["MSH", "MSA"]


def test_aa_echoes_msh3_to_msh6_exactly_as_sent() -> None:
    raw = samples.mdm().replace(
        b"|EPR|RXX|FLAGGING|FLAGGING|", b"|EPR^1.2.3^ISO|RXX^^X|ENGINE|SITE^9^L|", 1
    )

    msh = read_back(ack_for(raw)).msh

    assert (msh.field(3), msh.field(4)) == ("ENGINE", "SITE^9^L")
    assert (msh.field(5), msh.field(6)) == ("EPR^1.2.3^ISO", "RXX^^X")


def test_our_names_fill_an_empty_msh5_and_msh6() -> None:
    raw = samples.mdm().replace(b"|RXX|FLAGGING|FLAGGING|", b"|RXX|||", 1)

    text = build_ack(header_of(raw), "AA", application="APP", facility="FAC", now=NOW)

    assert (read_back(text).msh.field(3), read_back(text).msh.field(4)) == ("APP", "FAC")


def test_ack_keeps_the_processing_id_and_names_the_trigger_event() -> None:
    msh = read_back(ack_for(samples.mdm("T06", processing_id="T", version="2.5.1"))).msh

    assert msh.field(11) == "T"
    assert msh.field(9) == "ACK^T06^ACK"


def test_ack_to_a_2_3_message_has_no_message_structure_component() -> None:
    # MSH-9.3 (message structure) arrived in 2.3.1.
    assert read_back(ack_for(samples.mdm(version="2.3"))).msh.field(9) == "ACK^T02"
    assert read_back(ack_for(samples.mdm(version="2.3.1"))).msh.field(9) == "ACK^T02^ACK"


def test_each_ack_gets_its_own_control_id_unless_one_is_given() -> None:
    header = header_of(samples.mdm())

    first = read_back(build_ack(header, "AA")).msh.field(10)
    second = read_back(build_ack(header, "AA")).msh.field(10)

    assert first
    assert first != second
    assert len(first) <= 20  # MSH-10 is ST(20) in 2.4


def test_ack_keeps_the_message_encoding_characters() -> None:
    raw = samples.mdm().replace(b"MSH|^~\\&|", b"MSH|^~\\$|", 1)

    text = ack_for(raw, "AE", NHS_PROBLEM)

    assert text.startswith("MSH|^~\\$|FLAGGING|")
    ack = read_back(text)
    assert ack.separators.subcomponent == "$"
    err1 = seg(ack, "ERR").field(1)
    assert ack.component(err1, 4).split("$")[0] == "102"


def test_ack_keeps_an_odd_field_separator() -> None:
    raw = samples.mdm(control_id="CTRL-7").translate(bytes.maketrans(b"|^~", b"^~|"))

    text = ack_for(raw, "AE", Problem("101", "TXA-12 missing", "TXA^1^12"))

    assert text.startswith("MSH^~|\\&^FLAGGING^FLAGGING^EPR^RXX^")
    ack = read_back(text)
    assert seg(ack, "MSA").field(2) == "CTRL-7"
    assert ack.component(seg(ack, "ERR").field(1), 3) == "12"


def test_ack_segments_end_with_carriage_returns_only() -> None:
    text = ack_for(samples.mdm(), "AE", Problem("101", "line one\nline two", "TXA^1^12"))

    assert text.endswith("\r")
    assert "\n" not in text
    assert text.count("\r") == 3


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="CA"):
        build_ack(header_of(samples.mdm()), "CA")


# Errors, v2.5 and later: ERR-2, ERR-3, ERR-4, ERR-8


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.8"])
def test_ae_from_2_5_on_has_err2_err3_err4_and_err8(version: str) -> None:
    ack = read_back(ack_for(samples.mdm(version=version), "AE", NHS_PROBLEM))

    msa = seg(ack, "MSA")
    err = seg(ack, "ERR")
    assert (msa.field(1), msa.field(2), msa.field(3)) == ("AE", "MSG0001", "")
    assert err.field(1) == ""
    assert err.field(2) == "PID^1^3"
    assert err.field(3) == "102^Data type error^HL70357"
    assert err.field(4) == "E"
    assert ack.unescape(err.field(8)) == NHS_PROBLEM.text


def test_ar_names_the_hl7_error_code() -> None:
    problem = Problem("200", "message type ADT is not accepted", "MSH^1^9^1^1")

    err = seg(read_back(ack_for(samples.mdm(version="2.5.1"), "AR", problem)), "ERR")

    assert err.field(2) == "MSH^1^9^1^1"
    assert err.field(3) == "200^Unsupported message type^HL70357"


def test_err_without_a_location_leaves_err2_empty() -> None:
    problem = Problem("207", "the message could not be stored now; resend it later")

    err = seg(read_back(ack_for(samples.mdm(version="2.5.1"), "AR", problem)), "ERR")

    assert err.field(2) == ""
    assert err.field(3) == "207^Application internal error^HL70357"


# Errors before 2.5: ERR-1 (ELD) and MSA-3


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4"])
def test_ae_before_2_5_has_err1_and_msa3(version: str) -> None:
    ack = read_back(ack_for(samples.mdm(version=version), "AE", NHS_PROBLEM))

    msa = seg(ack, "MSA")
    err = seg(ack, "ERR")
    assert (msa.field(1), msa.field(2)) == ("AE", "MSG0001")
    assert ack.unescape(msa.field(3)) == NHS_PROBLEM.text
    eld = err.field(1)
    assert [ack.component(eld, n) for n in (1, 2, 3)] == ["PID", "1", "3"]
    code, text, system = ack.subcomponents(ack.component(eld, 4))
    assert (code, system) == ("102", "HL70357")
    assert ack.unescape(text) == NHS_PROBLEM.text
    assert len(err.fields) == 2


def test_eld_keeps_segment_sequence_and_field_of_a_deeper_location() -> None:
    problem = Problem("201", "event MDM^T12 is not accepted", "MSH^1^9^1^2")

    err = seg(read_back(ack_for(samples.mdm(version="2.4"), "AR", problem)), "ERR")

    assert err.field(1).split("^")[:4] == [
        "MSH",
        "1",
        "9",
        "201&event MDM\\S\\T12 is not accepted&HL70357",
    ]


def test_eld_pads_a_segment_only_location() -> None:
    problem = Problem("100", "the TXA segment is missing", "TXA")

    err = seg(read_back(ack_for(samples.mdm(version="2.4"), "AE", problem)), "ERR")

    assert err.field(1).startswith("TXA^^^100&")


# Escaping


@pytest.mark.parametrize("version", ["2.4", "2.5.1"])
def test_special_characters_in_the_error_text_are_escaped_and_read_back(version: str) -> None:
    text = ack_for(samples.mdm(version=version), "AE", Problem("102", AWKWARD_TEXT, "OBX^1^5"))
    ack = read_back(text)
    expected = AWKWARD_TEXT.replace("\r", " ").replace("\n", " ")

    assert [s.name for s in ack.segments] == ["MSH", "MSA", "ERR"]
    if version == "2.4":
        assert ack.unescape(seg(ack, "MSA").field(3)) == expected
        assert len(seg(ack, "MSA").fields) == 4
    else:
        assert ack.unescape(seg(ack, "ERR").field(8)) == expected
        assert len(seg(ack, "ERR").fields) == 9


def test_escape_round_trips_through_unescape() -> None:
    seps = er7.DEFAULT_SEPARATORS
    text = "a|b^c~d\\e&f \\F\\ C:\\temp\\x"

    assert er7.unescape(escape(text, seps), seps) == text


def test_escape_uses_the_message_separators() -> None:
    seps = er7.Separators("^", "~", "|", "#", "&")

    assert escape("a^b~c|d#e", seps) == "a#F#b#S#c#R#d#E#e"
    assert escape("plain a|b\\c", seps) == "plain a#R#b\\c"


# Enhanced mode (MSH-15/16, table 0155)


@pytest.mark.parametrize(("code", "enhanced"), [("AA", "CA"), ("AE", "CE"), ("AR", "CR")])
def test_enhanced_mode_answers_with_commit_codes(code: str, enhanced: str) -> None:
    raw = samples.mdm(accept_ack="AL", app_ack="NE")

    msa = seg(read_back(ack_for(raw, code, None if code == "AA" else NHS_PROBLEM)), "MSA")

    assert msa.field(1) == enhanced
    assert msa.field(2) == "MSG0001"


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_original_mode_answers_with_application_codes(code: str) -> None:
    assert ack_code(header_of(samples.mdm()), code) == code


@pytest.mark.parametrize(
    ("accept", "code", "expected"),
    [
        ("AL", "AA", "CA"),
        ("AL", "AE", "CE"),
        ("", "AA", "CA"),  # only MSH-16 valued: an empty MSH-15 counts as AL
        ("ER", "AA", "AA"),
        ("ER", "AE", "CE"),
        ("ER", "AR", "CR"),
        ("SU", "AA", "CA"),
        ("SU", "AE", "AE"),
        ("NE", "AA", "AA"),
        ("NE", "AR", "AR"),
    ],
)
def test_ack_code_follows_table_0155(accept: str, code: str, expected: str) -> None:
    header = header_of(samples.mdm(accept_ack=accept, app_ack="AL"))

    assert ack_code(header, code) == expected


def test_unreadable_message_gets_an_original_mode_code() -> None:
    assert [ack_code(None, c) for c in ("AA", "AE", "AR")] == ["AA", "AE", "AR"]


# No header at all


def test_ack_without_a_header_is_still_well_formed() -> None:
    problem = Problem("100", "the frame does not start with an MSH segment", "MSH^1")

    text = build_ack(None, "AR", problem=problem, now=NOW, control_id="ACK0009")
    ack = read_back(text)

    assert ack.separators == er7.DEFAULT_SEPARATORS
    assert [s.name for s in ack.segments] == ["MSH", "MSA", "ERR"]
    msh = ack.msh
    assert (msh.field(3), msh.field(4), msh.field(5), msh.field(6)) == (
        "FLAGGING",
        "FLAGGING",
        "",
        "",
    )
    assert (msh.field(9), msh.field(10), msh.field(11), msh.field(12)) == (
        "ACK",
        "ACK0009",
        "P",
        "2.5.1",
    )
    assert seg(ack, "MSA").fields == ["MSA", "AR", ""]
    assert seg(ack, "ERR").field(3).startswith("100^")


# Checked by an independent parser


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_hl7apy_reads_the_ack_strictly(version: str, code: str) -> None:
    raw = samples.mdm(control_id="CTRL-99", version=version)
    problem = None if code == "AA" else Problem("102", AWKWARD_TEXT, "PID^1^3")

    text = ack_for(raw, code, problem)
    parsed = parse_message(text, find_groups=False, validation_level=STRICT)
    parsed.validate()

    assert parsed.msh.msh_12.value == version
    assert parsed.msa.msa_1.value == code
    assert parsed.msa.msa_2.value == "CTRL-99"
    assert parsed.msh.msh_5.value == samples.APPLICATION
    assert parsed.msh.msh_6.value == samples.SENDER
    if problem is not None and version >= "2.5":
        assert parsed.err.err_3.to_er7() == "102^Data type error^HL70357"
        assert parsed.err.err_4.value == "E"
        assert parsed.err.err_2.to_er7() == "PID^1^3"
    elif problem is not None:
        assert parsed.err.err_1.to_er7().startswith("PID^1^3^102&")


@pytest.mark.parametrize("code", ["AA", "AE"])
def test_hl7apy_reads_a_2_3_ack_whose_msh_is_valid_strictly(code: str) -> None:
    # hl7apy cannot name a 2.3 ACK's structure (no MSH-9.3 before 2.3.1), so the message is
    # read tolerantly and its MSH checked strictly: a third MSH-9 component is invalid in 2.3.
    problem = None if code == "AA" else NHS_PROBLEM
    text = ack_for(samples.mdm(control_id="CTRL-23", version="2.3"), code, problem)

    parsed = parse_message(text, find_groups=False)
    msh = parse_segment(text.split("\r")[0], version="2.3", validation_level=STRICT)

    assert msh.msh_9.to_er7() == "ACK^T02"
    assert (parsed.msa.msa_1.value, parsed.msa.msa_2.value) == (code, "CTRL-23")
    if problem is not None:
        assert parsed.err.err_1.to_er7().startswith("PID^1^3^102&")


def test_hl7apy_reads_an_enhanced_mode_ack() -> None:
    text = ack_for(samples.mdm(version="2.5.1", accept_ack="AL", app_ack="AL"), "AE", NHS_PROBLEM)

    parsed = parse_message(text, find_groups=False)

    assert (parsed.msa.msa_1.value, parsed.msa.msa_2.value) == ("CE", "MSG0001")


def test_hl7apy_reads_an_ack_with_unusual_encoding_characters() -> None:
    raw = samples.mdm(version="2.5.1").replace(b"MSH|^~\\&|", b"MSH|^~\\$|", 1)

    parsed = parse_message(
        ack_for(raw, "AE", Problem("101", "A & B $ C", "TXA^1^12")), find_groups=False
    )

    assert parsed.msh.msh_2.value == "^~\\$"
    assert (parsed.msa.msa_1.value, parsed.msa.msa_2.value) == ("AE", "MSG0001")
    assert parsed.err.err_2.to_er7() == "TXA^1^12"
    assert parsed.err.err_8.value == "A & B \\T\\ C"


def test_hl7apy_reads_an_ack_without_a_header() -> None:
    text = build_ack(None, "AR", problem=Problem("100", "the frame is empty", "MSH^1"), now=NOW)

    parsed = parse_message(text, find_groups=False)

    assert parsed.msa.msa_1.value == "AR"
    assert parsed.msa.msa_2.value == ""
    assert parsed.err.err_3.to_er7() == "100^Segment sequence error^HL70357"


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_msa2_echoes_msh10_byte_for_byte_even_with_a_component_separator(code: str) -> None:
    # The public corpus has MSH-10 = MDM^T02; a sender matching ACKs by the bytes it sent
    # must get exactly those bytes back, not MDM\S\T02.
    raw = samples.mdm(control_id="MDM^T02", version="2.5.1")

    text = ack_for(raw, code, None if code == "AA" else NHS_PROBLEM)

    msa = next(line for line in text.split("\r") if line.startswith("MSA|"))
    assert msa.split("|")[2] == "MDM^T02"
