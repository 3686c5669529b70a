"""What every server-rendered blueprint shares: HTML error pages and protective headers."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from flagging.errors import Conflict, FlaggingError, InvalidInput, NotFound
from flagging.gp_reads import MAX_SEQ

# Our pages load nothing from elsewhere and run no script; a PDF is embedded from ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-src 'self'; object-src 'self'; frame-ancestors 'self'; base-uri 'none'"
)
_DOMAIN_STATUS: dict[type[FlaggingError], int] = {NotFound: 404, Conflict: 409, InvalidInput: 422}
_TITLES = {
    400: "The request could not be used",
    401: "You need to sign in",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "That cannot be done here",
    409: "This has changed",
    413: "Too large",
    422: "Please check what you entered",
}


def html_pages(bp: Blueprint) -> None:
    """Give `bp` HTML error pages and headers that keep patient data out of caches and frames."""

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[str, int]:
        status = exc.code or 500
        return error_page(status, exc.description if exc.description else "")

    @bp.errorhandler(FlaggingError)
    def domain_error(exc: FlaggingError) -> tuple[str, int]:
        return error_page(_DOMAIN_STATUS.get(type(exc), 400), str(exc))

    @bp.after_request
    def headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        return response


def query_int(name: str) -> int | None:
    """A whole-number query parameter, None when absent. Ids and numbers are 32-bit in the
    database: a value beyond that is a bad request here, never an overflow (a 500) there."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) <= MAX_SEQ:
        abort(400, f"{name} must be a whole number from 1 to {MAX_SEQ}")
    return int(value)


def error_page(status: int, message: str) -> tuple[str, int]:
    title = _TITLES.get(status, "Something went wrong")
    return render_template("error.html", title=title, message=message, status=status), status
