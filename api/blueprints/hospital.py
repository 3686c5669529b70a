"""Decisions from hospital systems: an EPR records the clinician's decision at sign-off.

    POST /hospital/v1/documents/{sender}/{document-number}/decision
    Authorization: Bearer <the sender's token>

The token must be the named sender's; a document of another sender does not exist for it.
Errors are RFC 9457 problem details.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError

from api.context import db_session
from api.problems import problem
from api.schemas.decisions import DocumentDecisionSchema, HospitalDecisionSchema
from flagging.hospital_decisions import decide_for_sender
from flagging.models import Visibility
from flagging.organisations import sender_by_token

bp = Blueprint("hospital", __name__, url_prefix="/hospital/v1")


@bp.after_request
def no_store(response: Response) -> Response:
    # Answers name patients' documents and decisions: no shared cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


def _unauthorised() -> Response:
    response = problem(401, "Unauthorized", "the sender's bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="hospital"'
    return response


@bp.post("/documents/<sender>/<path:number>/decision")
def decision(sender: str, number: str) -> Response:
    """Withhold a document from the patient, or release it, as the signing clinician decided."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorised()
    if not request.is_json:
        return problem(415, "Unsupported Media Type", "send the decision as application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(400, "Bad Request", "the body is not a JSON object")
    try:
        data: dict[str, Any] = HospitalDecisionSchema().load(body)
    except ValidationError as exc:
        return problem(
            422, "Unprocessable Content", "the decision is not valid", errors=exc.messages
        )
    session = db_session()
    credential = sender_by_token(session, token.strip())
    if credential is None:
        return _unauthorised()
    owner = credential.sender
    if owner.ods_code != sender.strip().upper():
        return problem(
            403, "Forbidden", f"this token belongs to sender {owner.ods_code}, not {sender}"
        )
    clinician = data["decided_by"]
    document, decided = decide_for_sender(
        session,
        credential,
        number,
        visibility=Visibility.WITHHELD if data["visibility"] == "withheld" else Visibility.VISIBLE,
        clinician_code=clinician["code"],
        clinician_name=clinician.get("name", ""),
        reason=data.get("reason", ""),
        note=data.get("note", ""),
        withhold_until=data.get("withhold_until"),
        signed_version=data.get("version"),
        now=datetime.now(UTC),
    )
    result = DocumentDecisionSchema().dump(
        {
            "sender": owner.ods_code,
            "document_number": document.document_number,
            "version": document.latest_version,
            "visibility": decided.visibility,
            "reason": decided.reason,
            "note": decided.note,
            "withhold_until": decided.withhold_until,
            "decided_at": decided.decided_at,
            "decided_by": {"code": decided.decided_by_code, "name": decided.decided_by_name},
        }
    )
    return jsonify(result)
