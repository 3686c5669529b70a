"""HL7 v2 over HTTP: POST the ER7 message, get the ACK back as the response body.

HTTP 200 answers AA, AE and AR alike (the ACK says which), as HL7 over HTTP does; HTTP errors
are kept for requests that never reached HL7 processing: 401, 413, 415.
"""

from __future__ import annotations

from typing import Protocol, cast

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from api.context import db_session, end_transaction
from api.problems import problem
from flagging.organisations import sender_by_token

bp = Blueprint("ingest", __name__)


@bp.after_request
def no_store(response: Response) -> Response:
    # An ACK echoes message content (MSA, ERR-8): no shared cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


# Media types that carry ER7 text. Plain text is accepted because that is what many
# integration engines send.
HL7_MEDIA_TYPES = frozenset(
    {
        "application/hl7-v2",
        "application/hl7-v2+er7",
        "x-application/hl7-v2+er7",
        "application/edi-hl7",
        "text/plain",
        "text/hl7",
    }
)


class IngestFunction(Protocol):
    def __call__(
        self, raw: bytes, *, transport: str, peer: str, sender_id: int
    ) -> tuple[str, bytes]: ...


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@bp.post("/hl7/v2/messages")
def receive_message() -> Response:
    """Receive one HL7 v2 message from a registered sender and answer with its ACK."""
    token = _bearer_token()
    try:
        credential = sender_by_token(db_session(), token) if token else None
        sender_id = credential.sender.id if credential else None
        # The message's own transaction is the HL7 handler's (commit, then ACK); on SQLite it
        # would wait for the write lock this request's holds, in this very thread.
        end_transaction()
    except SQLAlchemyError as exc:  # not the body's fault: the sender is to try again
        end_transaction(exc)
        response = problem(
            503, "Service Unavailable", f"database unavailable ({type(exc).__name__})"
        )
        response.headers["Retry-After"] = "30"
        return response
    if sender_id is None:
        response = problem(401, "Unauthorized", "a valid sender bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hl7"'
        return response
    if request.mimetype not in HL7_MEDIA_TYPES:
        return problem(
            415,
            "Unsupported Media Type",
            f"send the ER7 message as one of: {', '.join(sorted(HL7_MEDIA_TYPES))}",
        )
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    ingest = cast("IngestFunction | None", current_app.extensions["flagging.ingest"])
    if ingest is None:
        return problem(503, "Service Unavailable", "HL7 ingest is not enabled in this process")
    code, ack = ingest(raw, transport="http", peer=request.remote_addr or "", sender_id=sender_id)
    return Response(
        ack, status=200, mimetype="application/hl7-v2", headers={"X-HL7-Ack-Code": code}
    )
