"""ER7 (pipe-delimited) messages: charset decoding, segment splitting, escapes.

A single pass over the text that keeps each segment as a list of raw field strings. Only the
fields the service reads are split further, on demand. This costs tens of microseconds where
hl7apy's whole-message parse costs tens of milliseconds (see bench/ingest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hl7.errors import content_error, rejected

UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_ENCODING_CHARACTERS = "^~\\&"

# HL7 table 0211 (and the spellings real senders use) -> Python codec. UTF-16/32 cannot
# travel over MLLP, whose frame bytes would collide with them.
CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso8859-1",
    "ISO IR100": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "WINDOWS-1252": "windows-1252",
    "CP1252": "windows-1252",
}

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_TEXT_SEGMENTS = frozenset({"OBX", "NTE"})
# \Cxxyy\ single-byte and \Mxxyy[zz]\ multi-byte charset switches (HL7 v2 section 2.7.2).
_CHARSET_ESCAPE = re.compile(r"C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4}(?:[0-9A-Fa-f]{2})?")


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_SEPARATORS = Separators()


class Segment:
    """One segment: `fields[0]` is its name; `field(n)` follows HL7 numbering (MSH-1 included).

    A plain slotted class: a message has dozens of segments, and a dataclass's generated
    __init__ cost more than splitting the line."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return f"Segment({self.fields!r})"

    @property
    def name(self) -> str:
        return self.fields[0]

    def field(self, number: int) -> str:
        # MSH-1 is the field separator itself, so MSH fields sit one place to the left.
        index = number - 1 if self.fields[0] == "MSH" else number
        return self.fields[index] if 0 < index < len(self.fields) else ""


class Message:
    """A decoded message: its separators, segments and the charset it was read with."""

    def __init__(self, separators: Separators, segments: list[Segment], charset: str) -> None:
        self.separators = separators
        self.segments = segments
        self.charset = charset

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def first(self, name: str) -> Segment | None:
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    # Field access helpers: `rep` 0 is the first repetition, components count from 1.
    def repetitions(self, value: str) -> list[str]:
        return value.split(self.separators.repetition)

    def component(self, value: str, number: int, rep: int = 0) -> str:
        reps = value.split(self.separators.repetition)
        if rep >= len(reps):
            return ""
        parts = reps[rep].split(self.separators.component)
        return parts[number - 1].strip() if number <= len(parts) else ""

    def components(self, value: str) -> list[str]:
        """Components of the first repetition, stripped and unescaped."""
        first = value.split(self.separators.repetition, 1)[0]
        return [self.unescape(p.strip()) for p in first.split(self.separators.component)]

    def subcomponents(self, value: str) -> list[str]:
        return [p.strip() for p in value.split(self.separators.subcomponent)]

    def unescape(self, value: str, *, formatted: bool = False) -> str:
        return unescape(value, self.separators, formatted=formatted)


def read_header_line(raw: bytes) -> tuple[str, Separators]:
    """Find the MSH segment at the start of `raw` and read its separators.

    Tolerates a UTF-8 byte order mark and whitespace before MSH; anything else there is
    rejected, because the frame is not an HL7 v2 message.
    """
    data = raw[3:] if raw.startswith(UTF8_BOM) else raw
    data = data.lstrip(b" \t\r\n")
    if not data:
        raise rejected("100", "the frame is empty: an HL7 v2 message starts with MSH", "MSH^1")
    if not data.startswith(b"MSH"):
        raise rejected(
            "100", "the frame does not start with an MSH segment: not an HL7 v2 message", "MSH^1"
        )
    end = len(data)
    for terminator in (b"\r", b"\n"):
        pos = data.find(terminator)
        if pos != -1:
            end = min(end, pos)
    line = data[:end].decode("latin-1")
    if len(line) < 8:
        raise rejected("100", "the MSH segment is truncated", "MSH^1")
    field_sep = line[3]
    if field_sep.isalnum() or field_sep.isspace():
        raise rejected("102", f"MSH-1 field separator {field_sep!r} is not usable", "MSH^1^1")
    encoding = line[4:].split(field_sep, 1)[0]
    if encoding == "^~\\\\&":
        # The escape character doubled by a sender's string escaping: a common real-world slip.
        encoding = DEFAULT_ENCODING_CHARACTERS
    # 2.7 added a fifth character (truncation, usually #); we read the first four.
    chars = encoding[:4]
    if (
        len(chars) < 4
        or len(set(chars)) != 4
        or field_sep in chars
        or any(c.isalnum() or c.isspace() for c in chars)
    ):
        raise content_error(
            "102",
            "MSH-2 encoding characters must be four distinct punctuation characters "
            "(usually ^~\\&)",
            "MSH^1^2",
        )
    return line, Separators(field_sep, chars[0], chars[1], chars[2], chars[3])


def codec_for(declared: str) -> str | None:
    """The Python codec for an MSH-18 value, or None when we do not know it."""
    return CHARSETS.get(declared.strip().upper())


def decode(raw: bytes, declared: str, fallback: str) -> tuple[str, str]:
    """Decode the message bytes per MSH-18, or UTF-8 then `fallback` when MSH-18 is empty.

    Returns the text and the codec used. A message whose bytes do not fit the charset it
    declares is a content error: reading it another way could corrupt clinical text.
    """
    data = raw[3:] if raw.startswith(UTF8_BOM) else raw
    if declared:
        codec = codec_for(declared)
        if codec is None:
            raise content_error(
                "103", f"MSH-18 character set {declared!r} is not supported", "MSH^1^18"
            )
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError as exc:
            raise content_error(
                "102",
                f"the message declares {declared} in MSH-18 but byte 0x{data[exc.start]:02X} "
                f"at offset {exc.start} is not valid in it",
                "MSH^1^18",
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode(fallback, errors="replace"), fallback


def split(value: str, separator: str) -> list[str]:
    """`value.split(separator)` for a one-character separator, faster on a long value with
    few separators (a message with a 200 KB Base64 PDF in one OBX-5): str.find looks for the
    separator with memchr, where str.split tests every character in turn (60 us for 200 KB
    against 5). After 32 pieces the rest is left to str.split, so many short lines (a long
    letter) cost no more than before."""
    if len(value) < _LONG:
        return value.split(separator)
    pieces: list[str] = []
    start = 0
    for _ in range(32):
        end = value.find(separator, start)
        if end < 0:
            pieces.append(value[start:])
            return pieces
        pieces.append(value[start:end])
        start = end + 1
    pieces.extend(value[start:].split(separator))
    return pieces


_LONG = 4096


def split_segments(text: str, separators: Separators) -> list[Segment]:
    """Split on CR, LF or CRLF and skip blank lines.

    A line that does not start with a segment name, after an OBX or NTE, is text that a sender
    broke with a bare line feed inside a field (an OBX-5 paragraph, typically): it is kept,
    joined to the last field of that segment, rather than silently dropped. Elsewhere such a
    line is not part of anything we read.
    """
    text = text.lstrip(" \t\r\n")
    if "\n" in text:  # a look for one is far cheaper than replacing none (a 200 KB ORU)
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = split(text, "\r")
    field = separators.field
    segments: list[Segment] = []
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        fields = line.split(field) if len(line) < _LONG else split(line, field)
        if _SEGMENT_ID.match(fields[0]):
            segments.append(Segment(fields))
        elif segments and segments[-1].name in _TEXT_SEGMENTS:
            segments[-1].fields[-1] += "\n" + line
    return segments


def parse(
    raw: bytes, fallback_charset: str, header_line: tuple[str, Separators] | None = None
) -> Message:
    """Decode and split a whole message; raises MessageRejected with an ERR-ready problem.

    `header_line` is `read_header_line(raw)`, if the caller has it already."""
    line, separators = header_line or read_header_line(raw)
    header = Segment(line.split(separators.field))
    declared = header.field(18).split(separators.repetition, 1)[0].strip()
    text, codec = decode(raw, declared, fallback_charset)
    return Message(separators, split_segments(text, separators), codec)


# Escape sequences (HL7 v2 section 2.7). Formatting sequences matter for FT text only.
def unescape(value: str, separators: Separators, *, formatted: bool = False) -> str:
    """Replace escape sequences with the characters or line breaks they stand for."""
    esc = separators.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end == -1:  # a lone escape character: keep it as it is
            out.append(value[i:])
            break
        seq = value[i + 1 : end]
        decoded = _escape_sequence(seq, separators, formatted)
        # Not an escape we know (a Windows path, say): keep the characters as they came.
        out.append(esc + seq + esc if decoded is None else decoded)
        i = end + 1
    return "".join(out)


def _escape_sequence(seq: str, separators: Separators, formatted: bool) -> str | None:
    simple = {
        "F": separators.field,
        "S": separators.component,
        "T": separators.subcomponent,
        "R": separators.repetition,
        "E": separators.escape,
    }
    if seq in simple:
        return simple[seq]
    if seq in ("H", "N"):  # highlighting on/off: no plain-text equivalent
        return ""
    if seq.startswith("X") and len(seq) > 1:
        try:
            # NUL is not text (and PostgreSQL refuses it in text columns).
            return bytes.fromhex(seq[1:]).decode("latin-1").replace("\x00", "")
        except ValueError:
            return None
    if seq.startswith("."):  # formatting commands (.br, .sp, .in, .ti, .sk, .ce, .fi, .nf)
        command = seq[1:3]
        if command in ("br", "sp"):
            return "\n"
        return " " if formatted and command in ("sk", "in", "ti") else ""
    if _CHARSET_ESCAPE.fullmatch(seq) or (seq[:1] == "Z" and seq[1:].isalnum()):
        return ""  # charset switches (hex only, so \Cardiology\ in a path stays), local escapes
    return None
