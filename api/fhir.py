"""A document version as a FHIR R4 DocumentReference, built and validated with fhir.resources.

fhir.resources ships R4B (4.3), whose DocumentReference is the same as R4's (4.0.1) field for
field, so what it validates is a valid R4 DocumentReference. Not visible (pending or withheld)
means `meta.security` and `securityLabel` carry R (restricted) and NOPAT, as GP Connect and GP2GP
read them (DOMAIN.md).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference

from flagging.gp_reads import DocumentView
from flagging.models import DocumentStatus, DocumentVersion, Visibility
from flagging.zfl import is_replacement

FHIR_JSON = "application/fhir+json"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE = "https://fhir.nhs.uk/Id/ods-organization-code"
DOCUMENT_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0270"
URI = "urn:ietf:rfc:3986"
# Names the version-specific master identifiers: a UUID from sender, number and version.
IDENTIFIER_NAMESPACE = uuid.UUID("6f1c2b1e-7d0a-4f57-9c1e-8a3c5f0e2d41")

NOPAT = {
    "system": ACT_CODE,
    "code": "NOPAT",
    "display": "no disclosure to patient, family or caregivers without attending provider's "
    "authorization",
}
RESTRICTED = {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}
NORMAL = {"system": CONFIDENTIALITY, "code": "N", "display": "normal"}

# TXA-17 (table 0271) and OBR-25 (table 0123) to DocumentReference.docStatus.
DOC_STATUS = {
    "AU": "final",
    "LA": "final",
    "F": "final",
    "C": "amended",
    "PA": "preliminary",
    "IP": "preliminary",
    "IN": "preliminary",
    "DI": "preliminary",
    "DO": "preliminary",
    "P": "preliminary",
}


def _instant(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def master_identifier(sender_ods: str, version: DocumentVersion) -> dict[str, str]:
    name = f"{sender_ods}|{version.document_number}|{version.version}"
    return {"system": URI, "value": f"urn:uuid:{uuid.uuid5(IDENTIFIER_NAMESPACE, name)}"}


def resource_id(document_id: int, version: int) -> str:
    return f"{document_id}-{version}"


def document_reference(view: DocumentView, content_url: str) -> dict[str, Any]:
    """The DocumentReference of the viewed version, validated, as JSON-ready data."""
    document, version, sender = view.document, view.version, view.sender
    source = view.content_version
    labels = [RESTRICTED, NOPAT] if version.visibility != Visibility.VISIBLE else [NORMAL]
    if document.status == DocumentStatus.WITHDRAWN:
        status = "entered-in-error"
    elif version.version < view.latest_published:
        status = "superseded"
    else:
        status = "current"
    type_coding = (
        [{"system": DOCUMENT_TYPES, "code": version.document_type}]
        if document.kind == "MDM" and version.document_type
        else []
    )
    patient = " ".join(p for p in (document.given_name, document.family_name) if p)
    data: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": resource_id(document.id, version.version),
        "meta": {
            "versionId": str(version.version),
            "lastUpdated": _instant(document.updated_at),
            "security": labels,
        },
        "masterIdentifier": master_identifier(sender.ods_code, version),
        "identifier": [
            {
                "use": "usual",
                "value": version.document_number,
                "assigner": {"identifier": {"system": ODS_CODE, "value": sender.ods_code}},
            }
        ],
        "status": status,
        "type": {
            **({"coding": type_coding} if type_coding else {}),
            "text": version.title or version.document_type or "Clinical document",
        },
        "subject": {
            "identifier": {"system": NHS_NUMBER, "value": document.nhs_number},
            **({"display": patient} if patient else {}),
        },
        "date": _instant(version.created_at),
        "custodian": {
            "identifier": {"system": ODS_CODE, "value": sender.ods_code},
            "display": sender.name,
        },
        "securityLabel": [{"coding": [label]} for label in labels],
        "content": [{"attachment": _attachment(source, content_url)}],
    }
    if version.completion_status in DOC_STATUS:
        data["docStatus"] = DOC_STATUS[version.completion_status]
    if version.author_name or version.author_code:
        author: dict[str, Any] = {"display": version.author_name or version.author_code}
        if version.author_code:
            author["identifier"] = {"value": version.author_code}
        data["author"] = [author]
    if version.title:
        data["description"] = version.title
    previous = view.previous
    if previous is not None and is_replacement(version):
        data["relatesTo"] = [
            {
                "code": "replaces",
                "target": {
                    "reference": f"DocumentReference/{resource_id(document.id, previous.version)}",
                    "identifier": master_identifier(sender.ods_code, previous),
                },
            }
        ]
    if version.specialty:
        data["context"] = {"practiceSetting": {"text": version.specialty}}
    resource = DocumentReference.model_validate(data)
    validated: dict[str, Any] = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    return validated


def _attachment(version: DocumentVersion | None, url: str) -> dict[str, Any]:
    """The content inline (and where to fetch it alone); a withdrawal without content still
    needs an attachment, which then only says so."""
    if version is None or version.content is None:
        return {"contentType": "text/plain", "title": "No content"}
    content = version.content
    attachment: dict[str, Any] = {
        "contentType": version.content_type or "application/octet-stream",
        "data": base64.b64encode(content).decode("ascii"),
        "url": url,
        "size": len(content),
        # Attachment.hash is SHA-1 in R4; an integrity check, not a security control.
        "hash": base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode(),
        "creation": _instant(version.created_at),
    }
    if version.title:
        attachment["title"] = version.title
    return attachment
