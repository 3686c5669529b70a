"""hl7apy where correctness matters more than speed: validating a message before go-live, and
labelling every field of a stored message with its HL7 name.

The hot path keeps our own parser (hl7/er7.py): hl7apy takes tens of milliseconds a message.
Here it does what it is good at: structure validation against the HL7 v2 reference of the
message's version (`validate`, for `flagging messages validate`), and the names of fields from
its reference tables (`inspect`, for `flagging messages show --fields` and the admin page).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hl7apy import SUPPORTED_LIBRARIES
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Field
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from hl7 import er7
from hl7.errors import MessageRejected

FALLBACK_VERSION = "2.5"  # for names, when a message's version is one hl7apy does not know

# hl7apy's reference has the fields' names but not the segments': these are HL7's, for the
# segments a hospital document message carries (others show their code alone).
SEGMENT_NAMES = {
    "MSH": "Message Header",
    "EVN": "Event Type",
    "PID": "Patient Identification",
    "PD1": "Patient Additional Demographic",
    "PV1": "Patient Visit",
    "PV2": "Patient Visit - Additional Information",
    "NK1": "Next of Kin / Associated Parties",
    "TXA": "Transcription Document Header",
    "ORC": "Common Order",
    "OBR": "Observation Request",
    "OBX": "Observation/Result",
    "NTE": "Notes and Comments",
    "SPM": "Specimen",
    "ZFL": "Flag (this service's visibility segment)",
}


@dataclass(frozen=True)
class Issue:
    """One problem hl7apy found, named by where (PID-3, MSH-9.3, OBX) and the HL7 name."""

    severity: str  # error | warning
    location: str
    name: str
    text: str


@dataclass(frozen=True)
class FieldView:
    location: str  # PID-3, or PID-3[2] for a repetition after the first
    name: str  # Patient Identifier List
    value: str


@dataclass(frozen=True)
class SegmentView:
    code: str
    name: str
    fields: list[FieldView]


def _library_version(version: str) -> str:
    return version if version in SUPPORTED_LIBRARIES else FALLBACK_VERSION


@lru_cache(maxsize=4096)
def field_name(segment: str, number: int, version: str) -> str:
    """A field's HL7 name from hl7apy's reference ("Patient Identifier List"), or ""."""
    try:
        long_name = Field(f"{segment}_{number}", version=_library_version(version)).long_name
    except HL7apyException:
        return ""
    return str(long_name or "").replace("_", " ").title()


def _message_text(raw: bytes) -> tuple[str, er7.Message]:
    message = er7.parse(raw, "windows-1252")
    text = "\r".join(message.separators.field.join(s.fields) for s in message.segments)
    return text, message


_FIELD = re.compile(r"\b([A-Z][A-Z0-9]{2})_(\d+)\b(?:\.([A-Z][A-Z0-9]{1,3})_(\d+))?")
_SEGMENT = re.compile(r"<Segment ([A-Z][A-Z0-9]{2})>|\.([A-Z][A-Z0-9]{2})$")


def _issue(severity: str, text: str, version: str) -> Issue:
    found = _FIELD.search(text)
    if found:
        segment, number = found.group(1), int(found.group(2))
        location = f"{segment}-{number}" + (f".{found.group(4)}" if found.group(4) else "")
        return Issue(severity, location, field_name(segment, number, version), text)
    seg = _SEGMENT.search(text)
    if seg:
        code = seg.group(1) or seg.group(2)
        return Issue(severity, code, SEGMENT_NAMES.get(code, ""), text)
    return Issue(severity, "", "", text)


def validate(raw: bytes) -> list[Issue]:
    """Check a message's structure against the HL7 reference of its version (hl7apy).

    Errors: what the standard requires and the message lacks or breaks (a missing required
    field, a field or segment where none may be, a wrong data type); warnings: values outside
    HL7 tables or over maximum lengths. An empty list: a clean message."""
    try:
        text, message = _message_text(raw)
    except MessageRejected as exc:
        return [Issue("error", exc.problem.location, "", exc.problem.text)]
    version = message.msh.field(12).split(message.separators.component)[0]
    try:
        parsed = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except HL7apyException as exc:
        return [Issue("error", "", "", f"hl7apy cannot read the message: {exc}")]
    with tempfile.TemporaryDirectory() as folder:
        # hl7apy raises only the first error; its report file holds all of them.
        report = Path(folder) / "report.txt"
        with contextlib.suppress(HL7apyException):  # every error is in the report
            Validator.validate(parsed, report_file=str(report))
        lines = report.read_text().splitlines() if report.exists() else []
    issues: list[Issue] = []
    for line in lines:
        severity, _, detail = line.partition(": ")
        issues.append(_issue(severity.lower(), detail, version))
    return issues


def inspect(raw: bytes) -> list[SegmentView]:
    """Every segment and field of a message, each labelled with its HL7 name."""
    _, message = _message_text(raw)
    separators = message.separators
    version = message.msh.field(12).split(separators.component)[0]
    views: list[SegmentView] = []
    for segment in message.segments:
        code = segment.fields[0]
        fields: list[FieldView] = []
        for index, value in enumerate(segment.fields[1:], start=1):
            # MSH-1 is the field separator itself, so MSH's list starts one later.
            number = index + 1 if code == "MSH" else index
            if not value:
                continue
            name = field_name(code, number, version)
            repetitions = (
                [value] if code == "MSH" and number == 2 else value.split(separators.repetition)
            )
            for count, repetition in enumerate(repetitions, start=1):
                if repetition:
                    suffix = f"[{count}]" if count > 1 else ""
                    fields.append(FieldView(f"{code}-{number}{suffix}", name, repetition))
        views.append(SegmentView(code, SEGMENT_NAMES.get(code, ""), fields))
    return views
