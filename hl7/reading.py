"""Reading a frame without the database: decoded, checked, parsed into the domain's inputs.

A rejection found here is kept in the `Reading` (with the header, when it could be read, so
that the ACK still echoes MSH-10 and the entry names the sender it claims).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from config import Settings
from flagging.ingest import Screened
from flagging.received import DocumentInput, Receipt
from hl7 import er7
from hl7.errors import MessageRejected, content_error, rejected
from hl7.parsing import Header, check_supported, read_documents, read_header


@dataclass
class Reading:
    """What was read of one frame, and what was done with it before the transaction."""

    header: Header | None = None
    header_line: tuple[str, er7.Separators] | None = None
    documents: list[DocumentInput] | None = None
    rejection: MessageRejected | None = None
    charset: str = "latin-1"
    # Work done before the writer lock for a message that will most likely be accepted.
    screened: list[Screened | None] = field(default_factory=list)


def receipt_of(raw: bytes, header: Header | None, transport: str, peer: str) -> Receipt:
    """The facts of a frame as it arrived, for its entry among the received messages."""
    return Receipt(
        raw=raw,
        received_at=datetime.now(UTC),
        transport=transport,
        peer=peer,
        sending_facility=header.sending_facility if header else "",
        sending_application=header.sending_application if header else "",
        control_id=header.control_id if header else "",
        message_type=header.type_label if header else "",
        version=header.version if header else "",
    )


def read_header_only(raw: bytes) -> Reading:
    try:
        line, separators = er7.read_header_line(raw)
    except MessageRejected as exc:
        return Reading(header=best_effort_header(raw), rejection=_detached(exc))
    if "\x00" in line:
        return Reading(header=best_effort_header(raw), rejection=_nul_rejection(raw))
    msh = er7.Segment(line.split(separators.field))
    header = read_header(er7.Message(separators, [msh], "latin-1"))
    return Reading(header=header, header_line=(line, separators))


def _detached(exc: MessageRejected) -> MessageRejected:
    """The rejection without its traceback and context: kept in the reading, they would make
    a cycle through this frame (reading -> exception -> frame -> reading) that holds the
    message's bytes until the cyclic collector's next full pass, which on a busy listener is
    rare: its memory grew by tens of MiB in a fuzz run."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


def _nul_rejection(raw: bytes) -> MessageRejected:
    offset = raw.find(b"\x00")
    return rejected("100", f"byte 0x00 at offset {offset}: not an HL7 v2 text message", "MSH^1")


def best_effort_header(raw: bytes) -> Header | None:
    """The header of a message whose MSH-2 is unusable, read with the standard separators,
    so that its rejection still echoes MSH-10 and reaches the right sender."""
    data = raw.removeprefix(er7.UTF8_BOM).lstrip(b" \t\r\n")
    if not data.startswith(b"MSH"):
        return None
    # NUL never belongs in HL7 text, and PostgreSQL cannot store it in a text column.
    line = data.replace(b"\n", b"\r").split(b"\r", 1)[0].replace(b"\x00", b"").decode("latin-1")
    if len(line) < 8:  # a bare "MSH" line has no separator to split on
        return None
    # Read with the standard separators, so a "|" left inside a field would break the ACK.
    fields = [f.replace("|", "") for f in line.split(line[3])]
    msh = er7.Segment(["MSH", er7.DEFAULT_ENCODING_CHARACTERS, *fields[2:]])
    return read_header(er7.Message(er7.DEFAULT_SEPARATORS, [msh], "latin-1"))


def read(raw: bytes, settings: Settings) -> Reading:
    """Decode, check and parse a message without touching the database."""
    reading = read_header_only(raw)
    if reading.rejection is not None:
        return reading
    assert reading.header is not None
    try:
        check_supported(reading.header, settings.processing_ids)
        if b"\x00" in raw:
            raise _nul_rejection(raw)
        message = er7.parse(raw, settings.fallback_charset, reading.header_line)
        reading.charset = message.charset
        assert reading.header_line is not None
        if message.msh.fields != reading.header_line[0].split(message.separators.field):
            # Decoding per MSH-18 changed the header line (non-ASCII in MSH): read it again,
            # and check it again: windows-1252 reads 0x85 as an ellipsis where latin-1 read
            # a control character that the first check stripped as whitespace.
            reading.header = read_header(message)
            check_supported(reading.header, settings.processing_ids)
        header = reading.header
        if not header.control_id:
            raise content_error("101", "MSH-10 message control id is missing", "MSH^1^10")
        reading.documents = read_documents(message, header)
    except MessageRejected as exc:
        reading.rejection = _detached(exc)
    return reading
