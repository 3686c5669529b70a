"""The annotated HL7 v2 message a practice receives: the original, flagged, addressed to it.

Pure string work on the stored ER7: the ZFL segment of DESIGN.md replaces any the sender put in
(or is added at the end), MSH-5/6 name the practice, MSH-10 is new. An ORU^R01 may carry reports
for several patients or practices: only the patient and the OBR group of the document are kept.
Values are escaped with the message's own separators, and the text is written back in the
character set it came in (MSH-18 is left as it was).
"""

from __future__ import annotations

from datetime import UTC, datetime

from flagging.zfl import Annotation, Flag
from hl7 import er7
from hl7.ack import escape
from hl7.errors import HL7Error

ZFL = "ZFL"
NOPAT_TEXT = (
    "no disclosure to patient, family or caregivers without attending provider's authorization"
)
NOPAT_SYSTEM = "v3-ActCode"
REASON_SYSTEM = "FLAGREASON"


class AnnotationError(HL7Error):
    """A stored message that cannot be annotated for the document asked for."""


def hl7_datetime(value: datetime | None) -> str:
    """A DTM in UTC with its offset, so that no reader has to guess the time zone."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def zfl_fields(flag: Flag, separators: er7.Separators) -> list[str]:
    """ZFL-1..8 (DESIGN.md, "ZFL: the flag segment")."""
    c = separators.component

    def coded(*parts: str) -> str:
        return c.join(escape(p, separators) for p in parts).rstrip(c)

    return [
        ZFL,
        "1",
        flag.status,
        coded("NOPAT", NOPAT_TEXT, NOPAT_SYSTEM) if flag.nopat else "",
        coded(flag.reason, flag.reason_text, REASON_SYSTEM) if flag.reason else "",
        coded(flag.decided_by_code, flag.decided_by_name)
        if flag.decided_by_code or flag.decided_by_name
        else "",
        hl7_datetime(flag.decided_at),
        hl7_datetime(flag.withhold_until),
        escape(flag.source, separators),
    ]


def _set_field(fields: list[str], number: int, value: str) -> None:
    """Set MSH-`number` (MSH-1 is the separator itself, so MSH-n sits at index n-1)."""
    index = number - 1
    if len(fields) <= index:
        fields.extend([""] * (index + 1 - len(fields)))
    fields[index] = value


def _oru_group(
    segments: list[er7.Segment], number: str, separators: er7.Separators
) -> list[er7.Segment]:
    """The header, and the patient and OBR group whose OBR-3 is `number`."""
    header: list[er7.Segment] = []
    # Each patient: its own segments, then its order groups ([ORC] OBR and what follows).
    patients: list[tuple[list[er7.Segment], list[list[er7.Segment]]]] = []
    for segment in segments:
        name = segment.name
        if name == "PID":
            patients.append(([segment], []))
        elif not patients:
            header.append(segment)
        elif name == "ORC" or (
            name == "OBR" and not (patients[-1][1] and patients[-1][1][-1][-1].name == "ORC")
        ):
            patients[-1][1].append([segment])
        elif patients[-1][1]:
            patients[-1][1][-1].append(segment)
        else:
            patients[-1][0].append(segment)
    for patient, orders in patients:
        for order in orders:
            obr = next((s for s in order if s.name == "OBR"), None)
            filler = obr.field(3).split(separators.repetition, 1)[0] if obr else ""
            if filler.split(separators.component, 1)[0].strip() == number:
                return [*header, *patient, *order]
    raise AnnotationError(f"the stored ORU^R01 has no OBR group with OBR-3 {number!r}")


def annotate(
    raw: bytes, annotation: Annotation, *, fallback_charset: str = "windows-1252"
) -> bytes:
    """The stored message `raw`, annotated for the practice (see the module docstring)."""
    line, separators = er7.read_header_line(raw)
    header = er7.Segment(line.split(separators.field))
    declared = header.field(18).split(separators.repetition, 1)[0].strip()
    text, codec = er7.decode(raw, declared, fallback_charset)
    segments = er7.split_segments(text, separators)
    if not segments or segments[0].name != "MSH":
        raise AnnotationError("the stored message does not start with MSH")
    if annotation.kind == "ORU":
        segments = _oru_group(segments, annotation.document_number, separators)

    msh = list(segments[0].fields)
    practice = escape(annotation.practice_ods_code, separators)
    _set_field(msh, 5, practice)  # receiving application
    _set_field(msh, 6, practice)  # receiving facility
    _set_field(msh, 10, escape(annotation.control_id, separators))

    zfl = separators.field.join(zfl_fields(annotation.flag, separators)).rstrip(separators.field)
    lines = [separators.field.join(msh)]
    placed = False
    for segment in segments[1:]:
        if segment.name == ZFL:
            if not placed:  # the sender's flag is replaced where it stood
                lines.append(zfl)
                placed = True
            continue
        lines.append(separators.field.join(segment.fields))
    if not placed:
        lines.append(zfl)
    return ("\r".join(lines) + "\r").encode(codec, errors="replace")
