"""ITK3 responses (nhsconnect/ITK3-Messaging-Distribution, explore_response_structure): a
Bundle of type message whose MessageHeader.response names the MessageHeader it answers, with
response.code ok / transient-error / fatal-error, and an OperationOutcome whose issue carries
the ITK response code (20013 infrastructure success, 30001 patient known here: filed, 1xxxx
and 2xxxx infrastructure errors, 3xxxx business errors)."""

from __future__ import annotations

import json
from typing import Any

from flagging.mesh_tracking import ItkResponse


class NotAResponse(ValueError):
    """The message is not an ITK3 response we can read."""


def parse_response(body: bytes) -> ItkResponse:
    """The answer an ITK3 response carries; NotAResponse for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotAResponse("not JSON") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise NotAResponse("not a FHIR Bundle")
    resources = [e.get("resource") for e in data.get("entry") or [] if isinstance(e, dict)]
    header = _first(resources, "MessageHeader")
    response = header.get("response") if header else None
    if not isinstance(response, dict) or not response.get("identifier"):
        raise NotAResponse("no MessageHeader.response: not an ITK3 response")
    itk_code, display = "", ""
    outcome = _first(resources, "OperationOutcome")
    issues = outcome.get("issue") if outcome else None
    if isinstance(issues, list) and issues and isinstance(issues[0], dict):
        details = issues[0].get("details") or {}
        codings = details.get("coding") if isinstance(details, dict) else None
        if isinstance(codings, list) and codings and isinstance(codings[0], dict):
            itk_code = str(codings[0].get("code") or "")
            display = str(codings[0].get("display") or details.get("text") or "")
    return ItkResponse(
        answers=str(response["identifier"]).removeprefix("urn:uuid:"),
        code=str(response.get("code") or ""),
        itk_code=itk_code,
        display=display,
    )


def _first(resources: list[Any], kind: str) -> dict[str, Any] | None:
    return next(
        (r for r in resources if isinstance(r, dict) and r.get("resourceType") == kind), None
    )
