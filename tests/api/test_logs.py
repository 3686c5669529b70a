"""No patient identifier in any log: the whole flow at DEBUG, then every line searched.

The flow: messages in over HTTP and MLLP (one with a content error), the worklist filtered by
NHS number and by name, the document opened and withheld, the EPR's decision, the GP system's
reads, and a request that fails inside with an exception quoting the patient. Every line the
process logged is then searched for each NHS number (in every spelling), name and text snippet
the flow used.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from config.logs import QUIET_LOGGERS, configure_logging
from flagging import documents as documents_uc
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples
from tests.gp_helpers import document_id, token_for

NHS_NUMBER = samples.NHS_NUMBERS[1]  # 999 000 0026, a test number
BAD_NHS_NUMBER = "9990000019"  # fails the modulus 11 check: a content error
FAMILY, GIVEN = "QUILLFEATHER", "ZEBEDIAH"
SNIPPET = "Xylophonic tremor noted on discharge"


def _message(control_id: str, number: str, nhs_number: str = NHS_NUMBER) -> bytes:
    return samples.build(
        samples.msh(control_id),
        samples.segment("EVN", {1: "T02", 2: "20261124093000"}),
        samples.pid(nhs_number, family=FAMILY, given=GIVEN),
        samples.pd1(),
        "PV1|1|I",
        samples.txa(number),
        samples.obx_text(SNIPPET, f"Patient {GIVEN} {FAMILY} to be reviewed."),
    )


def _spellings(nhs_number: str) -> list[str]:
    return [nhs_number, f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}"]


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The service's own logging, at DEBUG and as JSON, into a buffer."""
    root = logging.getLogger()
    saved = (
        list(root.handlers),
        root.level,
        {n: logging.getLogger(n).level for n in QUIET_LOGGERS},
    )
    buffer = io.StringIO()
    configure_logging("DEBUG", "json", buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_the_whole_flow_at_debug_logs_no_nhs_number_name_or_text(
    app: Flask,
    client: FlaskClient,
    db: Database,
    handler: MessageHandler,
    sender_token: str,
    logged: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bearer = {"Authorization": f"Bearer {sender_token}"}
    http = client.post(
        "/hl7/v2/messages",
        data=_message("LOG1", "LOG-1"),
        headers=bearer,
        content_type="application/hl7-v2",
    )
    assert b"MSA|AA|LOG1" in http.data
    bad = client.post(
        "/hl7/v2/messages",
        data=_message("LOG2", "LOG-2", BAD_NHS_NUMBER),
        headers=bearer,
        content_type="application/hl7-v2",
    )
    assert b"MSA|AE|LOG2" in bad.data
    assert handler.handle(_message("LOG3", "LOG-3"), transport="mllp", peer="t").code == "AA"

    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    for patient in (NHS_NUMBER, _spellings(NHS_NUMBER)[1], FAMILY, f"{FAMILY}, {GIVEN}"):
        page = client.get("/worklist", query_string={"patient": patient, "who": "all"})
        assert page.status_code == 200
        assert "LOG-1" in page.get_data(as_text=True)
    document = document_id(db, "LOG-1")
    url = f"/documents/{document}"
    page = client.get(url).get_data(as_text=True)
    assert SNIPPET in page
    revision = re.search(r'name="revision" value="(\d+)"', page)
    assert revision
    decided = client.post(
        f"{url}/decision",
        data={
            "csrf_token": accounts.csrf_token(page),
            "decision": "withhold",
            "reason": "other",
            "note": f"{GIVEN} {FAMILY} asked us to wait",
            "revision": revision.group(1),
        },
    )
    assert decided.status_code == 302
    epr = client.post(
        f"/hospital/v1/documents/{samples.SENDER}/LOG-3/decision",
        json={"visibility": "visible", "decided_by": {"code": "C1", "name": "Dr One"}},
        headers=bearer,
    )
    assert epr.status_code == 200

    gp = {"Authorization": f"Bearer {token_for(db, samples.PRACTICE)}"}
    base = f"/gp/v1/practices/{samples.PRACTICE}"
    assert client.get(f"{base}/feed?after=0", headers=gp).status_code == 200
    for suffix in ("", "/hl7v2", "/fhir", "/content"):
        assert client.get(f"{base}/documents/{document}{suffix}", headers=gp).status_code == 200

    # A failure inside a request whose exception quotes the patient.
    def failing(*_: object, **__: object) -> None:
        raise RuntimeError(f"cannot load {NHS_NUMBER} {FAMILY} {SNIPPET}")

    monkeypatch.setattr(documents_uc, "versions_of", failing)
    assert client.get(url).status_code == 500

    lines = [line for line in logged.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    forbidden = [*_spellings(NHS_NUMBER), *_spellings(BAD_NHS_NUMBER), FAMILY, GIVEN, SNIPPET]
    found = [(word, line) for line in lines for word in forbidden if word.lower() in line.lower()]
    assert found == []
    # The lines are there to search: an access line per request, with its request id, and
    # the failure with its type and where it happened.
    access = [r for r in records if r["logger"] == "flagging.access"]
    assert {"GET", "POST"} <= {r["method"] for r in access}
    assert any(r["path"] == "/worklist" and r["status"] == 200 for r in access)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["request_id"]) for r in access)
    failure = [r for r in records if "exception" in r]
    assert failure
    assert "RuntimeError" in failure[0]["exception"]
    assert "failing" in failure[0]["exception"]


def test_a_served_request_is_logged_without_its_query_string(
    app: Flask, logged: io.StringIO
) -> None:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/healthz?patient={NHS_NUMBER}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            request_id = response.headers["X-Request-ID"]
    finally:
        server.shutdown()
        thread.join(5)
    lines = logged.getvalue().splitlines()
    assert [line for line in lines if NHS_NUMBER in line or "patient=" in line] == []
    [access] = [json.loads(line) for line in lines if '"flagging.access"' in line]
    assert (access["path"], access["status"], access["request_id"]) == ("/healthz", 200, request_id)


def test_text_logs_carry_the_request_id_and_no_exception_message(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    configure_logging("INFO", "text", buffer)
    try:
        response = client.get("/healthz", headers={"X-Request-ID": "proxy-id-1"})
        try:
            raise ValueError(f"patient {NHS_NUMBER}")
        except ValueError:
            logging.getLogger("flagging.test").exception("it failed")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = buffer.getvalue()
    assert response.headers["X-Request-ID"] == "proxy-id-1"
    assert "GET /healthz 200" in text
    assert "[request proxy-id-1]" in text
    assert "ValueError (its message is not logged" in text
    assert NHS_NUMBER not in text
