from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.wiring import Services, web_app
from config import Settings
from flagging.db import Database
from hl7.inbound import MessageHandler


@pytest.fixture
def app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    return web_app(Services(settings, db, handler))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
