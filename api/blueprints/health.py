"""Liveness and readiness, for load balancers and the operator on call."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.context import database
from api.problems import problem

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """The process can reach its database and, where it ingests messages, store them."""
    try:
        with database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return problem(503, "Database unavailable", type(exc).__name__)
    write_problem = cast(
        "Callable[[], str | None] | None", current_app.extensions.get("flagging.write_problem")
    )
    reason = write_problem() if write_problem is not None else None
    if reason is not None:  # a full disk, say: messages would only be answered AR
        return problem(503, "Messages cannot be stored", reason)
    return jsonify(status="ready")
