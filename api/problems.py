"""Errors as RFC 9457 problem details, the one error shape of every JSON endpoint."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from flagging.errors import Conflict, FlaggingError, InvalidInput, NotFound


def problem(status: int, title: str, detail: str = "", **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


_DOMAIN_STATUS: dict[type[FlaggingError], int] = {NotFound: 404, Conflict: 409, InvalidInput: 422}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = problem(exc.code or 500, exc.name, exc.description or "")
        for name, value in exc.get_headers() if exc.response is None else []:
            if name.lower() == "www-authenticate":
                response.headers[name] = value
        return response

    @app.errorhandler(FlaggingError)
    def domain_error(exc: FlaggingError) -> Response:
        status = _DOMAIN_STATUS.get(type(exc), 400)
        return problem(status, type(exc).__name__, str(exc))
