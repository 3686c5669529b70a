"""Building acknowledgements: a pure function of the message header, the code and the problem.

The ACK swaps sender and receiver, echoes MSH-10 in MSA-2 byte for byte and keeps the message's
version and encoding characters. ERR follows the message's version: ERR-1 (ELD) before 2.5,
ERR-2/3/4/8 from 2.5 on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flagging.received import Problem
from hl7.er7 import DEFAULT_SEPARATORS, Separators
from hl7.parsing import Header

ORIGINAL_CODES = ("AA", "AE", "AR")
# Enhanced mode answers with a commit (accept) acknowledgement instead (table 0008).
ENHANCED_CODES = {"AA": "CA", "AE": "CE", "AR": "CR"}
FALLBACK_VERSION = "2.5.1"


def escape(text: str, separators: Separators) -> str:
    """Escape separators in free text so it reads back as written (HL7 v2 section 2.7)."""
    s = separators
    out = text.replace(s.escape, f"{s.escape}E{s.escape}")
    for char, code in (
        (s.field, "F"),
        (s.component, "S"),
        (s.subcomponent, "T"),
        (s.repetition, "R"),
    ):
        out = out.replace(char, f"{s.escape}{code}{s.escape}")
    return out.replace("\r", " ").replace("\n", " ")


def _uses_err_1(version: str) -> bool:
    """ERR-1 (error code and location) before 2.5; ERR-2..ERR-8 from 2.5 on."""
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) < (2, 5)
    except ValueError:
        return False


def _has_structure(version: str) -> bool:
    """MSH-9.3 message structure exists from 2.3.1 on; a 2.3 MSH-9 has two components."""
    try:
        return tuple(int(p) for p in version.split(".")) >= (2, 3, 1)
    except ValueError:
        return True


def ack_code(header: Header | None, code: str) -> str:
    """The MSA-1 code: AA/AE/AR, or CA/CE/CR where enhanced mode asks for an accept ack.

    Enhanced mode (MSH-15 or MSH-16 valued) wants a commit acknowledgement when MSH-15 (table
    0155) is AL, ER on an error or SU on success; an empty MSH-15 counts as AL. Otherwise we
    answer with the application acknowledgement, which we have by then: processing is
    synchronous, and every frame on an MLLP connection gets an answer, so a sender is never
    left waiting, even one that asked for NE.
    """
    if header is None or not header.enhanced_mode:
        return code
    wanted = header.accept_ack_type or "AL"
    accept = (
        wanted == "AL" or (wanted == "ER" and code != "AA") or (wanted == "SU" and code == "AA")
    )
    return ENHANCED_CODES[code] if accept else code


def build_ack(
    header: Header | None,
    code: str,
    *,
    problem: Problem | None = None,
    application: str = "FLAGGING",
    facility: str = "FLAGGING",
    now: datetime | None = None,
    control_id: str | None = None,
) -> str:
    """The ER7 text of the ACK for `header` (None when the header could not be read)."""
    if code not in ORIGINAL_CODES:
        raise ValueError(f"unknown acknowledgement code {code!r}")
    s = header.separators if header is not None else DEFAULT_SEPARATORS
    f = s.field
    now = now or datetime.now(UTC)
    version = (header.version if header is not None else "") or FALLBACK_VERSION
    event = header.trigger_event if header is not None else ""
    msh = [
        "MSH",
        s.encoding_characters,
        (header.msh5 if header is not None else "") or application,
        (header.msh6 if header is not None else "") or facility,
        header.msh3 if header is not None else "",
        header.msh4 if header is not None else "",
        now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
        "",
        s.component.join(["ACK", event, "ACK"][: 3 if _has_structure(version) else 2])
        if event
        else "ACK",
        control_id or uuid.uuid4().hex[:20],
        (header.processing_id if header is not None else "") or "P",
        version,
    ]
    # MSA-2 is MSH-10 exactly as it arrived, escape sequences and all: re-escaping it would
    # turn `MDM^T02` into `MDM\S\T02`, and a sender matching by bytes would see a mismatch.
    msa = ["MSA", ack_code(header, code), header.msh10 if header else ""]
    segments = [f.join(msh)]
    if problem is None:
        segments.append(f.join(msa))
        return "\r".join(segments) + "\r"
    text = escape(problem.text, s)
    location = problem.location.split("^") if problem.location else []
    severity = "E"
    if _uses_err_1(version):
        msa.append(text)  # MSA-3 text message, read by senders on 2.3/2.4
        # ELD: segment id ^ sequence ^ field position ^ code (a CE, so its parts are subcomponents)
        eld = [*([*location, "", "", ""])[:3], s.subcomponent.join([problem.code, text, "HL70357"])]
        err = ["ERR", s.component.join(eld)]
    else:
        err = [
            "ERR",
            "",
            s.component.join(location),
            s.component.join([problem.code, escape(_code_name(problem.code), s), "HL70357"]),
            severity,
            "",
            "",
            "",
            text,
        ]
    segments.append(f.join(msa))
    segments.append(f.join(err))
    return "\r".join(segments) + "\r"


_CODE_NAMES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def _code_name(code: str) -> str:
    return _CODE_NAMES.get(code, "Error")
