"""Administrators' pages for the audit trail (filters as `flagging audit list`; the subject
access report, "who has seen this patient's documents") and a stored message field by field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, current_app, render_template, request, url_for

from api.auth import current_user, require
from api.context import db_session, records_reads
from api.pages import html_pages
from flagging import audit
from flagging import audit_log as trail
from flagging import messages as messages_uc
from flagging.models import AuditEntry, Role
from flagging.nhs_number import is_valid, normalise

bp = Blueprint("audit_admin", __name__, url_prefix="/admin")
html_pages(bp)
bp.before_request(require(Role.ADMIN))

PAGE = 100
# The HL7 edge's message inspector (hl7.inspect.inspect), wired by the composition root:
# the web edge never imports the HL7 edge.
InspectFunction = Callable[[bytes], list[Any]]


def _moment(text: str, errors: dict[str, str], field: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        errors[field] = "Enter a date (YYYY-MM-DD) or a date and time."
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(args: dict[str, str]) -> tuple[trail.Filters, dict[str, str]]:
    errors: dict[str, str] = {}
    document = args.get("document", "").strip()
    if document and not document.isdigit():
        errors["document"] = "A document is named by its number (id)."
    patient = normalise(args.get("patient", ""))
    if patient and not is_valid(patient):
        errors["patient"] = "Enter a valid 10-digit NHS number."
    filters = trail.Filters(
        actor=args.get("actor", "").strip(),
        action=args.get("action", "").strip(),
        document_id=int(document) if document.isdigit() else None,
        nhs_number=patient if not errors.get("patient") else "",
        since=_moment(args.get("since", "").strip(), errors, "since"),
        until=_moment(args.get("until", "").strip(), errors, "until"),
    )
    return filters, errors


@bp.get("/audit")
def audit_log() -> Any:
    """The audit trail, newest first, with the same filters as `flagging audit list`."""
    args = {k: v for k, v in request.args.items() if isinstance(v, str)}
    filters, errors = _filters(args)
    before = request.args.get("before", type=int)
    rows: list[AuditEntry] = []
    if not errors:
        session = db_session()
        rows = trail.list_entries(session, filters, limit=PAGE + 1, before_seq=before)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    query: dict[str, Any] = {k: v for k, v in args.items() if v and k != "before"}
    page = render_template(
        "admin/audit.html",
        entries=[trail.as_dict(e) for e in rows],
        values=args,
        errors=errors,
        actions=[a.value for a in audit.Action],
        next_url=url_for("audit_admin.audit_log", before=rows[-1].seq, **query) if more else None,
    )
    return page, 422 if errors else 200


@bp.get("/audit/subject-access")
@records_reads
def subject_access() -> Any:
    """Who has seen this patient's documents: every read by clinicians and GP systems."""
    raw = request.args.get("patient", "")
    patient = normalise(raw)
    error = "" if not raw or is_valid(patient) else "Enter a valid 10-digit NHS number."
    entries: list[dict[str, Any]] = []
    if raw and not error:
        # Reading the report is itself a read of who saw the record: audited with it.
        session = db_session()
        entries = [trail.as_dict(e) for e in trail.subject_access(session, patient)]
        audit.record(
            session,
            actor=audit.user_actor(current_user().id),
            action=audit.Action.EXPORT,
            outcome="subject-access",
            nhs_number=patient,
            detail={"entries": len(entries)},
        )
    page = render_template(
        "admin/subject_access.html", entries=entries, patient=patient if raw else "", error=error
    )
    return page, 422 if error else 200


@bp.get("/messages/<int:message_id>")
@records_reads
def message(message_id: int) -> Any:
    """One stored message, every segment and field labelled with its HL7 name."""
    inspect = cast("InspectFunction | None", current_app.extensions.get("flagging.inspect"))
    session = db_session()
    found = messages_uc.get_message(session, message_id)
    raw = messages_uc.original_bytes(session, found)
    audit.record(
        session,
        actor=audit.user_actor(current_user().id),
        action=audit.Action.EXPORT,
        outcome="message",
        message_id=found.id,
        detail={"format": "fields"},
    )
    segments: list[Any] = []
    problem = ""
    if inspect is None:
        problem = "The message inspector is not available in this process."
    else:
        try:
            segments = inspect(raw)
        except Exception as exc:  # bytes that are not HL7 were kept too: say so, show nothing
            problem = f"This message cannot be read as HL7: {type(exc).__name__}."
    return render_template(
        "admin/message.html", message=found, segments=segments, problem=problem, json=json
    )
