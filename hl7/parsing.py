"""From a split ER7 message to the domain's inputs: the header, the patient, the documents.

Field numbers follow HL7 v2.5.1 (chapters 2, 3, 7 and 9); 2.3 and 2.4 put the same data in
the same places for everything read here. Longer than 400 lines because MDM (TXA) and ORU
(OBR/OBX) share the readers of MSH, PID, PD1, ZFL and content written here once; split by
message type, each half would need the other's helpers.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from flagging import nhs_number
from flagging.models import Reason, VersionChange, Visibility
from flagging.received import DocumentInput, Patient
from flagging.visibility import SYSTEM, Actor, SourceFlag
from flagging.vocabulary import DOCUMENT_TYPES
from hl7.er7 import Message, Segment, Separators, unescape
from hl7.errors import content_error, rejected

MDM_EVENTS: dict[str, VersionChange] = {
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
# The even-numbered events are "with content": they must carry the document in OBX.
MDM_EVENTS_WITH_CONTENT = frozenset({"T02", "T04", "T06", "T08", "T10"})
SUPPORTED_EVENTS = {"MDM": frozenset(MDM_EVENTS), "ORU": frozenset({"R01"})}

TEXT_VALUE_TYPES = frozenset({"TX", "FT", "ST"})
PRACTICE_CODE = re.compile(r"^[A-Z]\d{5}$")
UK_TIME = ZoneInfo("Europe/London")

# Table 0191 type of referenced data -> MIME major type.
_MIME_MAJOR = {
    "AP": "application",
    "APPLICATION": "application",
    "TEXT": "text",
    "TX": "text",
    "IM": "image",
    "IMAGE": "image",
    "AU": "audio",
    "AUDIO": "audio",
    "MULTIPART": "multipart",
}
TEXT_PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Header:
    """The MSH fields that route, check and acknowledge a message."""

    separators: Separators
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    control_id: str = ""
    message_type: str = ""
    trigger_event: str = ""
    version: str = ""
    processing_id: str = ""
    accept_ack_type: str = ""
    application_ack_type: str = ""
    # MSH-3..6 exactly as sent, echoed swapped in the ACK; raw MSH-10, echoed in MSA-2 byte for
    # byte (a sender matches ACKs to messages by the bytes it sent: `MDM^T02` stays so).
    msh10: str = ""
    msh3: str = ""
    msh4: str = ""
    msh5: str = ""
    msh6: str = ""

    @property
    def type_label(self) -> str:
        return (
            f"{self.message_type}^{self.trigger_event}"
            if self.trigger_event
            else (self.message_type)
        )

    @property
    def enhanced_mode(self) -> bool:
        """MSH-15 or MSH-16 valued means enhanced acknowledgement (table 0155)."""
        return bool(self.accept_ack_type or self.application_ack_type)


def _hd(message: Message, value: str) -> str:
    """An HD's namespace id, or its universal id when the namespace is empty."""
    return message.component(value, 1) or message.component(value, 2)


def read_header(message: Message) -> Header:
    msh = message.msh
    msg_type = msh.field(9)
    return Header(
        separators=message.separators,
        sending_application=_hd(message, msh.field(3)),
        sending_facility=_hd(message, msh.field(4)),
        receiving_application=_hd(message, msh.field(5)),
        receiving_facility=_hd(message, msh.field(6)),
        control_id=msh.field(10).strip(),
        message_type=message.component(msg_type, 1).upper(),
        trigger_event=message.component(msg_type, 2).upper(),
        version=message.component(msh.field(12), 1),
        processing_id=message.component(msh.field(11), 1).upper(),
        accept_ack_type=msh.field(15).strip().upper(),
        application_ack_type=msh.field(16).strip().upper(),
        msh10=msh.field(10),
        msh3=msh.field(3),
        msh4=msh.field(4),
        msh5=msh.field(5),
        msh6=msh.field(6),
    )


def _version_tuple(version: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        return None
    return tuple(int(p) for p in version.split("."))


def check_supported(header: Header, processing_ids: tuple[str, ...]) -> None:
    """Reject (AR) what this service does not process: type, event, version, processing id."""
    events = SUPPORTED_EVENTS.get(header.message_type)
    if events is None:
        raise rejected(
            "200",
            f"message type {header.message_type or '(empty)'} is not accepted: "
            "send MDM (T01-T11) or ORU^R01",
            "MSH^1^9^1^1",  # ERL: segment^sequence^field^repetition^component
        )
    if header.trigger_event not in events:
        raise rejected(
            "201",
            f"event {header.type_label} is not accepted: send MDM T01-T11 or ORU^R01",
            "MSH^1^9^1^2",
        )
    version = _version_tuple(header.version)
    if version is None:
        raise rejected("203", "MSH-12 version id is missing or unreadable", "MSH^1^12")
    if version < (2, 3) or version[0] != 2:
        raise rejected(
            "203", f"HL7 version {header.version} is not accepted: send 2.3 or later", "MSH^1^12"
        )
    if header.processing_id not in processing_ids:
        raise rejected(
            "202",
            f"processing id {header.processing_id or '(empty)'} is not accepted here "
            f"(accepted: {', '.join(processing_ids)})",
            "MSH^1^11",
        )


def parse_datetime(value: str) -> datetime | None:
    """An HL7 DTM/TS (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as UTC; local UK time if no offset."""
    match = re.fullmatch(
        r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d+)?([+-]\d{4})?", value.strip()
    )
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        naive = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            # Digits, not float(): float(".0157") * 1e6 truncates to 15699.
            int(fraction[1:7].ljust(6, "0")) if fraction else 0,
        )
    except ValueError:
        return None
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        if delta >= timedelta(hours=24):  # +2500: no such offset, so no such time
            return None
        return naive.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return naive.replace(tzinfo=UK_TIME).astimezone(UTC)


def _parse_date(value: str) -> date | None:
    digits = value.strip()[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def read_patient(message: Message, pid: Segment | None) -> Patient:
    """The patient of PID: NHS number by identifier type NH or assigning authority NHS."""
    if pid is None:
        raise content_error("100", "the PID segment is missing", "PID")
    found = ""
    for field_number in (3, 2):
        for rep in message.repetitions(pid.field(field_number)):
            comps = rep.split(message.separators.component)
            ident = comps[0].strip() if comps else ""
            authority = comps[3].split(message.separators.subcomponent)[0] if len(comps) > 3 else ""
            id_type = comps[4].strip() if len(comps) > 4 else ""
            if ident and (id_type.upper() == "NH" or authority.strip().upper() == "NHS"):
                found = ident
                break
        if found:
            break
    if not found:
        raise content_error(
            "101",
            "PID-3 carries no NHS number (an identifier with type NH or assigning authority NHS)",
            "PID^1^3",
        )
    number = nhs_number.normalise(found)
    if not nhs_number.is_valid(number):
        # The number itself is not echoed: ACKs and logs carry no patient identifiers.
        raise content_error(
            "102",
            "the NHS number in PID-3 is not 10 digits with a valid modulus 11 check digit",
            "PID^1^3",
        )
    name = pid.field(5)
    return Patient(
        nhs_number=number,
        family_name=message.unescape(
            message.component(name, 1).split(message.separators.subcomponent)[0]
        ),
        given_name=message.unescape(message.component(name, 2)),
        birth_date=_parse_date(pid.field(7)),
    )


def read_practice(message: Message, pd1: Segment | None) -> str:
    """PD1-3 patient primary facility: the registered GP practice's ODS code (XON-10 or XON-3)."""
    if pd1 is None:
        return ""
    value = pd1.field(3)
    for number in (10, 3, 1):
        code = message.component(value, number).upper()
        if code and (number != 1 or PRACTICE_CODE.match(code)):
            return code
    return ""


def _person(message: Message, value: str) -> tuple[str, str]:
    """An XCN (or a CNN inside subcomponents): its id and a readable name."""
    comps = message.components(value)
    if len(comps) == 1 and message.separators.subcomponent in comps[0]:
        comps = message.subcomponents(comps[0])
    ident = comps[0] if comps else ""
    family = comps[1] if len(comps) > 1 else ""
    given = comps[2] if len(comps) > 2 else ""
    prefix = comps[5] if len(comps) > 5 else ""
    name = " ".join(p for p in (prefix, given, family) if p)
    return ident, name


def read_content(
    message: Message, observations: list[Segment]
) -> tuple[str, bytes | None, str | None]:
    """The document body: the first ED rendition, else TX/FT/ST lines joined in order, as
    (content type, content, Base64): a rendition other than text whose Base64 is in one
    piece is checked but not decoded (its Base64 in the third place, the content None)."""
    # Runs for every OBX line of every message: locals and plain string methods on purpose.
    lines: list[str] = []
    separators = message.separators
    component, repetition, escape = separators.component, separators.repetition, separators.escape
    for position, obx in enumerate(observations, start=1):
        fields = obx.fields  # OBX-n is fields[n]
        value_type = fields[2] if len(fields) > 2 else ""
        if value_type not in TEXT_VALUE_TYPES:  # the usual TX/FT/ST, exactly, needs no cleaning
            value_type = value_type.split(component, 1)[0].strip().upper()
        value = fields[5] if len(fields) > 5 else ""
        if value_type == "ED":
            rendition = _read_ed(message, value, position)
            if rendition is not None:
                return rendition
        elif value_type in TEXT_VALUE_TYPES:
            formatted = value_type == "FT"
            for rep in value.split(repetition) if repetition in value else (value,):
                if escape in rep:
                    rep = unescape(rep, separators, formatted=formatted)
                lines.append(rep.rstrip())
    text = "\n".join(lines).strip("\n")
    if not text.strip():
        return "", None, None
    return TEXT_PLAIN, text.encode("utf-8"), None


def _read_ed(
    message: Message, value: str, position: int
) -> tuple[str, bytes | None, str | None] | None:
    # The first repetition's first five components; found with partition and a bounded
    # split, which do not step through the Base64 character by character (hl7/er7.split).
    component = message.separators.component
    comps = value.partition(message.separators.repetition)[0].split(component, 4)
    comps += [""] * (5 - len(comps))
    comps[4] = comps[4].partition(component)[0]
    _source, major, subtype, encoding, data = (c.strip() for c in comps[:5])
    data = message.unescape(data)
    if not data:
        return None
    encoding = encoding.upper()
    mime_major = _MIME_MAJOR.get(major.upper(), "application")
    mime = f"{mime_major}/{(subtype or 'octet-stream').lower()}"
    if encoding in ("BASE64", "B64") and mime_major != "text" and _whole_base64(data):
        # A PDF, say: not screened, and kept as spans of the message, so not decoded here
        # (0.4 ms for 200 KB); text is decoded now, for screening ahead.
        return mime, None, data
    try:
        if encoding in ("BASE64", "B64"):
            try:  # strict: any character outside Base64 is an error, as b64decode(validate=)
                body = binascii.a2b_base64(data, strict_mode=True)
            except binascii.Error:  # Base64 broken into lines or spaced out: read it whole
                body = binascii.a2b_base64("".join(data.split()), strict_mode=True)
        elif encoding == "HEX":
            body = bytes.fromhex(data)
        elif encoding in ("A", "ASCII", ""):
            body = data.encode("utf-8")
        else:
            raise content_error(
                "103",
                f"ED encoding {encoding!r} in OBX-5.4 is not Base64, Hex or A",
                f"OBX^{position}^5",
            )
    except (binascii.Error, ValueError):
        raise content_error(
            "102", f"the ED data in OBX-5 is not valid {encoding.title()}", f"OBX^{position}^5"
        ) from None
    return mime, body, None


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _whole_base64(data: str) -> bool:
    """Whether a strict Base64 decode accepts `data` as it stands (no line breaks, no spaces),
    told without decoding it: the alphabet only, whole quanta, at most two "=" at the end."""
    if len(data) % 4 or not data.isascii():
        return False
    body = data.rstrip("=")
    return len(data) - len(body) <= 2 and not body.encode("ascii").translate(None, _BASE64_ALPHABET)


def _content_needed(label: str, position: int = 1) -> Exception:
    return content_error(
        "101",
        f"{label} must carry the document in OBX-5: no text (TX, FT, ST) or ED rendition found",
        f"OBX^{position}^5",
    )


def read_documents(message: Message, header: Header) -> list[DocumentInput]:
    """The documents an accepted message carries (raises MessageRejected on content errors)."""
    if header.message_type == "MDM":
        return [_read_mdm(message, header)]
    return _read_oru(message, header)


ZFL_STATUS = {"P": Visibility.PENDING, "W": Visibility.WITHHELD, "V": Visibility.VISIBLE}


def read_flag(message: Message) -> SourceFlag | None:
    """The ZFL segment (DESIGN.md): visibility decided by the sender at source."""
    zfl = message.first("ZFL")
    if zfl is None:
        return None
    status = message.component(zfl.field(2), 1).upper()
    if status not in ZFL_STATUS:
        raise content_error("103", "ZFL-2 visibility status must be P, W or V", "ZFL^1^2")
    reason_code = message.component(zfl.field(4), 1).lower()
    reason_text = message.unescape(message.component(zfl.field(4), 2))
    note = ""
    if status == "W" and reason_code not in {r.value for r in Reason}:
        reason_code, note = Reason.OTHER.value, reason_text or "withheld at source (ZFL)"
    elif reason_code == Reason.OTHER:
        note = reason_text or "withheld at source (ZFL)"
    code, name = _person(message, zfl.field(5))
    return SourceFlag(
        visibility=ZFL_STATUS[status],
        reason=reason_code if status == "W" else "",
        note=note,
        decided_by=Actor(code=code, name=name) if code or name else SYSTEM,
        decided_at=parse_datetime(message.component(zfl.field(6), 1)),
        withhold_until=parse_datetime(message.component(zfl.field(7), 1))
        if status == "W"
        else None,
    )


def _specialty(message: Message) -> str:
    pv1 = message.first("PV1")
    return message.component(pv1.field(10), 1).upper() if pv1 is not None else ""


def _read_mdm(message: Message, header: Header) -> DocumentInput:
    patient = read_patient(message, message.first("PID"))
    txa = message.first("TXA")
    if txa is None:
        raise content_error("100", "the TXA segment is missing", "TXA")
    number = message.component(txa.field(12), 1)
    if not number:
        raise content_error("101", "TXA-12 unique document number is missing", "TXA^1^12")
    event = header.trigger_event
    observations = [s for s in message.segments if s.name == "OBX"]
    content_type, content, encoded = read_content(message, observations)
    if event in MDM_EVENTS_WITH_CONTENT and content is None and encoded is None:
        raise _content_needed(f"MDM^{event}")
    doc_type = message.components(txa.field(2))
    type_code = doc_type[0].upper() if doc_type else ""
    type_text = doc_type[1] if len(doc_type) > 1 else ""
    author_code, author_name = _person(message, txa.field(9))
    provider_code, provider_name = _person(message, txa.field(5))
    return DocumentInput(
        kind="MDM",
        event=event,
        number=number,
        parent_number=message.component(txa.field(13), 1),
        change=MDM_EVENTS[event],
        cancel=event == "T11",
        patient=patient,
        practice_ods_code=read_practice(message, message.first("PD1")),
        document_type=type_code,
        title=message.unescape(txa.field(25).strip())
        or type_text
        or DOCUMENT_TYPES.get(type_code, type_code),  # a readable title when TXA-25 is empty
        author_code=author_code or provider_code,
        author_name=author_name or provider_name,
        provider=provider_name or provider_code,
        origination_time=parse_datetime(message.component(txa.field(6), 1)),
        completion_status=message.component(txa.field(17), 1).upper(),
        confidentiality=message.component(txa.field(18), 1).upper(),
        availability=message.component(txa.field(19), 1).upper(),
        specialty=_specialty(message),
        flag=read_flag(message),
        content_type=content_type,
        content=content,
        content_base64=encoded,
    )


def _read_oru(message: Message, header: Header) -> list[DocumentInput]:
    """Each OBR group with report content (or a cancel) is one document version."""
    pid: Segment | None = None
    pd1: Segment | None = None
    groups: list[tuple[Segment, Segment | None, Segment | None, list[Segment]]] = []
    for segment in message.segments:
        if segment.name == "PID":
            pid, pd1 = segment, None
        elif segment.name == "PD1":
            pd1 = segment
        elif segment.name == "OBR":
            groups.append((segment, pid, pd1, []))
        elif segment.name == "OBX" and groups:
            groups[-1][3].append(segment)
    if not groups:
        raise content_error("100", "ORU^R01 has no OBR segment", "OBR")
    flag = read_flag(message)
    specialty = _specialty(message)
    documents = []
    for position, (obr, group_pid, group_pd1, observations) in enumerate(groups, start=1):
        patient = read_patient(message, group_pid)
        number = message.component(obr.field(3), 1)
        if not number:
            raise content_error("101", "OBR-3 filler order number is missing", f"OBR^{position}^3")
        status = message.component(obr.field(25), 1).upper()
        cancel = status == "X"
        content_type, content, encoded = read_content(message, observations)
        if content is None and encoded is None and not cancel:
            continue
        service = message.components(obr.field(4))
        interpreter = message.component(obr.field(32), 1)
        author_code, author_name = _person(message, interpreter)
        documents.append(
            DocumentInput(
                kind="ORU",
                event="R01",
                number=number,
                cancel=cancel,
                patient=patient,
                practice_ods_code=read_practice(message, group_pd1),
                document_type=service[0] if service else "",
                title=(service[1] if len(service) > 1 else "") or (service[0] if service else ""),
                author_code=author_code,
                author_name=author_name,
                origination_time=parse_datetime(message.component(obr.field(7), 1)),
                completion_status=status,
                placer_number=message.component(obr.field(2), 1),
                specialty=specialty,
                flag=flag,
                content_type=content_type,
                content=content,
                content_base64=encoded,
            )
        )
    if not documents:
        raise _content_needed("ORU^R01")
    return documents
