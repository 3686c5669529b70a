"""Words for the codes the pages show: document types (table 0270), trigger events and what a
version did to its document. Clinicians read "Discharge summary", not `DS`."""

from __future__ import annotations

from flagging.models import VersionChange

# HL7 table 0270, document type (TXA-2).
DOCUMENT_TYPES = {
    "AR": "Autopsy report",
    "CD": "Cardiodiagnostics",
    "CL": "Clinic letter",
    "CN": "Consultation",
    "DI": "Diagnostic imaging",
    "DS": "Discharge summary",
    "ED": "Emergency department report",
    "HP": "History and physical examination",
    "OP": "Operative report",
    "PC": "Psychiatric consultation",
    "PH": "Psychiatric history and physical examination",
    "PN": "Procedure note",
    "PR": "Progress note",
    "SP": "Surgical pathology",
    "TS": "Transfer summary",
}

# MDM trigger events (T01-T11) and the ORU report.
EVENTS = {
    "T01": "Original, notification only",
    "T02": "Original with its text",
    "T03": "Status change",
    "T04": "Status change with its text",
    "T05": "Addendum, notification only",
    "T06": "Addendum with its text",
    "T07": "Edit, notification only",
    "T08": "Edit with its text",
    "T09": "Replacement, notification only",
    "T10": "Replacement with its text",
    "T11": "Cancelled by the hospital",
    "R01": "Report",
}

CHANGES = {
    VersionChange.ORIGINAL: "Original",
    VersionChange.STATUS: "Status change",
    VersionChange.ADDENDUM: "Addendum",
    VersionChange.EDIT: "Correction (edit)",
    VersionChange.REPLACEMENT: "Replacement",
    VersionChange.CORRECTION: "Corrected report",
    VersionChange.CANCEL: "Withdrawn (cancelled)",
}


def document_type_label(code: str) -> str:
    """'Discharge summary' for DS; a local code or free text is shown as it came."""
    head = code.split("^", 1)[0].strip()
    return DOCUMENT_TYPES.get(head.upper(), code)


def event_label(code: str) -> str:
    return EVENTS.get(code.upper(), code)


def change_label(code: str) -> str:
    try:
        return CHANGES[VersionChange(code)]
    except ValueError:
        return code
