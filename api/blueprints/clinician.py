"""The clinicians' pages: the worklist, a document, and the decision whether the patient may
see it. A clinician sees and decides only on documents of their own trust (sender); anything
else is answered as if it did not exist."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from api.auth import SignedIn, current_user, require
from api.context import attempt, db_session, records_reads
from api.pages import html_pages, query_int
from api.presentation import LONDON, Mark, highlight
from api.schemas.base import load_form
from api.schemas.decisions import DecisionFormSchema
from api.schemas.worklist import WorklistFilterSchema
from flagging import audit
from flagging import documents as documents_uc
from flagging.errors import Conflict, InvalidInput
from flagging.models import REASON_LABELS, Practice, Role, Sender, Visibility
from flagging.nhs_number import is_valid, normalise
from flagging.visibility import Actor, decide_visibility
from flagging.worklist import Cursor, Filters, worklist_page

bp = Blueprint("clinician", __name__)
html_pages(bp)
bp.before_request(require(Role.CLINICIAN))

# The reasons a person may choose (`withdrawn` is the service's own, never offered).
REASONS = [(reason.value, label) for reason, label in REASON_LABELS.items()]


def _start_of_day(day: date) -> datetime:
    """Midnight at the start of `day` in England, as UTC."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def _patient_filter(text: str) -> tuple[dict[str, str], str]:
    """An NHS number (any spacing) or 'family name[, given name]'; returns filters or an error."""
    if not text:
        return {}, ""
    digits = normalise(text)
    if digits.isdigit():
        if not is_valid(digits):
            return {}, "That is not a valid NHS number: it has 10 digits and a check digit"
        return {"nhs_number": digits}, ""
    family, _, given = text.partition(",")
    return {"family_name": family.strip(), "given_name": given.strip()}, ""


@bp.get("/worklist")
def worklist() -> str | tuple[str, int]:
    """Documents of my trust, those needing a decision first, soonest deadline first."""
    user = current_user()
    data, errors = load_form(WorklistFilterSchema(), request.args)
    if errors:
        data = {"status": "all", "patient": "", "after": ""}
    who = data.get("who") or ("mine" if user.clinician_code else "all")
    patient, patient_error = _patient_filter(str(data.get("patient", "")))
    if patient_error:
        errors["patient"] = patient_error
    status = data.get("status", "all")
    filters = Filters(
        sender_id=user.sender_id or 0,
        author_code=user.clinician_code if who == "mine" else "",
        status=None if status == "all" else Visibility(status),
        received_from=_start_of_day(data["received_from"]) if data.get("received_from") else None,
        received_before=(
            _start_of_day(data["received_to"] + timedelta(days=1))
            if data.get("received_to")
            else None
        ),
        **patient,
    )
    if who == "mine" and not user.clinician_code:
        errors["who"] = "Your account has no clinician code, so no document is marked as yours"
    after = None
    if data.get("after"):
        try:
            after = Cursor.decode(str(data["after"]))
        except InvalidInput:
            errors["after"] = "That page link is no longer valid: this is the first page"
    session = db_session()
    page = worklist_page(session, filters, after)
    sender = session.get(Sender, user.sender_id) if user.sender_id else None
    held = documents_uc.held_by(
        session,
        [r.document.id for r in page.rows if r.document.visibility == Visibility.PENDING],
    )
    query: dict[str, Any] = {k: v for k, v in request.args.items() if k != "after" and v}
    html = render_template(
        "worklist.html",
        page=page,
        sender=sender,
        held=held,
        who=who,
        status=status,
        values=dict(request.args),
        errors=errors,
        next_url=url_for("clinician.worklist", **query, after=page.next.encode())
        if page.next
        else None,
        first_url=url_for("clinician.worklist", **query) if after else None,
        now=datetime.now(UTC),
    )
    return (html, 422) if errors and "after" not in errors else html


def _page(
    session: Session,
    user: SignedIn,
    document_id: int,
    *,
    version_number: int | None = None,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    stale: str = "",
) -> str:
    document = documents_uc.trust_document(session, user.sender_id, document_id)
    versions = documents_uc.versions_of(session, document.id)
    latest = versions[-1]
    shown = documents_uc.version_numbered(versions, document_id, version_number)
    hits = documents_uc.screening_hits_of(session, shown.id)
    text = documents_uc.version_text(shown)
    marks = [Mark(h.start, h.end, r.name) for h, r in hits if h.end > h.start]
    matched = []
    for hit, rule in hits:
        excerpt = text[hit.start : hit.end] if text and hit.end > hit.start else ""
        matched.append({"rule": rule, "excerpt": excerpt})
    # Why the latest version is held, for the summary at the top of the page.
    latest_matched = documents_uc.rules_holding(
        session, document, versions, hits if shown.id == latest.id else None
    )
    practice = session.get(Practice, document.practice_id) if document.practice_id else None
    # Every page showing a document is a view of it: audited in the page's transaction (so
    # the views showing one are `records_reads`).
    audit.document_read(
        session,
        actor=audit.user_actor(user.id),
        action=audit.Action.DOCUMENT_VIEWED,
        document=document,
        version=shown.version,
        detail={"representation": "page"},
    )
    return render_template(
        "document.html",
        document=document,
        sender=session.get(Sender, document.sender_id),
        practice=practice,
        versions=versions,
        version_numbers={v.id: v.version for v in versions},
        latest=latest,
        shown=shown,
        text=highlight(text, marks) if text is not None else None,
        is_pdf=shown.content_type == "application/pdf",
        matched=matched,
        latest_matched=latest_matched,
        decisions=documents_uc.decisions_of(session, document.id),
        reasons=REASONS,
        form=form or {},
        errors=errors or {},
        stale=stale,
        now=datetime.now(UTC),
        tomorrow=(datetime.now(LONDON) + timedelta(days=1)).date().isoformat(),
    )


@bp.get("/documents/<int:document_id>")
@records_reads
def document(document_id: int) -> str:
    """A document: patient, authorship, its text or PDF, screening hits, versions, history."""
    version = query_int("version")
    return _page(db_session(), current_user(), document_id, version_number=version)


@bp.post("/documents/<int:document_id>/decision")
def decide(document_id: int) -> Response | tuple[str, int]:
    """Withhold the document from the patient, or release it. Refused when the page was stale."""
    user = current_user()
    data, errors = load_form(DecisionFormSchema(), request.form)
    if errors:
        return _page(db_session(), user, document_id, form=data, errors=errors), 422
    withhold = data["decision"] == "withhold"
    until = data.get("withhold_until")
    try:
        with attempt() as session:
            documents_uc.trust_document(session, user.sender_id, document_id)
            decide_visibility(
                session,
                document_id=document_id,
                visibility=Visibility.WITHHELD if withhold else Visibility.VISIBLE,
                actor=Actor(code=user.clinician_code, name=user.display_name, user_id=user.id),
                reason=data.get("reason", "") if withhold else "",
                note=data.get("note", ""),
                withhold_until=_start_of_day(until) if withhold and until else None,
                expected_revision=data["revision"],
                now=datetime.now(UTC),
            )
    except Conflict as exc:
        return _page(db_session(), user, document_id, stale=str(exc)), 409
    except InvalidInput as exc:
        field = "withhold_until" if "until" in str(exc) else "note"
        page = _page(db_session(), user, document_id, form=data, errors={field: str(exc)})
        return page, 422
    flash(
        "Withheld: the patient will not see this document."
        if withhold
        else "Released: the patient can now see this document."
    )
    return redirect(url_for("clinician.document", document_id=document_id))


@bp.get("/documents/<int:document_id>/versions/<int:version>/content")
@records_reads
def content(document_id: int, version: int) -> Response:
    """A version's rendition as received: a PDF shown inline, anything else downloaded."""
    user = current_user()
    session = db_session()
    document = documents_uc.trust_document(session, user.sender_id, document_id)
    found = documents_uc.get_version(session, document.id, version)
    body, content_type = found.content or b"", found.content_type or "text/plain"
    audit.document_read(
        session,
        actor=audit.user_actor(user.id),
        action=audit.Action.DOCUMENT_VIEWED,
        document=document,
        version=version,
        detail={"representation": "content"},
    )
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in document.document_number)
    inline = content_type in ("application/pdf", "text/plain")
    response = Response(body, mimetype=content_type if inline else "application/octet-stream")
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="{name}-v{version}"'
    # The PDF viewer is the browser's own: let it run, but only inside our page.
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'self'"
    return response


@bp.get("/documents/by-number/<sender>/<path:number>")
def by_number(sender: str, number: str) -> Response:
    """The stable link an EPR opens: sender (MSH-4 code) and document number (TXA-12 / OBR-3)."""
    user = current_user()
    document = documents_uc.trust_document_by_number(db_session(), user.sender_id, sender, number)
    return redirect(url_for("clinician.document", document_id=document.id))
