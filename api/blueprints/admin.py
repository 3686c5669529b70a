"""The administrators' pages: senders, practices, users, screening rules, the quarantine and
unroutable documents. Every change goes through the domain's use cases; each POST answers
with a redirect (or the page again, with what to correct)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from api.auth import current_user, require
from api.context import attempt, db_session
from api.pages import html_pages, query_int
from api.schemas.base import load_form
from api.schemas.practices import PracticeFormSchema, RouteFormSchema
from api.schemas.rules import RuleFormSchema
from api.schemas.senders import UNITS, ReviewWindowSchema, SenderPolicySchema, minutes
from api.schemas.users import UserFormSchema
from flagging import audit, bindings, mesh_channels, organisations, screening, users
from flagging import documents as documents_uc
from flagging import messages as messages_uc
from flagging.errors import FlaggingError
from flagging.models import MessageOutcome, Role

bp = Blueprint("admin", __name__, url_prefix="/admin")
html_pages(bp)
bp.before_request(require(Role.ADMIN))

PAGE = 50
# The message to run again, and who asked (the audit trail's actor).
ReprocessFunction = Callable[[int, str], tuple[str, int | None]]


def _audit(session: Session, action: audit.Action, outcome: str, **detail: Any) -> None:
    """An administrative change, audited in its own transaction by the signed-in admin."""
    audit.record(
        session,
        actor=audit.user_actor(current_user().id),
        action=action,
        outcome=outcome,
        detail=detail,
    )


@bp.get("/")
def index() -> str:
    """Where to start: what needs attention."""
    session = db_session()
    quarantined = messages_uc.count_quarantined(session)
    unroutable = documents_uc.count_unroutable(session)
    return render_template("admin/index.html", quarantined=quarantined, unroutable=unroutable)


# Senders ------------------------------------------------------------------------------------


def _senders_page(errors: dict[int, dict[str, str]] | None = None, status: int = 200) -> Any:
    session = db_session()
    senders = organisations.list_senders(session)
    windows = {s.id: organisations.review_windows(session, s.id) for s in senders}
    bound = bindings.bindings_by_sender(session)
    page = render_template(
        "admin/senders.html",
        senders=senders,
        windows=windows,
        bindings=bound,
        units=list(UNITS),
        errors=errors or {},
        values=request.form if errors else {},
    )
    return page, status


@bp.get("/senders")
def senders() -> Any:
    """Hospital systems, their review windows and their TXA-18 policy."""
    return _senders_page()


@bp.post("/senders/<int:sender_id>/policy")
def sender_policy(sender_id: int) -> Any:
    data, errors = load_form(SenderPolicySchema(), request.form)
    if errors:
        return _senders_page({sender_id: errors}, 422)
    session = db_session()
    sender = organisations.set_sender_policy(
        session,
        sender_id,
        review_window_minutes=minutes(data),
        txa18_v_policy=data["txa18_v_policy"],
    )
    _audit(
        session,
        audit.Action.SENDER_CHANGED,
        "policy",
        sender=sender.ods_code,
        review_window_minutes=sender.review_window_minutes,
        txa18_v_policy=sender.txa18_v_policy,
    )
    flash(f"Saved the settings of {sender.name}.")
    return redirect(url_for("admin.senders"))


@bp.post("/senders/<int:sender_id>/review-windows")
def add_review_window(sender_id: int) -> Any:
    data, errors = load_form(ReviewWindowSchema(), request.form)
    if errors:
        return _senders_page({sender_id: {f"window_{k}": v for k, v in errors.items()}}, 422)
    session = db_session()
    window = organisations.set_review_window(
        session, sender_id, data["document_type"], minutes(data)
    )
    _audit(
        session,
        audit.Action.REVIEW_WINDOW_CHANGED,
        "set",
        sender_id=sender_id,
        document_type=window.document_type,
        minutes=window.minutes,
    )
    flash(f"Documents of type {window.document_type} now have their own review window.")
    return redirect(url_for("admin.senders"))


@bp.post("/senders/<int:sender_id>/review-windows/<int:window_id>/delete")
def remove_review_window(sender_id: int, window_id: int) -> Response:
    session = db_session()
    organisations.remove_review_window(session, sender_id, window_id)
    _audit(
        session,
        audit.Action.REVIEW_WINDOW_CHANGED,
        "removed",
        sender_id=sender_id,
        window_id=window_id,
    )
    flash("Removed: that document type uses the sender's review window again.")
    return redirect(url_for("admin.senders"))


# Practices ----------------------------------------------------------------------------------


@bp.route("/practices", methods=["GET", "POST"])
def practices() -> Any:
    """GP practices documents go to; register one."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        data, errors = load_form(PracticeFormSchema(), request.form)
        if not errors:
            try:
                with attempt() as session:
                    practice = organisations.add_practice(session, data["ods_code"], data["name"])
                    _audit(
                        session, audit.Action.PRACTICE_CHANGED, "added", practice=practice.ods_code
                    )
                    flash(f"Registered practice {practice.ods_code}.")
                return redirect(url_for("admin.practices"))
            except FlaggingError as exc:
                errors = {"ods_code": str(exc)}
    session = db_session()
    rows = organisations.list_practices(session)
    mesh_rows = mesh_channels.channel_status(session)
    page = render_template(
        "admin/practices.html",
        practices=rows,
        mesh_channels=mesh_rows,
        errors=errors,
        values=request.form,
    )
    return page, 422 if errors else 200


# Users --------------------------------------------------------------------------------------


def _users_page(
    *, errors: dict[str, str] | None = None, password: tuple[str, str] | None = None
) -> Any:
    session = db_session()
    rows = users.list_users(session)
    senders = {s.id: s for s in organisations.list_senders(session)}
    page = render_template(
        "admin/users.html",
        users=rows,
        senders=senders,
        errors=errors or {},
        values=request.form if errors else {},
        password=password,
        now=datetime.now(UTC),
    )
    return page, 422 if errors else 200


@bp.get("/users")
def users_list() -> Any:
    """Accounts; add one, reset a password, or make one inactive."""
    return _users_page()


@bp.post("/users")
def add_user() -> Any:
    data, errors = load_form(UserFormSchema(), request.form)
    if errors:
        return _users_page(errors=errors)
    password = users.new_password()
    try:
        with attempt() as session:
            user = users.add_user(
                session,
                username=data["username"],
                display_name=data["display_name"],
                role=data["role"],
                password=password,
                sender_id=data.get("sender_id") if data["role"] == Role.CLINICIAN else None,
                clinician_code=data.get("clinician_code", ""),
            )
            username = user.username
            _audit(session, audit.Action.USER_CHANGED, "added", user_id=user.id, role=user.role)
    except FlaggingError as exc:
        return _users_page(errors={"username": str(exc)})
    # Shown on this response only: never in a redirect, a flash or a log.
    return _users_page(password=(username, password))


@bp.post("/users/<int:user_id>/reset-password")
def reset_password(user_id: int) -> Any:
    password = users.new_password()
    session = db_session()
    username = users.reset_password(session, user_id, password).username
    _audit(session, audit.Action.USER_CHANGED, "password-reset", user_id=user_id)
    return _users_page(password=(username, password))


@bp.post("/users/<int:user_id>/active")
def set_active(user_id: int) -> Response:
    active = request.form.get("active") == "1"
    if user_id == current_user().id and not active:
        flash("You cannot make your own account inactive.")
        return redirect(url_for("admin.users_list"))
    session = db_session()
    user = users.set_user_active(session, user_id, active)
    _audit(
        session,
        audit.Action.USER_CHANGED,
        "activated" if active else "deactivated",
        user_id=user_id,
    )
    flash(f"{user.username} can {'now' if active else 'no longer'} sign in.")
    return redirect(url_for("admin.users_list"))


# Screening rules ----------------------------------------------------------------------------


@bp.route("/rules", methods=["GET", "POST"])
def rules() -> Any:
    """Screening rules: what holds a document back for a person to decide."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        data, errors = load_form(RuleFormSchema(), request.form)
        if not errors:
            try:
                with attempt() as session:
                    rule = screening.add_rule(session, **data)
                    _audit(session, audit.Action.RULE_CHANGED, "added", rule_id=rule.id)
                    flash(f"Added the rule {rule.name}.")
                return redirect(url_for("admin.rules"))
            except FlaggingError as exc:
                errors = {"pattern": str(exc)}
    session = db_session()
    rows = screening.list_rules(session)
    page = render_template(
        "admin/rules.html", rules=rows, kinds=screening.KINDS, errors=errors, values=request.form
    )
    return page, 422 if errors else 200


@bp.post("/rules/<int:rule_id>/active")
def rule_active(rule_id: int) -> Response:
    active = request.form.get("active") == "1"
    session = db_session()
    rule = screening.set_rule_active(session, rule_id, active)
    _audit(session, audit.Action.RULE_CHANGED, "on" if active else "off", rule_id=rule_id)
    flash(f"{rule.name} is {'on' if active else 'off'}.")
    return redirect(url_for("admin.rules"))


@bp.post("/rules/starter")
def starter_rules() -> Response:
    session = db_session()
    added = screening.add_starter_rules(session)
    _audit(session, audit.Action.RULE_CHANGED, "starter", added=added)
    flash(f"Added {added} starter rules." if added else "The starter rules are all there.")
    return redirect(url_for("admin.rules"))


# Quarantine ---------------------------------------------------------------------------------


@bp.get("/messages")
def quarantine() -> str:
    """Messages not accepted (quarantined: content errors; rejected), newest first."""
    asked = request.args.get("outcome", "")
    outcome = MessageOutcome.REJECTED if asked == "rejected" else MessageOutcome.QUARANTINED
    before = query_int("before")
    session = db_session()
    rows = messages_uc.list_messages(session, outcome=outcome, before_id=before, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render_template(
        "admin/messages.html",
        messages=rows,
        outcome=outcome.value,
        next_url=url_for("admin.quarantine", outcome=outcome.value, before=rows[-1].id)
        if more
        else None,
        can_reprocess=current_app.extensions.get("flagging.reprocess") is not None,
    )


@bp.post("/messages/<int:message_id>/reprocess")
def reprocess(message_id: int) -> Response:
    function = cast("ReprocessFunction | None", current_app.extensions.get("flagging.reprocess"))
    if function is None:
        flash("Reprocessing is not available in this process.")
    else:
        try:
            code, new_id = function(message_id, audit.user_actor(current_user().id))
        except FlaggingError as exc:
            flash(f"Message {message_id} was not reprocessed: {exc}")
        else:
            accepted = "accepted" if code in ("AA", "CA") else "still not accepted"
            flash(f"Message {message_id} was run again as message {new_id}: {accepted} ({code}).")
    return redirect(url_for("admin.quarantine", outcome=request.form.get("outcome", "")))


# Unroutable documents -----------------------------------------------------------------------


def _unroutable_page(errors: dict[int, str] | None = None) -> Any:
    before = query_int("before")
    session = db_session()
    rows = documents_uc.list_documents(session, unroutable=True, before_id=before, limit=PAGE + 1)
    senders = {s.id: s for s in organisations.list_senders(session)}
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    page = render_template(
        "admin/unroutable.html",
        documents=rows,
        senders=senders,
        errors=errors or {},
        values=request.form,
        next_url=url_for("admin.unroutable", before=rows[-1].id) if more else None,
    )
    return page, 422 if errors else 200


@bp.get("/unroutable")
def unroutable() -> Any:
    """Documents whose practice is missing, unknown (V81999) or not registered."""
    return _unroutable_page()


@bp.post("/documents/<int:document_id>/route")
def route(document_id: int) -> Any:
    data, errors = load_form(RouteFormSchema(), request.form)
    if errors:
        return _unroutable_page({document_id: errors["practice"]})
    try:
        with attempt() as session:
            document = documents_uc.route_document(session, document_id, data["practice"])
            audit.record(
                session,
                actor=audit.user_actor(current_user().id),
                action=audit.Action.DOCUMENT_ROUTED,
                document_id=document.id,
                nhs_number=document.nhs_number,
                practice=document.practice_ods_code,
            )
            flash(f"Document {document.document_number} now goes to {document.practice_ods_code}.")
    except FlaggingError as exc:
        return _unroutable_page({document_id: str(exc)})
    return redirect(url_for("admin.unroutable"))
