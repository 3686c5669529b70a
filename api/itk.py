"""A feed event as an ITK3 FHIR message for MESH, built and validated with fhir.resources.

What we follow (nhsconnect/ITK3-Messaging-Distribution, pages/explore/explore_bundle_structures
and explore_hand_spec; GP Connect Send Document for the event code and MESH workflow):
- a Bundle of type `message` whose first entry is the MessageHeader, then the payload: the
  DocumentReference the GP API serves (api/fhir.py, with R + NOPAT when the patient must not
  see it), the Patient it is about, the authoring organisation (the trust) and the receiving
  practice;
- MessageHeader.eventCoding ITK007C from ITK-MessageEvent-2 ("ITK GP Connect Send Document"),
  and the ITK message handling extension: BusAckRequested and InfAckRequested true (we want the
  practice's business acknowledgement), RecipientType FA (for action), SenderReference our
  local id (returned in any response), LocalExtension the feed event type;
- MessageHeader.reason names the feed event (a document, a later decision, a withdrawal), so
  that a message about a decision or a withdrawal says so, and `focus` points at the document.
ITK3 is written against FHIR STU3; like api/fhir.py we emit R4 (the R4B models), keeping the
ITK3 structure and codes.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from api.fhir import NOPAT, ODS_CODE, RESTRICTED, document_reference
from flagging.mesh_sending import MeshTarget, Outbound

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
MESSAGE_EVENT = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2"
HANDLING = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2"
RECIPIENT_TYPE = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"
UUID_SYSTEM = "https://tools.ietf.org/html/rfc4122"
# Our own code system for what happened to the document: the GP feed's event types (a URN,
# not a web address of somebody else's).
FEED_EVENT = "urn:flagging:feed-event-type"
FEED_EVENT_DISPLAY = {
    "document.available": "A new document",
    "document.superseded": "A document was replaced by a newer version",
    "visibility.changed": "A clinician's decision on whether the patient may see the document",
    "document.withdrawn": "The document was withdrawn by the hospital",
}
SEND_DOCUMENT = {
    "system": MESSAGE_EVENT,
    "code": "ITK007C",
    "display": "ITK GP Connect Send Document",
}
FHIR_JSON = "application/fhir+json"
_NAMESPACE = uuid.UUID("c5a3e0e2-4b7f-4f4e-b0a8-0d9b9e8e6a11")


def _uuid(*parts: object) -> str:
    """A UUID fixed by what it names, so that a resend is the same message, byte for byte
    in its identifiers."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


def subject(outbound: Outbound) -> str:
    """Mex-Subject: what the message is, without patient data (MESH metadata is not
    encrypted end to end and shows in MESH tracking)."""
    document = outbound.view.document
    return f"{outbound.event_type} document {document.id} version {outbound.view.version.version}"


def message_bundle(
    target: MeshTarget, outbound: Outbound, our_mailbox: str, now: datetime
) -> dict[str, Any]:
    """The ITK3 message for one feed event, validated, as JSON-ready data."""
    view = outbound.view
    document, sender = view.document, view.sender
    content_url = f"/gp/v1/practices/{target.ods_code}/documents/{document.id}/content"
    reference = document_reference(view, content_url)
    if outbound.nopat:
        # The event (or a withdrawal) says not to show it even if the current state would.
        labels = [RESTRICTED, NOPAT]
        reference["meta"]["security"] = labels
        reference["securityLabel"] = [{"coding": [label]} for label in labels]
    ids = {
        name: f"urn:uuid:{_uuid(target.ods_code, outbound.seq, name)}"
        for name in ("bundle", "document", "patient", "author", "practice")
    }
    reference["subject"]["reference"] = ids["patient"]
    reference["custodian"]["reference"] = ids["author"]
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ids["patient"].removeprefix("urn:uuid:"),
        "identifier": [{"system": NHS_NUMBER, "value": document.nhs_number}],
    }
    if document.family_name or document.given_name:
        name: dict[str, Any] = {"use": "official"}
        if document.family_name:
            name["family"] = document.family_name
        if document.given_name:
            name["given"] = [document.given_name]
        patient["name"] = [name]
    if document.birth_date is not None:
        patient["birthDate"] = document.birth_date.isoformat()
    author = {
        "resourceType": "Organization",
        "id": ids["author"].removeprefix("urn:uuid:"),
        "identifier": [{"system": ODS_CODE, "value": sender.ods_code}],
        "name": sender.name or sender.ods_code,
    }
    practice = {
        "resourceType": "Organization",
        "id": ids["practice"].removeprefix("urn:uuid:"),
        "identifier": [{"system": ODS_CODE, "value": target.ods_code}],
        "name": target.practice_name or target.ods_code,
    }
    header = {
        "resourceType": "MessageHeader",
        "id": outbound.header_id,
        "extension": [
            {
                "url": HANDLING,
                "extension": [
                    {"url": "BusAckRequested", "valueBoolean": True},
                    {"url": "InfAckRequested", "valueBoolean": True},
                    {
                        "url": "RecipientType",
                        "valueCoding": {
                            "system": RECIPIENT_TYPE,
                            "code": "FA",
                            "display": "For Action",
                        },
                    },
                    {"url": "SenderReference", "valueString": outbound.local_id},
                    {"url": "LocalExtension", "valueString": outbound.event_type},
                ],
            }
        ],
        "eventCoding": SEND_DOCUMENT,
        "destination": [
            {
                "endpoint": f"urn:nhs-uk:addressing:mesh:{target.mailbox}",
                "receiver": {"reference": ids["practice"]},
            }
        ],
        "sender": {"reference": ids["author"]},
        "source": {"name": "flagging", "endpoint": f"urn:nhs-uk:addressing:mesh:{our_mailbox}"},
        "reason": {
            "coding": [
                {
                    "system": FEED_EVENT,
                    "code": outbound.event_type,
                    "display": FEED_EVENT_DISPLAY.get(outbound.event_type, outbound.event_type),
                }
            ]
        },
        "focus": [{"reference": ids["document"]}],
    }
    data = {
        "resourceType": "Bundle",
        "id": ids["bundle"].removeprefix("urn:uuid:"),
        "identifier": {"system": UUID_SYSTEM, "value": ids["bundle"].removeprefix("urn:uuid:")},
        "type": "message",
        "timestamp": now.isoformat(timespec="seconds"),
        "entry": [
            {"fullUrl": f"urn:uuid:{outbound.header_id}", "resource": header},
            {"fullUrl": ids["document"], "resource": reference},
            {"fullUrl": ids["patient"], "resource": patient},
            {"fullUrl": ids["author"], "resource": author},
            {"fullUrl": ids["practice"], "resource": practice},
        ],
    }
    bundle = Bundle.model_validate(data)
    validated: dict[str, Any] = bundle.model_dump(mode="json", by_alias=True, exclude_none=True)
    return validated


def render(target: MeshTarget, outbound: Outbound, our_mailbox: str, now: datetime) -> bytes:
    """The message as the bytes MESH carries."""
    bundle = message_bundle(target, outbound, our_mailbox, now)
    return json.dumps(bundle, separators=(",", ":")).encode()
