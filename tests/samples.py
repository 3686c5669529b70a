"""Named sample messages for tests, built from parts so each test says what it varies.

NHS numbers are from the 999 range, which passes the modulus 11 check and is never issued.
"""

from __future__ import annotations

import base64
from pathlib import Path

NHS_NUMBERS = ("9990000018", "9990000026", "9990000034", "9990000042", "9990000050")
INVALID_NHS_NUMBER = "9990000019"  # a wrong check digit
SENDER = "RXX"
APPLICATION = "EPR"
PRACTICE = "A81001"
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "public"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: value}; gaps are empty fields."""
    last = max(fields) if fields else 0
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, last + 1))


def msh(
    control_id: str = "MSG0001",
    message_type: str = "MDM^T02^MDM_T02",
    *,
    version: str = "2.4",
    sender: str = SENDER,
    application: str = APPLICATION,
    processing_id: str = "P",
    accept_ack: str = "",
    app_ack: str = "",
    charset: str = "",
) -> str:
    # MSH-1 is the field separator itself, so key n here is MSH-(n+1).
    return segment(
        "MSH",
        {
            1: "^~\\&",
            2: application,
            3: sender,
            4: "FLAGGING",
            5: "FLAGGING",
            6: "20261124093000",
            8: message_type,
            9: control_id,
            10: processing_id,
            11: version,
            14: accept_ack,
            15: app_ack,
            17: charset,
        },
    )


def pid(
    nhs_number: str = NHS_NUMBERS[0], *, family: str = "TESTPATIENT", given: str = "ALEX"
) -> str:
    ident = (
        f"{nhs_number}^^^NHS^NH~H123456^^^{SENDER}^MR" if nhs_number else f"H123456^^^{SENDER}^MR"
    )
    return segment("PID", {1: "1", 3: ident, 5: f"{family}^{given}", 7: "19700101", 8: "U"})


def pd1(practice: str = PRACTICE) -> str:
    return segment("PD1", {3: f"THE SURGERY^^{practice}"}) if practice else "PD1|"


def txa(
    number: str = "DOC-1",
    *,
    parent: str = "",
    doc_type: str = "DS",
    author: str = "C1234567^GREY^SAM^^^DR",
    confidentiality: str = "U",
    title: str = "",
) -> str:
    return segment(
        "TXA",
        {
            1: "1",
            2: doc_type,
            3: "TX",
            4: "20261124092500",
            5: author,
            6: "20261124092500",
            9: author,
            12: number,
            13: parent,
            17: "AU",
            18: confidentiality,
            19: "AV",
            25: title,
        },
    )


def obx_text(*lines: str, value_type: str = "TX") -> list[str]:
    return [
        segment("OBX", {1: str(i), 2: value_type, 3: "REPORT", 5: line, 11: "F"})
        for i, line in enumerate(lines, start=1)
    ]


def obx_pdf(data: bytes = TINY_PDF) -> list[str]:
    value = "^AP^PDF^Base64^" + base64.b64encode(data).decode()
    return [segment("OBX", {1: "1", 2: "ED", 3: "PDF", 5: value, 11: "F"})]


def build(*segments: str | list[str], separator: str = "\r") -> bytes:
    flat: list[str] = []
    for s in segments:
        flat.extend(s if isinstance(s, list) else [s])
    return (separator.join(flat) + separator).encode("utf-8")


def mdm(
    event: str = "T02",
    *,
    control_id: str = "MSG0001",
    number: str = "DOC-1",
    parent: str = "",
    nhs_number: str = NHS_NUMBERS[0],
    practice: str = PRACTICE,
    lines: tuple[str, ...] = ("Discharged home.", "Follow up in clinic."),
    version: str = "2.4",
    sender: str = SENDER,
    **msh_options: str,
) -> bytes:
    """An MDM message; events without content (odd-numbered) carry no OBX unless lines given."""
    return build(
        msh(control_id, f"MDM^{event}^MDM_{event}", version=version, sender=sender, **msh_options),
        segment("EVN", {1: event, 2: "20261124093000"}),
        pid(nhs_number),
        pd1(practice),
        "PV1|1|I",
        txa(number, parent=parent),
        obx_text(*lines),
    )


def oru(
    *,
    control_id: str = "ORU0001",
    number: str = "FILLER-1",
    status: str = "F",
    nhs_number: str = NHS_NUMBERS[1],
    practice: str = PRACTICE,
    observations: list[str] | None = None,
    version: str = "2.4",
    sender: str = SENDER,
) -> bytes:
    """An ORU^R01 report; by default a short text report."""
    return build(
        msh(control_id, "ORU^R01^ORU_R01", version=version, sender=sender),
        pid(nhs_number),
        pd1(practice),
        segment(
            "OBR",
            {
                1: "1",
                2: "PLACER-1",
                3: number,
                4: "XR^Chest X-ray",
                7: "20261124080000",
                25: status,
                32: "C7654321&BLUE&ROBIN",
            },
        ),
        observations if observations is not None else obx_text("No acute abnormality."),
    )


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.hl7")) if CORPUS.is_dir() else []
