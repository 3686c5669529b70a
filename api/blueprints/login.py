"""Signing in and out, for clinicians and administrators alike."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from api.auth import check_csrf, safe_next, sign_in, sign_out, signed_in
from api.context import db_session, settings
from api.pages import html_pages
from flagging import audit, telemetry
from flagging.users import authenticate, find_user

bp = Blueprint("login", __name__)
html_pages(bp)


def _home() -> str:
    user = signed_in()
    if user is None:
        return url_for("login.login")
    return url_for("admin.index") if user.is_admin else url_for("clinician.worklist")


@bp.get("/")
def index() -> Response:
    """Send people to their starting page."""
    return redirect(_home())


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """The sign-in form; five wrong passwords in a row lock the account for a while."""
    target = safe_next(request.values.get("next"))
    if signed_in() is not None:
        return redirect(target or _home())
    if request.method == "GET":
        return render_template("login.html", next=target or "", username="", error="")
    check_csrf()
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    session = db_session()
    # The view returns whether or not the login succeeds, so the request's transaction is
    # committed either way: failed attempts must be counted.
    result = authenticate(
        session, username, password, datetime.now(UTC), address=request.remote_addr or ""
    )
    if result.user is not None:
        sign_in(result.user)
    # A refused username is kept only as the account it names, if any: what people type
    # there is sometimes a password.
    known = result.user or (find_user(session, username) if username.strip() else None)
    audit.record(
        session,
        actor=audit.user_actor(known.id) if known else "unknown",
        action=audit.Action.SIGN_IN,
        outcome="success" if result.user is not None else "failure",
        detail={"peer": request.remote_addr or ""},
    )
    if result.user is None:
        telemetry.sign_in_failed()
        page = render_template(
            "login.html", next=target or "", username=username, error=result.refusal
        )
        return page, 401
    return redirect(target or _home())


@bp.post("/logout")
def logout() -> Response | str:
    """End the session (the form carries the CSRF token, so no other site can sign you out)."""
    check_csrf()
    user = signed_in()
    if user is not None:
        session = db_session()
        audit.record(
            session,
            actor=audit.user_actor(user.id),
            action=audit.Action.SESSION_ENDED,
            detail={"how": "signed out"},
        )
    sign_out()
    if settings().trusted_user_header:
        return render_template("logged_out.html", single_sign_on=True)
    flash("You have signed out.")
    return redirect(url_for("login.login"))
