"""The application factory: settings in, a wired Flask app out; nothing starts at import."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response

from config import Settings, load_settings
from flagging.db import Database

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


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    ingest: IngestFunction | None = None,
    reprocess: ReprocessFunction | None = None,
    annotate: AnnotateFunction | None = None,
) -> Flask:
    """Build the web app. `ingest` processes an HL7 message and `reprocess` runs a stored one
    again, `annotate` writes the ZFL flag into a stored message for a GP practice (all wired by
    the composition root, since api must not import hl7)."""
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
    app.extensions["flagging.db"] = db or Database(settings)
    app.extensions["flagging.ingest"] = ingest
    app.extensions["flagging.reprocess"] = reprocess
    app.extensions["flagging.annotate"] = annotate

    # Before any blueprint: every <int:...> in a URL is then bounded like the ids it names.
    app.url_map.converters["int"] = DatabaseIntConverter
    app.after_request(_api_headers)

    from api.blueprints import admin, clinician, health, hospital, login
    from api.blueprints import gp as gp_blueprint
    from api.blueprints import ingest as ingest_blueprint
    from api.presentation import register_template_helpers
    from api.problems import register_error_handlers

    register_error_handlers(app)
    register_template_helpers(app)
    app.register_blueprint(login.bp)
    app.register_blueprint(clinician.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(hospital.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(ingest_blueprint.bp)
    app.register_blueprint(gp_blueprint.bp)
    return app
