"""The application factory: settings in, a wired Flask app out; nothing starts at import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from config import Settings, load_settings
from flagging.db import Database

if TYPE_CHECKING:
    from api.blueprints.ingest import IngestFunction


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    ingest: IngestFunction | None = None,
) -> Flask:
    """Build the web app. `ingest` processes an HL7 message (wired by the composition root)."""
    settings = settings or load_settings()
    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_message_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
    )
    app.extensions["flagging.settings"] = settings
    app.extensions["flagging.db"] = db or Database(settings)
    app.extensions["flagging.ingest"] = ingest

    from api.blueprints import health
    from api.blueprints import ingest as ingest_blueprint
    from api.problems import register_error_handlers

    register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(ingest_blueprint.bp)
    return app
