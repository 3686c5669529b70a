"""Finding a message on the web, as `flagging messages list` does on the command line: by
sender, MSH-10, NHS number, document number, outcome and time; one message with its bytes
(escaped, as text) and the ACK it was answered with; closing a quarantine entry with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.auth import current_user, require
from api.context import attempt, db_session
from api.pages import html_pages
from flagging import messages as messages_uc
from flagging.errors import FlaggingError, InvalidInput
from flagging.models import MessageOutcome, MessageResolution, Role

bp = Blueprint("search", __name__, url_prefix="/admin/search")
html_pages(bp)
bp.before_request(require(Role.ADMIN))

PAGE = 50
FIELDS = ("sender", "control_id", "nhs_number", "document", "outcome", "since", "until")


def _when(value: str, label: str, errors: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors[label] = "Enter a date like 2026-11-24 or a time like 2026-11-24T09:30"
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@bp.get("")
def search() -> tuple[str, int] | str:
    """The search form and its results, newest first."""
    form = {name: request.args.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    outcome = None
    if form["outcome"]:
        try:
            outcome = MessageOutcome(form["outcome"])
        except ValueError:
            errors["outcome"] = "Choose an outcome from the list"
    query = messages_uc.MessageSearch(
        sender=form["sender"],
        control_id=form["control_id"],
        nhs_number=form["nhs_number"],
        document_number=form["document"],
        outcome=outcome,
        since=_when(form["since"], "since", errors),
        until=_when(form["until"], "until", errors),
        open_only=request.args.get("open") == "1",
    )
    rows = []
    if not errors:
        try:
            session = db_session()
            rows = messages_uc.search_messages(
                session, query, before_id=request.args.get("before", type=int), limit=PAGE
            )
        except FlaggingError as exc:
            errors["nhs_number"] = str(exc)
    page = render_template(
        "admin/search.html",
        form=form,
        open_only=query.open_only,
        errors=errors,
        messages=rows,
        outcomes=[o.value for o in MessageOutcome],
    )
    return (page, 422) if errors else page


@bp.get("/messages/<int:message_id>")
def message(message_id: int) -> str:
    """One message: its receipt, its bytes as text (escaped by the template) and its ACK."""
    session = db_session()
    found = messages_uc.get_message(session, message_id)
    raw = messages_uc.original_bytes(session, found)
    session.expunge(found)
    return render_template(
        "admin/search_message.html",
        message=found,
        raw=raw.decode("latin-1").replace("\r", "\n"),
        ack=(found.ack or b"").decode("latin-1").replace("\r", "\n"),
        closable=found.outcome in messages_uc.CLOSABLE and not found.resolution,
    )


@bp.post("/messages/<int:message_id>/close")
def close(message_id: int) -> Response:
    """Resolve or dismiss a quarantined or rejected entry, with the reason."""
    action = request.form.get("action", "")
    resolution = {
        "resolve": MessageResolution.RESOLVED,
        "dismiss": MessageResolution.DISMISSED,
    }.get(action)
    try:
        if resolution is None:
            raise InvalidInput("choose resolve or dismiss")
        with attempt() as session:
            messages_uc.close_message(
                session,
                message_id,
                resolution,
                reason=request.form.get("reason", ""),
                by=current_user().username,
                now=datetime.now(UTC),
            )
        flash(f"Message {message_id} {resolution.value}.")
    except FlaggingError as exc:
        flash(f"Message {message_id} was not closed: {exc}")
    return redirect(url_for("search.message", message_id=message_id))
