"""What the patient will see is never ambiguous: a withdrawn document says "do not show" in every
representation, and every version of a document is filed by the reference client and agrees
with the decision made on the latest one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from cli.gp_poll import GPClient
from cli.wiring import Services, web_app
from config import Settings
from flagging.models import Visibility
from flagging.storage.engine import Database
from hl7 import er7
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import decide, document_id, feed_table, send, token_for

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
BASE = f"/gp/v1/practices/{samples.PRACTICE}/documents"


@pytest.fixture
def app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    return web_app(Services(settings, db, handler))


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _zfl(body: bytes) -> list[str]:
    message = er7.parse(body, "utf-8")
    zfl = message.first("ZFL")
    assert zfl is not None
    return list(zfl.fields)


def _security(resource: dict[str, object]) -> set[tuple[str, str]]:
    meta = resource["meta"]
    assert isinstance(meta, dict)
    return {(label["system"], label["code"]) for label in meta["security"]}


def test_a_cancel_after_release_makes_every_representation_say_do_not_show(
    db: Database, handler: MessageHandler, app: Flask, base_url: str, tmp_path: Path
) -> None:
    token = token_for(db, samples.PRACTICE)
    send(handler, samples.mdm(control_id="M1", number="DOC-1"))
    doc = document_id(db, "DOC-1")
    decide(db, doc, Visibility.VISIBLE)
    client = GPClient(base_url, token, samples.PRACTICE, tmp_path)
    client.poll_once()
    filed = tmp_path / "documents" / str(doc)
    assert json.loads((filed / "visibility.json").read_text())["show_to_patient"] is True

    send(handler, samples.mdm("T11", control_id="M2", number="DOC-1", lines=()))

    # The feed: the withdrawal says withheld, never visible.
    last = feed_table(db, samples.PRACTICE)[-1]
    assert (last[1], last[4]) == ("document.withdrawn", "withheld")
    http: FlaskClient = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    for query in ("", "?version=1", "?version=2"):
        # JSON: a withdrawn status and NOPAT, for the cancel and the released original alike.
        data = http.get(f"{BASE}/{doc}{query}", headers=auth).json
        assert data is not None
        assert data["status"] == "withdrawn"
        assert data["visibility"]["status"] == "withheld"
        assert data["visibility"]["nopat"] is True
        assert data["visibility"]["reason"] == "withdrawn"
        assert data["visibility"]["source"] == "message"
        # HL7 v2: ZFL withheld, NOPAT, reason withdrawn, when, and its source.
        zfl = _zfl(http.get(f"{BASE}/{doc}/hl7v2{query}", headers=auth).data)
        assert zfl[2] == "W"
        assert zfl[3].startswith("NOPAT^")
        assert zfl[4].startswith("withdrawn^Withdrawn")
        assert zfl[6].endswith("+0000")
        assert zfl[8] == "message"
        # FHIR: entered-in-error, restricted and NOPAT.
        fhir = http.get(f"{BASE}/{doc}/fhir{query}", headers=auth).json
        assert fhir is not None
        assert fhir["status"] == "entered-in-error"
        assert _security(fhir) == {(CONFIDENTIALITY, "R"), (ACT_CODE, "NOPAT")}

    # The reference client: every version filed as withdrawn, not shown, its text removed.
    client.poll_once()
    for path in [filed / "visibility.json", *filed.glob("versions/*/visibility.json")]:
        visibility = json.loads(path.read_text())
        assert visibility["show_to_patient"] is False, path
        assert visibility["withdrawn"] is True, path
        assert visibility["status"] == "withheld", path
    assert sorted(p.name for p in filed.glob("versions/*")) == ["1", "2"]
    assert list(filed.glob("versions/*/content.*")) == []


def test_the_reference_client_files_the_original_and_the_addendum_and_says_which_is_current(
    db: Database, handler: MessageHandler, base_url: str, tmp_path: Path
) -> None:
    token = token_for(db, samples.PRACTICE)
    send(handler, samples.mdm(control_id="M1", number="DOC-1", lines=("Original letter.",)))
    send(
        handler,
        samples.mdm("T06", control_id="M2", number="ADD-1", parent="DOC-1", lines=("Addendum.",)),
    )
    doc = document_id(db, "DOC-1")
    decide(db, doc, Visibility.VISIBLE)

    GPClient(base_url, token, samples.PRACTICE, tmp_path).poll_once()

    filed = tmp_path / "documents" / str(doc)
    assert (filed / "versions" / "1" / "content.txt").read_text() == "Original letter."
    assert (filed / "versions" / "2" / "content.txt").read_text() == "Addendum."
    current = json.loads((filed / "visibility.json").read_text())
    assert (current["current_version"], current["show_to_patient"]) == (2, True)
    for number in ("1", "2"):
        version = json.loads((filed / "versions" / number / "version.json").read_text())
        assert version["version"] == int(number)
        shown = json.loads((filed / "versions" / number / "visibility.json").read_text())
        # Released on version 2, the decision applies to the original too.
        assert (shown["status"], shown["show_to_patient"]) == ("visible", True)
