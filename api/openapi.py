"""The OpenAPI 3 document of the GP API, built with apispec from the same marshmallow schemas
that dump the responses, so the two cannot drift apart."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from api.schemas.acknowledgements import AcknowledgementRequestSchema, AcknowledgementSchema
from api.schemas.documents import DocumentSchema, VersionQuerySchema
from api.schemas.feed import FeedPageSchema, FeedQuerySchema
from api.schemas.problems import ProblemSchema
from flagging.gp_reads import MAX_SEQ

PROBLEM_JSON = "application/problem+json"

DESCRIPTION = """\
Every document a hospital sends for a practice's patients, once, in order, with whether the
patient may see it ("do not show patient", NOPAT).

Poll `GET /gp/v1/practices/{ods_code}/feed?after=N` with the `next_after` of the previous page
(0 at first) until `more` is false; then wait a few minutes. Events are numbered 1, 2, 3...
per practice without gaps, in commit order, so a poll never misses or reorders one. Then fetch
each document in the representation you file: JSON metadata, the annotated HL7 v2 message (with
the ZFL segment), the FHIR R4 DocumentReference, or the rendition itself.

`pending` and `withheld` must not be shown to the patient; `visible` may be. A later
`visibility.changed` event changes that: file it, and hide or show the document again.

Authenticate with `Authorization: Bearer TOKEN` (a token issued for your practices). A practice
outside your token's scope, and any document that is not your practice's, answer 404.
"""


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": "Problem"}}}


UNAUTHORIZED = _problem("No bearer token, or an unknown or revoked one.")
NOT_FOUND = _problem(
    "No such practice for this token, or no such document for the practice (the two are not "
    "told apart)."
)
BAD_REQUEST = _problem("A parameter is not valid; `errors` says which.")


def _path_parameters(document: bool) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": "ods_code",
            "in": "path",
            "required": True,
            "description": "The practice's ODS code.",
            "schema": {"type": "string", "example": "A81001"},
        }
    ]
    if document:
        params.append(
            {
                "name": "document_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
            }
        )
    return params


def _document_operation(
    summary: str, description: str, content: dict[str, Any], operation_id: str
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["documents"],
            "parameters": [{"in": "query", "schema": VersionQuerySchema}],
            "responses": {
                "200": {"description": summary, "content": content},
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        }
    }


@cache
def gp_spec() -> dict[str, Any]:
    """The OpenAPI document (built once per process)."""
    spec = APISpec(
        title="Flagging service: GP feed",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
        security=[{"bearer": []}],
        tags=[
            {"name": "feed", "description": "The practice's events"},
            {"name": "documents", "description": "A document in each representation"},
        ],
    )
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "description": "A GP token"}
    )
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("FeedPage", schema=FeedPageSchema)
    spec.components.schema("Document", schema=DocumentSchema)
    spec.components.schema("AcknowledgementRequest", schema=AcknowledgementRequestSchema)
    spec.components.schema("Acknowledgement", schema=AcknowledgementSchema)

    practice = "/gp/v1/practices/{ods_code}"
    document = practice + "/documents/{document_id}"
    spec.path(
        path=practice + "/feed",
        parameters=_path_parameters(document=False),
        operations={
            "get": {
                "operationId": "readFeed",
                "summary": "Read the practice's events after `after`",
                "tags": ["feed"],
                "parameters": [{"in": "query", "schema": FeedQuerySchema}],
                "responses": {
                    "200": {
                        "description": "A page of events, oldest first.",
                        "content": {"application/json": {"schema": "FeedPage"}},
                    },
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                },
            }
        },
    )
    spec.path(
        path=document,
        parameters=_path_parameters(document=True),
        operations=_document_operation(
            "The document's metadata and current visibility",
            "By default the latest version published to the practice; `version` picks another.",
            {"application/json": {"schema": "Document"}},
            "getDocument",
        ),
    )
    spec.path(
        path=document + "/hl7v2",
        parameters=_path_parameters(document=True),
        operations=_document_operation(
            "The annotated HL7 v2 message",
            "The message the hospital sent, with MSH-5/6 set to the practice, a new MSH-10 and "
            "the ZFL segment: ZFL-2 visibility (P pending, W withheld, V visible), ZFL-3 NOPAT "
            "while not visible, ZFL-4 reason, ZFL-5 decided by, ZFL-6 decided at, ZFL-7 withhold "
            "until, ZFL-8 source. An ORU^R01 keeps only this document's patient and OBR group.",
            {"application/hl7-v2": {"schema": {"type": "string"}}},
            "getDocumentHl7v2",
        ),
    )
    spec.path(
        path=document + "/fhir",
        parameters=_path_parameters(document=True),
        operations=_document_operation(
            "The FHIR R4 DocumentReference",
            "meta.security and securityLabel carry R (v3-Confidentiality) and NOPAT "
            "(v3-ActCode) while the document is pending or withheld, N when visible. The "
            "content is inline as an attachment.",
            {
                "application/fhir+json": {
                    "schema": {
                        "type": "object",
                        "required": ["resourceType", "status", "content"],
                        "properties": {
                            "resourceType": {"type": "string", "enum": ["DocumentReference"]},
                            "status": {"type": "string"},
                            "content": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                }
            },
            "getDocumentFhir",
        ),
    )
    content_operation = _document_operation(
        "The rendition itself",
        "The text or PDF (or other rendition) exactly as the hospital sent it, with its media "
        "type. A document that carries no content answers 404.",
        {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        "getDocumentContent",
    )
    spec.path(
        path=document + "/content",
        parameters=_path_parameters(document=True),
        operations=content_operation,
    )
    spec.path(
        path=practice + "/acknowledgements",
        parameters=_path_parameters(document=False),
        operations={
            "post": {
                "operationId": "acknowledge",
                "summary": "Acknowledge receipt of every event up to a number",
                "description": "Recorded for the service's operators, who watch for practices "
                "falling behind. It never moves back.",
                "tags": ["feed"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "AcknowledgementRequest"}},
                },
                "responses": {
                    "200": {
                        "description": "The acknowledgement as recorded.",
                        "content": {"application/json": {"schema": "Acknowledgement"}},
                    },
                    "400": BAD_REQUEST,
                    "401": UNAUTHORIZED,
                    "404": NOT_FOUND,
                    "415": _problem("The body is not JSON."),
                    "409": _problem("`up_to` is beyond the practice's latest event."),
                },
            }
        },
    )
    return spec.to_dict()
