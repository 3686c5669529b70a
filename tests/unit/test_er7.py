"""ER7 text: finding MSH, separators, charsets, segment splitting and escape sequences."""

from __future__ import annotations

import pytest

from hl7 import er7
from hl7.er7 import DEFAULT_SEPARATORS, Separators, parse, unescape
from hl7.errors import MessageRejected
from tests import samples

FALLBACK = "windows-1252"
SEGMENT_NAMES = ["MSH", "EVN", "PID", "PD1", "PV1", "TXA", "OBX", "OBX"]
ODD_SEPARATORS = bytes.maketrans(b"|^~", b"^~|")  # field ^, component ~, repetition |


def names(message: er7.Message) -> list[str]:
    return [s.name for s in message.segments]


def rejection(raw: bytes) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        parse(raw, FALLBACK)
    return info.value


def with_charset(charset: str, family: bytes) -> bytes:
    """An MDM message declaring `charset` in MSH-18 whose patient family name is `family`."""
    raw = samples.mdm(charset=charset)
    return raw.replace(b"TESTPATIENT", family)


# Segment separators


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segments_split_on_cr_lf_or_crlf(separator: str) -> None:
    raw = samples.mdm().replace(b"\r", separator.encode())

    message = parse(raw, FALLBACK)

    assert names(message) == SEGMENT_NAMES
    assert message.first("PID") is not None
    assert message.first("PID").field(5) == "TESTPATIENT^ALEX"


def test_mixed_segment_separators_in_one_message_are_all_understood() -> None:
    lines = samples.mdm().decode().split("\r")[:-1]
    seps = ["\r", "\n", "\r\n", "\n", "\r", "\r\n", "\n"]
    raw = "".join(line + sep for line, sep in zip(lines, [*seps, "\r"], strict=True)).encode()

    assert names(parse(raw, FALLBACK)) == SEGMENT_NAMES


def test_blank_lines_between_segments_are_skipped() -> None:
    raw = samples.mdm().replace(b"\rPID", b"\r\r\n\n  \rPID").replace(b"\rTXA", b"\n\nTXA")

    assert names(parse(raw, FALLBACK)) == SEGMENT_NAMES


def test_trailing_whitespace_after_the_last_segment_is_ignored() -> None:
    assert names(parse(samples.mdm() + b"\r\n\r\n  ", FALLBACK)) == SEGMENT_NAMES


# Finding MSH


def test_utf8_byte_order_mark_before_msh_is_tolerated() -> None:
    message = parse(er7.UTF8_BOM + samples.mdm(), FALLBACK)

    assert names(message) == SEGMENT_NAMES
    assert message.msh.field(10) == "MSG0001"
    assert message.charset == "utf-8"


def test_byte_order_mark_with_a_declared_charset_is_not_decoded_as_text() -> None:
    message = parse(er7.UTF8_BOM + samples.mdm(charset="8859/1"), FALLBACK)

    assert message.msh.name == "MSH"
    assert message.charset == "iso8859-1"


def test_leading_whitespace_before_msh_is_tolerated() -> None:
    message = parse(b"\r\n \t\n" + samples.mdm(), FALLBACK)

    assert names(message) == SEGMENT_NAMES


@pytest.mark.parametrize(
    "raw",
    [b"hello\rMSH|^~\\&|EPR", b"PID|1||9990000018\rMSH|^~\\&|EPR", b"\x00MSH|^~\\&|EPR"],
)
def test_anything_but_whitespace_before_msh_is_rejected(raw: bytes) -> None:
    error = rejection(raw)

    assert error.ack_code == "AR"
    assert error.problem.code == "100"
    assert error.problem.location == "MSH^1"


@pytest.mark.parametrize("raw", [b"", b"\r\n \t", er7.UTF8_BOM])
def test_empty_frame_is_rejected(raw: bytes) -> None:
    error = rejection(raw)

    assert error.ack_code == "AR"
    assert error.problem.code == "100"
    assert "empty" in error.problem.text


@pytest.mark.parametrize("raw", [b"MSH", b"MSH|^~\\", b"MSH|^~\r", b"MSH|^\nPID|1"])
def test_truncated_msh_is_rejected(raw: bytes) -> None:
    error = rejection(raw)

    assert error.ack_code == "AR"
    assert error.problem.code == "100"
    assert "truncated" in error.problem.text


def test_shortest_complete_msh_is_read() -> None:
    message = parse(b"MSH|^~\\&", FALLBACK)

    assert message.separators == DEFAULT_SEPARATORS
    assert names(message) == ["MSH"]


# Separators


def test_standard_separators_are_read_from_msh() -> None:
    message = parse(samples.mdm(), FALLBACK)

    assert message.separators == Separators("|", "^", "~", "\\", "&")
    assert message.separators.encoding_characters == "^~\\&"
    assert message.msh.field(2) == "^~\\&"
    assert message.msh.field(9) == "MDM^T02^MDM_T02"


def test_odd_but_valid_separators_are_read_from_msh() -> None:
    raw = samples.mdm().translate(ODD_SEPARATORS)
    assert raw.startswith(b"MSH^~|\\&^EPR^RXX^")

    message = parse(raw, FALLBACK)

    assert message.separators == Separators("^", "~", "|", "\\", "&")
    assert names(message) == SEGMENT_NAMES
    assert message.msh.field(10) == "MSG0001"
    assert message.component(message.msh.field(9), 2) == "T02"
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid.field(3), 1, rep=1) == "H123456"


def test_fifth_encoding_character_of_v2_7_is_ignored() -> None:
    raw = samples.mdm().replace(b"MSH|^~\\&|", b"MSH|^~\\&#|", 1)

    assert parse(raw, FALLBACK).separators == DEFAULT_SEPARATORS


def test_doubled_escape_character_in_msh2_is_read_as_the_standard_encoding() -> None:
    raw = samples.mdm().replace(b"MSH|^~\\&|", b"MSH|^~\\\\&|", 1)

    assert parse(raw, FALLBACK).separators == DEFAULT_SEPARATORS


@pytest.mark.parametrize("msh2", [b"&&&&", b"^~\\", b"^~\\^", b"^~A&", b"^~ &", b"^~"])
def test_unusable_encoding_characters_are_a_content_error(msh2: bytes) -> None:
    raw = samples.mdm().replace(b"MSH|^~\\&|", b"MSH|" + msh2 + b"|", 1)

    error = rejection(raw)

    assert error.ack_code == "AE"
    assert error.problem.code == "102"
    assert error.problem.location == "MSH^1^2"


def test_encoding_characters_that_repeat_the_field_separator_are_a_content_error() -> None:
    error = rejection(b"MSH^~^\\&^EPR^RXX")

    assert (error.ack_code, error.problem.code) == ("AE", "102")


@pytest.mark.parametrize("sep", [b"A", b"1", b" ", b"\t"])
def test_letter_digit_or_space_as_field_separator_is_rejected(sep: bytes) -> None:
    error = rejection(b"MSH" + sep + b"^~\\&" + sep + b"EPR" + sep + b"RXX")

    assert error.ack_code == "AR"
    assert (error.problem.code, error.problem.location) == ("102", "MSH^1^1")


# Character sets (MSH-18)


def test_8859_1_is_decoded_as_latin_1() -> None:
    message = parse(with_charset("8859/1", "Beyonc\xe9".encode("latin-1")), FALLBACK)

    assert message.charset == "iso8859-1"
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid.field(5), 1) == "Beyonc\u00e9"


def test_unicode_utf8_is_decoded_as_utf8() -> None:
    message = parse(
        with_charset("UNICODE UTF-8", "Zo\u00eb \u0141\u00f3d\u017a".encode()), FALLBACK
    )

    assert message.charset == "utf-8"
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid.field(5), 1) == "Zo\u00eb \u0141\u00f3d\u017a"


def test_charset_names_are_matched_without_regard_to_case() -> None:
    assert parse(with_charset("unicode utf-8", b"X"), FALLBACK).charset == "utf-8"


def test_only_the_first_repetition_of_msh18_decides_the_charset() -> None:
    raw = with_charset("8859/1~UNICODE UTF-8", "\xe9".encode("latin-1"))

    assert parse(raw, FALLBACK).charset == "iso8859-1"


def test_ascii_declared_but_a_non_ascii_byte_sent_is_a_content_error() -> None:
    error = rejection(with_charset("ASCII", "Beyonc\xe9".encode("latin-1")))

    assert error.ack_code == "AE"
    assert (error.problem.code, error.problem.location) == ("102", "MSH^1^18")
    assert "0xE9" in error.problem.text


def test_ascii_declared_and_sent_is_decoded() -> None:
    assert parse(with_charset("ASCII", b"PLAIN"), FALLBACK).charset == "ascii"


def test_unknown_charset_is_a_content_error() -> None:
    error = rejection(with_charset("KLINGON", b"X"))

    assert error.ack_code == "AE"
    assert (error.problem.code, error.problem.location) == ("103", "MSH^1^18")


def test_utf16_cannot_be_declared() -> None:
    assert rejection(with_charset("UNICODE UTF-16", b"X")).problem.code == "103"


def test_without_msh18_valid_utf8_is_read_as_utf8() -> None:
    message = parse(samples.mdm().replace(b"TESTPATIENT", "S\u00e9an".encode()), FALLBACK)

    assert message.charset == "utf-8"
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid.field(5), 1) == "S\u00e9an"


def test_without_msh18_invalid_utf8_is_read_with_the_fallback_charset() -> None:
    raw = samples.mdm().replace(b"Discharged home.", b"Patient\x92s home \x80100")

    message = parse(raw, FALLBACK)

    assert message.charset == FALLBACK
    assert message.segments[6].field(5) == "Patient\u2019s home \u20ac100"


def test_fallback_charset_is_the_one_configured() -> None:
    raw = samples.mdm().replace(b"TESTPATIENT", b"S\xe9an")

    message = parse(raw, "iso8859-1")

    assert message.charset == "iso8859-1"
    pid = message.first("PID")
    assert pid is not None
    assert message.component(pid.field(5), 1) == "S\u00e9an"


# Field access


def test_msh_fields_follow_hl7_numbering() -> None:
    msh = parse(samples.mdm(), FALLBACK).msh

    assert msh.field(3) == samples.APPLICATION
    assert msh.field(4) == samples.SENDER
    assert msh.field(10) == "MSG0001"
    assert msh.field(12) == "2.4"
    assert msh.field(40) == ""


def test_other_segments_fields_follow_hl7_numbering() -> None:
    message = parse(samples.mdm(), FALLBACK)
    txa = message.first("TXA")

    assert txa is not None
    assert txa.field(12) == "DOC-1"
    assert txa.field(2) == "DS"
    assert txa.field(0) == ""
    assert txa.field(99) == ""


def test_components_and_repetitions_count_from_one_and_zero() -> None:
    message = parse(samples.mdm(), FALLBACK)
    pid = message.first("PID")
    assert pid is not None

    assert message.repetitions(pid.field(3)) == ["9990000018^^^NHS^NH", "H123456^^^RXX^MR"]
    assert message.component(pid.field(3), 5) == "NH"
    assert message.component(pid.field(3), 5, rep=1) == "MR"
    assert message.component(pid.field(3), 9) == ""
    assert message.component(pid.field(3), 1, rep=5) == ""


def test_components_are_stripped_and_unescaped() -> None:
    message = parse(samples.mdm(), FALLBACK)

    assert message.components(" A \\T\\ B ^ C~D") == ["A & B", "C"]
    assert message.subcomponents("x& y &z") == ["x", "y", "z"]


# Escape sequences


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("\\X41\\", "A"),
        ("\\X414243\\", "ABC"),
        ("line 1\\.br\\line 2", "line 1\nline 2"),
        ("space\\.sp\\after", "space\nafter"),
        ("\\H\\bold\\N\\ text", "bold text"),
        ("centre \\.ce\\me", "centre me"),
        ("\\C2842\\ascii", "ascii"),
        ("\\M2442\\x\\M244228\\y", "xy"),
        ("\\Zlocal\\z", "z"),
        ("no escapes at all", "no escapes at all"),
    ],
)
def test_escape_sequences_are_replaced(escaped: str, plain: str) -> None:
    assert unescape(escaped, DEFAULT_SEPARATORS) == plain


@pytest.mark.parametrize(
    "text",
    [
        "C:\\temp\\x",
        "S:\\Cardiology\\letters",
        "D:\\Main\\file",
        "\\XZZ\\",
        "\\X\\",
        "a \\\\ b",
        "costs 50\\",
    ],
)
def test_unknown_escape_sequences_are_kept_literally(text: str) -> None:
    assert unescape(text, DEFAULT_SEPARATORS) == text


def test_escapes_follow_the_message_separators() -> None:
    odd = Separators("^", "~", "|", "#", "&")

    assert unescape("a#F#b#S#c#R#d#E#e", odd) == "a^b~c|d#e"
    assert unescape("a\\F\\b", odd) == "a\\F\\b"


def test_indent_commands_become_a_space_only_in_formatted_text() -> None:
    assert unescape("a\\.in+4\\b", DEFAULT_SEPARATORS, formatted=True) == "a b"
    assert unescape("a\\.in+4\\b", DEFAULT_SEPARATORS) == "ab"


def test_message_unescape_uses_its_own_separators() -> None:
    message = parse(samples.mdm().translate(ODD_SEPARATORS), FALLBACK)

    assert message.unescape("x\\F\\y\\S\\z") == "x^y~z"


def test_text_broken_by_a_bare_line_feed_is_kept_in_the_field_before_it() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|20240101||MDM^T02|1|P|2.4\rOBX|1|TX|X||Line one\nline two||\r"
    message = er7.parse(raw, "windows-1252")
    obx = message.segments[-1]
    assert obx.name == "OBX"
    assert "Line one" in obx.field(5)
    assert obx.fields[-1].endswith("\nline two||")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "|",
        "a|b|c",
        "|" + "A" * 200_000 + "|",  # a Base64 OBX-5 between its field separators
        "OBX|1|ED|PDF||^AP^PDF^Base64^" + "QUJD" * 50_000 + "||||||F",
        "|".join(f"line {i}" for i in range(2_000)),  # many short fields: past the first 32
        "A" * 5_000 + "|" * 40 + "B" * 5_000,
    ],
)
def test_split_gives_what_str_split_gives(value: str) -> None:
    assert er7.split(value, "|") == value.split("|")
