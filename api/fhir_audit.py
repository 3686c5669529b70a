"""Audit entries as FHIR R4 AuditEvent resources, for a trust's SIEM.

Shaped as IHE Basic Audit Log Patterns (BALP) describes: `type` the DICOM/FHIR event type
(a RESTful read or write, or a login), `subtype` our action, `action` C/R/U/E, `agent` the
requestor by identifier, `source` this service, `entity` the patient (by NHS number, role 1
"patient") and the document or message. fhir.resources' R4B AuditEvent is field for field the
R4 one, and validates each resource as it is built.
"""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from api.fhir import NHS_NUMBER
from flagging.audit import Action
from flagging.models import AuditEntry

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
ACTION_SYSTEM = "urn:flagging:audit-action"  # our actions (flagging.audit.Action)
ACTOR_SYSTEM = "urn:flagging:actor"
MESSAGE_SYSTEM = "urn:flagging:message"  # an inbound message's id

_READS = {
    Action.DOCUMENT_VIEWED,
    Action.GP_DOCUMENT_READ,
    Action.GP_CONTENT_READ,
    Action.GP_FEED_READ,
}
_CREATES = {Action.MESSAGE_RECEIVED, Action.DECISION}


def _type_and_action(action: str) -> tuple[dict[str, str], str]:
    if action in (Action.SIGN_IN, Action.SESSION_ENDED):
        code = "110122" if action == Action.SIGN_IN else "110123"
        display = "Login" if action == Action.SIGN_IN else "Logout"
        return {"system": DCM, "code": code, "display": display}, "E"
    if action == Action.EXPORT:
        return {"system": DCM, "code": "110106", "display": "Export"}, "R"
    rest = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
    if action in _READS:
        return rest, "R"
    if action in _CREATES:
        return rest, "C"
    return rest, "U"


def audit_event(entry: AuditEntry) -> dict[str, Any]:
    """One entry as an AuditEvent (JSON-ready), validated by fhir.resources."""
    event_type, action = _type_and_action(entry.action)
    failed = entry.outcome in ("failure", "AE", "AR", "CE", "CR")
    entities: list[dict[str, Any]] = []
    if entry.nhs_number:
        entities.append(
            {
                "what": {"identifier": {"system": NHS_NUMBER, "value": entry.nhs_number}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if entry.document_id is not None:
        entities.append(
            {
                "what": {"reference": f"DocumentReference/{entry.document_id}"},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "3", "display": "Report"},
            }
        )
    if entry.message_id is not None:
        entities.append(
            {
                "what": {
                    "identifier": {"system": "urn:flagging:message", "value": str(entry.message_id)}
                },
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            }
        )
    entities.append({"name": "detail", "description": entry.detail})
    resource = AuditEvent.model_validate(
        {
            "resourceType": "AuditEvent",
            "id": f"flagging-audit-{entry.seq}",
            "type": event_type,
            "subtype": [{"system": ACTION_SYSTEM, "code": entry.action}],
            "action": action,
            "recorded": entry.at.isoformat(),
            "outcome": "4" if failed else "0",  # 0 success, 4 minor failure
            "outcomeDesc": entry.outcome or None,
            "agent": [
                {
                    "who": {"identifier": {"system": ACTOR_SYSTEM, "value": entry.actor}},
                    "requestor": True,
                }
            ]
            + (
                [{"who": {"identifier": {"value": entry.practice}}, "requestor": False}]
                if entry.practice
                else []
            ),
            "source": {
                "observer": {"display": "flagging service"},
                "type": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                        "code": "4",
                        "display": "Application Server",
                    }
                ],
            },
            "entity": entities,
        }
    )
    data: dict[str, Any] = json.loads(resource.model_dump_json(exclude_none=True))
    return data


def bundle(entries: list[AuditEntry]) -> dict[str, Any]:
    """A collection Bundle of AuditEvents (what `flagging audit export` writes)."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": audit_event(e)} for e in entries],
    }
