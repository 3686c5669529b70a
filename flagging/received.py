"""What the HL7 edge hands to the domain: the facts of a receipt and the documents it carries."""

from __future__ import annotations

import binascii
from dataclasses import dataclass, replace
from datetime import date, datetime

from flagging.models.documents import VersionChange
from flagging.visibility import SourceFlag


@dataclass(frozen=True)
class Receipt:
    """A frame as it arrived, with the header fields the store indexes it by."""

    raw: bytes
    received_at: datetime
    transport: str
    peer: str = ""
    sending_facility: str = ""
    sending_application: str = ""
    control_id: str = ""
    message_type: str = ""
    version: str = ""


@dataclass(frozen=True)
class Problem:
    """Why a message was not accepted, in the terms of HL7 table 0357 (ERR-2, ERR-3, ERR-8)."""

    code: str
    text: str
    location: str = ""


@dataclass(frozen=True)
class Patient:
    nhs_number: str
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None


@dataclass(frozen=True)
class DocumentInput:
    """One document version as carried by an MDM message or an ORU^R01 OBR group."""

    kind: str  # MDM | ORU
    event: str  # T01..T11 | R01
    number: str  # TXA-12 | OBR-3
    patient: Patient
    practice_ods_code: str = ""
    parent_number: str = ""  # TXA-13
    change: VersionChange | None = None  # None: decided by whether the thread exists (ORU)
    cancel: bool = False
    document_type: str = ""
    title: str = ""
    author_code: str = ""
    author_name: str = ""
    provider: str = ""
    origination_time: datetime | None = None
    completion_status: str = ""
    confidentiality: str = ""
    availability: str = ""
    placer_number: str = ""
    specialty: str = ""  # PV1-10 hospital service
    flag: SourceFlag | None = None  # a ZFL segment in the message
    content_type: str = ""
    content: bytes | None = None
    # Instead of `content`: where its text is in the message's bytes (flagging/spans.py).
    content_spans: str | None = None
    # Instead of `content`, until stored: a rendition's Base64, checked but not decoded (the
    # listener keeps it as spans of the message, or decodes it if it is not found there).
    content_base64: str | None = None

    def decoded(self) -> DocumentInput:
        """This document with `content_base64` decoded into `content`."""
        if self.content_base64 is None:
            return self
        body = binascii.a2b_base64(self.content_base64, strict_mode=True)
        return replace(self, content=body, content_base64=None)
