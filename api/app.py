"""The application factory: settings in, a wired Flask app out; nothing starts at import."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, g, request
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response

from api.context import discard_transaction, in_request_transaction
from config import Settings, load_settings, logs
from flagging.transactions import Transactions

if TYPE_CHECKING:
    from api.blueprints.admin import ReprocessFunction
    from api.blueprints.gp import AnnotateFunction
    from api.blueprints.ingest import IngestFunction


# Ids and sequence numbers are 32-bit integers in the database (PostgreSQL raises on a bigger
# value, which would be a 500): a URL naming a larger one names nothing and is a 404.
MAX_PATH_INT = 2**31 - 1
# What any answer without a policy of its own gets: the JSON, HL7 and document answers are
# data, never a page, so nothing in them may run, load or be framed even if a browser opens one.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox"


class DatabaseIntConverter(IntegerConverter):
    """`<int:...>`, at most MAX_PATH_INT (werkzeug's has no upper bound; never negative)."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_PATH_INT,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def _api_headers(response: Response) -> Response:
    """Runs after each blueprint's own: the pages set their own policy, everything else gets
    the API's. A hospital-declared media type is never sniffed into something runnable."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
    return response


access_log = logging.getLogger("flagging.access")
# A request id from the proxy in front is kept when it looks like one; otherwise we make one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _start_request() -> None:
    sent = request.headers.get("X-Request-ID", "")
    rid = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
    g.request_id_token = logs.request_id.set(rid)
    g.request_started = time.perf_counter()


def _access_log(response: Response) -> Response:
    """One line a request: method, path, status and time, never the query string (patient
    filters travel in it) nor any header or body."""
    response.headers["X-Request-ID"] = logs.request_id.get()
    took = (time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000
    access_log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        response.status_code,
        took,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(took, 1),
        },
    )
    return response


def _end_request(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.request_id.reset(token)


def create_app(
    settings: Settings | None = None,
    *,
    db: Transactions,
    ingest: IngestFunction | None = None,
    reprocess: ReprocessFunction | None = None,
    annotate: AnnotateFunction | None = None,
    write_problem: Callable[[], str | None] | None = None,
) -> Flask:
    """Build the web app on the process's database `db`. `ingest` processes an HL7 message
    and `reprocess` runs a stored one again, `annotate` writes the ZFL flag into a stored
    message for a GP practice (all wired by the composition root, since api must not import
    hl7 nor the storage package). `write_problem` says why messages
    cannot be stored now, or None (readiness)."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_message_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        SESSION_COOKIE_NAME="flagging_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )
    app.extensions["flagging.settings"] = settings
    app.extensions["flagging.db"] = db
    app.extensions["flagging.ingest"] = ingest
    app.extensions["flagging.reprocess"] = reprocess
    app.extensions["flagging.annotate"] = annotate
    app.extensions["flagging.write_problem"] = write_problem

    # Before any blueprint: every <int:...> in a URL is then bounded like the ids it names.
    app.url_map.converters["int"] = DatabaseIntConverter
    app.after_request(_api_headers)
    app.before_request(_start_request)
    app.after_request(_access_log)
    app.teardown_request(_end_request)

    from api.blueprints import (
        admin,
        audit_admin,
        clinician,
        dashboard,
        health,
        hospital,
        login,
        metrics,
        search,
    )
    from api.blueprints import gp as gp_blueprint
    from api.blueprints import ingest as ingest_blueprint
    from api.presentation import register_template_helpers
    from api.problems import register_error_handlers

    register_error_handlers(app)
    register_template_helpers(app)
    app.register_blueprint(login.bp)
    app.register_blueprint(clinician.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(audit_admin.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(hospital.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(ingest_blueprint.bp)
    app.register_blueprint(gp_blueprint.bp)
    # Every view runs in the request's transaction (api/context.py), committed at its end.
    for endpoint, view in app.view_functions.items():
        app.view_functions[endpoint] = in_request_transaction(view)
    app.teardown_request(discard_transaction)
    return app
