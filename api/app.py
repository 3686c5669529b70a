"""The application factory: settings in, a wired Flask app out; nothing starts at import."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask

from config import Settings, load_settings
from flagging.db import Database

if TYPE_CHECKING:
    from api.blueprints.admin import ReprocessFunction
    from api.blueprints.gp import AnnotateFunction
    from api.blueprints.ingest import IngestFunction


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

    from api.blueprints import admin, clinician, dashboard, health, hospital, login, metrics, search
    from api.blueprints import gp as gp_blueprint
    from api.blueprints import ingest as ingest_blueprint
    from api.presentation import register_template_helpers
    from api.problems import register_error_handlers

    register_error_handlers(app)
    register_template_helpers(app)
    app.register_blueprint(login.bp)
    app.register_blueprint(clinician.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(hospital.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(ingest_blueprint.bp)
    app.register_blueprint(gp_blueprint.bp)
    return app
