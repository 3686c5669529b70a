from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.wiring import Services, web_app
from config import Settings
from flagging.models import Visibility
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, decide, document_id, send, token_for


@pytest.fixture
def app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    return web_app(Services(settings, db, handler))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class GPWorld:
    """Two practices, each with documents, and a token that may read only the first."""

    token: str  # scoped to samples.PRACTICE
    other_token: str  # scoped to OTHER_PRACTICE
    mine: int  # a document of samples.PRACTICE (withheld, two versions)
    theirs: int  # a document of OTHER_PRACTICE
    pdf: int  # a PDF report of samples.PRACTICE


@pytest.fixture
def gp_world(db: Database, handler: MessageHandler) -> GPWorld:
    add_practice(db, OTHER_PRACTICE)
    send(handler, samples.mdm(control_id="M1", number="MINE-1"))
    send(handler, samples.mdm("T10", control_id="M2", number="MINE-2", parent="MINE-1"))
    send(handler, samples.mdm(control_id="M3", number="THEIRS", practice=OTHER_PRACTICE))
    send(handler, samples.oru(control_id="O1", number="PDF-1", observations=samples.obx_pdf()))
    mine = document_id(db, "MINE-1")
    decide(db, mine, Visibility.WITHHELD)
    return GPWorld(
        token=token_for(db, samples.PRACTICE),
        other_token=token_for(db, OTHER_PRACTICE),
        mine=mine,
        theirs=document_id(db, "THEIRS"),
        pdf=document_id(db, "PDF-1"),
    )
