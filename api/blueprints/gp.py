"""The GP systems' REST API (/gp/v1): a practice's feed, its documents and their representations.

Every request carries a bearer token scoped to practices. A practice outside the scope, and a
document of another practice, answer 404 exactly like ones that do not exist, so nothing leaks.
"""

from __future__ import annotations

import json as stdlib_json
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from flask import Blueprint, Response, current_app, json, request, url_for
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from api.context import db_session, records_reads
from api.fhir import FHIR_JSON, document_reference
from api.openapi import gp_spec
from api.problems import problem
from api.schemas.acknowledgements import AcknowledgementRequestSchema, AcknowledgementSchema
from api.schemas.documents import DocumentSchema, VersionQuerySchema
from api.schemas.feed import FeedQuerySchema, feed_page_data
from flagging import audit, gp_reads, gp_tokens, zfl
from flagging.models import Visibility, reason_text

bp = Blueprint("gp", __name__, url_prefix="/gp/v1")

HL7_V2 = "application/hl7-v2"
OCTET_STREAM = "application/octet-stream"
SAFE_INLINE_MEDIA_TYPES = frozenset({"application/pdf", "text/plain"})
REALM = 'Bearer realm="gp"'

_feed_query = FeedQuerySchema()
_version_query = VersionQuerySchema()
_document = DocumentSchema()
_ack_request = AcknowledgementRequestSchema()
_ack = AcknowledgementSchema()


class AnnotateFunction(Protocol):
    """Writes the ZFL, MSH-5/6 and MSH-10 into a stored message (wired from hl7.annotate)."""

    def __call__(self, raw: bytes, annotation: zfl.Annotation) -> bytes: ...


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json(data: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(json.dumps(data), status=status, mimetype=mimetype)


@bp.errorhandler(gp_tokens.NotAuthenticated)
def not_authenticated(exc: gp_tokens.NotAuthenticated) -> Response:
    response = problem(401, "Unauthorized", str(exc))
    # RFC 6750 section 3: name the error only when a token was presented.
    response.headers["WWW-Authenticate"] = (
        f'{REALM}, error="invalid_token"' if _bearer_token() else REALM
    )
    return response


@bp.errorhandler(ValidationError)
def invalid(exc: ValidationError) -> Response:
    return problem(
        400, "Bad Request", "the request's parameters are not valid", errors=exc.messages
    )


@bp.after_request
def no_store(response: Response) -> Response:
    # Patient data: no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


def _practice_document(
    ods_code: str, document_id: int
) -> tuple[Session, gp_tokens.PracticeAccess, gp_reads.DocumentView]:
    """The document (at `?version=`, else its latest) as the bearer token's practice may see
    it, in the request's session: 401 or 404 otherwise. The views are `records_reads`: the
    read is audited in their transaction (each records what it served, last, flagging/audit.py)."""
    args = cast(dict[str, Any], _version_query.load(request.args, unknown="exclude"))
    session = db_session()
    access = gp_tokens.authorize(session, _bearer_token(), ods_code)
    view = gp_reads.practice_document(session, access, document_id, args.get("version"))
    return session, access, view


def _links(ods_code: str, document_id: int, has_content: bool) -> dict[str, str | None]:
    def url(endpoint: str) -> str:
        return url_for(f"gp.{endpoint}", ods_code=ods_code, document_id=document_id)

    return {
        "self": url("document"),
        "hl7v2": url("document_hl7"),
        "fhir": url("document_fhir"),
        "content": url("document_content") if has_content else None,
    }


@bp.get("/practices/<ods_code>/feed")
@records_reads
def feed(ods_code: str) -> Response:
    """Events after `after`, oldest first, at most `limit`; `more` says whether to poll again."""
    query = cast(dict[str, int], _feed_query.load(request.args, unknown="exclude"))
    # `records_reads`: the read is audited in the request's transaction (the events served).
    session = db_session()
    access = gp_tokens.authorize(session, _bearer_token(), ods_code)
    page = gp_reads.practice_feed(session, access, query["after"], query["limit"])
    _audit_feed(session, access, query["after"], page)
    prefix = url_for("gp.document", ods_code=access.ods_code, document_id=0)[:-1]
    data = feed_page_data(access.ods_code, page.events, page.next_after, page.more, prefix)
    return Response(stdlib_json.dumps(data), status=200, mimetype="application/json")


def _audit_feed(
    session: Session, access: gp_tokens.PracticeAccess, after: int, page: gp_reads.Feed
) -> None:
    served = [event.seq for event in page.events]
    audit.record(
        session,
        actor=audit.token_actor(access.token_id),
        action=audit.Action.GP_FEED_READ,
        practice=access.ods_code,
        detail={
            "after": after,
            "events": [served[0], served[-1]] if served else [],
            "count": len(served),
            "documents": sorted({event.document_id for event in page.events}),
        },
    )


def _audit_read(
    access: gp_tokens.PracticeAccess,
    view: gp_reads.DocumentView,
    session: Session,
    representation: str,
) -> None:
    audit.document_read(
        session,
        actor=audit.token_actor(access.token_id),
        action=(
            audit.Action.GP_CONTENT_READ
            if representation == "content"
            else audit.Action.GP_DOCUMENT_READ
        ),
        document=view.document,
        version=view.version.version,
        practice=access.ods_code,
        detail={"representation": representation},
    )


@bp.get("/practices/<ods_code>/documents/<int:document_id>")
@records_reads
def document(ods_code: str, document_id: int) -> Response:
    """The document's metadata and its current visibility."""
    session, access, view = _practice_document(ods_code, document_id)
    data = _document_data(access, view)
    _audit_read(access, view, session, "json")
    return _json(_document.dump(data))


def _document_data(access: gp_tokens.PracticeAccess, view: gp_reads.DocumentView) -> dict[str, Any]:
    document, version = view.document, view.version
    content = view.content_version
    withheld = version.visibility == Visibility.WITHHELD
    return {
        "id": document.id,
        "practice": access.ods_code,
        "custodian": {"ods_code": view.sender.ods_code, "name": view.sender.name},
        "document_number": document.document_number,
        "kind": document.kind,
        "status": document.status,
        "version": version.version,
        "latest_version": view.latest_published,
        "version_number": version.document_number,
        "event": version.event,
        "change": version.change,
        "patient": {
            "nhs_number": document.nhs_number,
            "family_name": document.family_name,
            "given_name": document.given_name,
            "birth_date": document.birth_date,
        },
        "document_type": version.document_type,
        "title": version.title,
        "author": {"code": version.author_code, "name": version.author_name},
        "origination_time": version.origination_time,
        "received_at": version.created_at,
        "content_type": content.content_type if content else "",
        "content_size": len(content.content or b"") if content else 0,
        "visibility": {
            "status": version.visibility,
            "nopat": version.visibility != Visibility.VISIBLE,
            "reason": version.reason if withheld else "",
            "reason_text": reason_text(version.reason) if withheld and version.reason else "",
            "source": version.visibility_source,
            "decided_by": version.decided_by,
            "decided_at": version.decided_at,
            "withhold_until": version.withhold_until if withheld else None,
        },
        "links": _links(access.ods_code, document.id, content is not None),
    }


@bp.get("/practices/<ods_code>/documents/<int:document_id>/hl7v2")
@records_reads
def document_hl7(ods_code: str, document_id: int) -> Response:
    """The original HL7 v2 message with the ZFL flag segment, addressed to the practice."""
    annotate = cast("AnnotateFunction | None", current_app.extensions["flagging.annotate"])
    session, access, view = _practice_document(ods_code, document_id)
    if annotate is None:
        return problem(503, "Service Unavailable", "HL7 v2 output is not enabled here")
    raw, annotation = zfl.annotation_input(session, access, view, uuid.uuid4().hex[:20])
    _audit_read(access, view, session, "hl7v2")
    return Response(annotate(raw, annotation), status=200, mimetype=HL7_V2)


@bp.get("/practices/<ods_code>/documents/<int:document_id>/fhir")
@records_reads
def document_fhir(ods_code: str, document_id: int) -> Response:
    """The FHIR R4 DocumentReference, labelled R + NOPAT while pending or withheld."""
    session, access, view = _practice_document(ods_code, document_id)
    content_url = url_for(
        "gp.document_content",
        ods_code=access.ods_code,
        document_id=document_id,
        version=view.content_version.version if view.content_version else None,
        _external=True,
    )
    resource = document_reference(view, content_url)
    _audit_read(access, view, session, "fhir")
    return _json(resource, mimetype=FHIR_JSON)


@bp.get("/practices/<ods_code>/documents/<int:document_id>/content")
@records_reads
def document_content(ods_code: str, document_id: int) -> Response:
    """The rendition itself: text, PDF, or whatever the hospital sent, with its media type."""
    session, access, view = _practice_document(ods_code, document_id)
    source = view.content_version
    if source is None or source.content is None:
        return problem(404, "Not Found", f"document {document_id} has no content")
    body, content_type = source.content, source.content_type or "application/octet-stream"
    _audit_read(access, view, session, "content")
    # Whatever a hospital declares is passed on only when it cannot run in a browser: HTML,
    # SVG or XML from an EPR would otherwise execute in the GP system's origin if it opened it.
    media = content_type.split(";", 1)[0].strip().lower()
    inline = media in SAFE_INLINE_MEDIA_TYPES
    response = Response(body, status=200, content_type=content_type if inline else OCTET_STREAM)
    response.headers["Content-Disposition"] = (
        "inline" if inline else f'attachment; filename="document-{document_id}"'
    )
    return response


@bp.post("/practices/<ods_code>/acknowledgements")
def acknowledge(ods_code: str) -> Response:
    """Record that the GP system received every event up to `up_to` (shown to operators)."""
    session = db_session()
    access = gp_tokens.authorize(session, _bearer_token(), ods_code)  # 401/404 before the body
    if not request.is_json:
        return problem(415, "Unsupported Media Type", "send the acknowledgement as JSON")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(400, "Bad Request", "the body must be a JSON object")
    data = cast(dict[str, int], _ack_request.load(body))
    ack = gp_reads.acknowledge(session, access, data["up_to"], now=datetime.now(UTC))
    return _json(
        _ack.dump(
            {
                "practice": access.ods_code,
                "acknowledged_seq": ack.acknowledged_seq,
                "acknowledged_at": ack.acknowledged_at,
                "last_event": ack.feed_seq,
            }
        )
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of this API."""
    return _json(gp_spec())
