"""End to end: messages in over MLLP, decisions on the clinicians' web pages, and the reference GP
client polling over HTTP all the while. Each practice's client must receive every event exactly
once, in order, and end with each document's correct visibility."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from cli.gp_poll import GPClient
from cli.wiring import Services, web_app
from config import Settings
from flagging.models import Document, DocumentVersion, Practice
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import accounts, samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, feed_table, token_for

pytestmark = pytest.mark.slow


@pytest.fixture
def app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    return web_app(Services(settings, db, handler))


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    """The web app on a loopback port, as a GP system reaches it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


class Poller:
    """The reference client polling in a thread, as a GP system would, but every 50 ms."""

    def __init__(self, client: GPClient) -> None:
        self.client = client
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=client.run, args=(self.stop,), kwargs={"interval": 0.05}, daemon=True
        )
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _messages() -> list[bytes]:
    """Documents for both practices: originals, addenda, a replacement, a cancel, a PDF."""
    out: list[bytes] = []
    for i in range(8):
        practice = samples.PRACTICE if i % 2 == 0 else OTHER_PRACTICE
        out.append(samples.mdm(control_id=f"E{i}", number=f"DOC-{i}", practice=practice))
    out.append(samples.mdm("T06", control_id="E-ADD0", number="ADD-0", parent="DOC-0"))
    out.append(
        samples.mdm(
            "T10",
            control_id="E-REP1",
            number="REP-1",
            parent="DOC-1",
            practice=OTHER_PRACTICE,
            lines=("Replaced letter.",),
        )
    )
    out.append(samples.mdm("T11", control_id="E-CAN2", number="DOC-2", lines=()))
    out.append(samples.oru(control_id="E-ORU", number="PDF-1", observations=samples.obx_pdf()))
    return out


def _decide(web: Flask, db: Database, number: str, decision: str, reason: str = "") -> None:
    client = web.test_client()
    accounts.sign_in(client, accounts.CLINICIAN)
    document = accounts.document_id(db, number)
    url = f"/documents/{document}"
    token = accounts.form_token(client, url)
    form = {
        "csrf_token": token,
        "decision": decision,
        "revision": str(accounts.revision(db, document)),
    }
    if reason:
        form["reason"] = reason
    response = client.post(f"{url}/decision", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def _published_visibility(db: Database, ods_code: str) -> dict[int, str]:
    """Each document the practice was told of, with the visibility of its latest version
    published to it: what its GP system must end with."""
    expected: dict[int, str] = {}
    with db.reading() as session:
        practice = session.scalars(select(Practice).where(Practice.ods_code == ods_code)).one()
        documents = session.scalars(
            select(Document).where(Document.practice_id == practice.id, Document.published)
        )
        for document in documents:
            latest = session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document.id, DocumentVersion.published)
                .order_by(DocumentVersion.version.desc())
                .limit(1)
            ).one()
            expected[document.id] = latest.visibility
    return expected


def _wait_until_caught_up(db: Database, pollers: dict[str, Poller], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.reading() as session:
            latest = {p.ods_code: p.feed_seq for p in session.scalars(select(Practice)).all()}
        if all(p.client.position() == latest[ods] for ods, p in pollers.items()):
            return
        time.sleep(0.05)
    pytest.fail("the reference clients did not catch up with the feed in time")


def test_every_event_reaches_the_reference_client_once_in_order_with_the_final_visibility(
    db: Database,
    handler: MessageHandler,
    listener: MLLPListener,
    app: Flask,
    base_url: str,
    tmp_path: Path,
) -> None:
    add_practice(db, OTHER_PRACTICE, mode="decided")
    accounts.add_clinician(db)
    pollers = {
        ods: Poller(GPClient(base_url, token_for(db, ods), ods, tmp_path / ods))
        for ods in (samples.PRACTICE, OTHER_PRACTICE)
    }
    messages = _messages()
    host, port = listener.address
    try:
        with MLLPClient(host, port, timeout=10) as mllp:
            for raw in messages[:8]:
                assert b"MSA|AA|" in mllp.send(raw)
            _decide(app, db, "DOC-0", "withhold", "serious-harm")
            _decide(app, db, "DOC-1", "withhold", "third-party")
            _decide(app, db, "DOC-3", "release")
            time.sleep(0.2)  # let the clients see some of it before more arrives
            for raw in messages[8:]:
                assert b"MSA|AA|" in mllp.send(raw)
            _decide(app, db, "DOC-0", "release")  # the addendum's thread, now released
            _decide(app, db, "DOC-1", "release")  # the replacement: published only now
            _decide(app, db, "DOC-4", "withhold", "safeguarding")
            _decide(app, db, "PDF-1", "withhold", "not-yet-discussed")
        _wait_until_caught_up(db, pollers)
    finally:
        for poller in pollers.values():
            poller.finish()

    for ods, poller in pollers.items():
        out = poller.client.out
        stored = feed_table(db, ods)
        assert stored, ods
        logged = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        # Every event exactly once, in order, as the feed has it.
        assert [e["seq"] for e in logged] == list(range(1, len(stored) + 1)), ods
        assert [
            (e["seq"], e["type"], e["document_id"], e["version_id"], e["visibility"])
            for e in logged
        ] == stored
        # Each document ends with its correct visibility; nothing else was filed.
        expected = _published_visibility(db, ods)
        filed = {
            int(folder.name): json.loads((folder / "visibility.json").read_text())
            for folder in (out / "documents").iterdir()
        }
        assert {doc: v["status"] for doc, v in filed.items()} == expected, ods
        assert all(v["show_to_patient"] == (v["status"] == "visible") for v in filed.values())
        assert json.loads((out / "position.json").read_text())["after"] == len(stored)

    # The scenario exercised every kind of event for the practice that takes documents at once.
    assert {event[1] for event in feed_table(db, samples.PRACTICE)} == {
        "document.available",
        "document.superseded",
        "visibility.changed",
        "document.withdrawn",
    }
    immediate = pollers[samples.PRACTICE].client.out / "documents"
    pdf = accounts.document_id(db, "PDF-1")
    assert (immediate / str(pdf) / "versions" / "1" / "content.pdf").read_bytes() == (
        samples.TINY_PDF
    )
    withdrawn = accounts.document_id(db, "DOC-2")
    assert (
        json.loads((immediate / str(withdrawn) / "visibility.json").read_text())["document_status"]
        == "withdrawn"
    )
    # The practice that waits for decisions never heard of the still-pending documents.
    decided = pollers[OTHER_PRACTICE].client.out / "documents"
    assert sorted(int(p.name) for p in decided.iterdir()) == sorted(
        accounts.document_id(db, n) for n in ("DOC-1", "DOC-3")
    )
    with db.reading() as session:
        acknowledged = {p.ods_code: p.acknowledged_seq for p in session.scalars(select(Practice))}
    assert acknowledged == {ods: len(feed_table(db, ods)) for ods in pollers}


def test_the_client_files_nothing_twice_when_run_again(
    db: Database, handler: MessageHandler, base_url: str, tmp_path: Path
) -> None:
    token = token_for(db, samples.PRACTICE)
    for i in range(3):
        handler.handle(samples.mdm(control_id=f"R{i}", number=f"R-{i}"), transport="mllp")
    client = GPClient(base_url, token, samples.PRACTICE, tmp_path)
    assert client.poll_once(limit=2) == 3
    # A crash after filing an event but before saving the position files it again, once.
    (tmp_path / "position.json").write_text(json.dumps({"after": 2}))
    again = GPClient(base_url, token, samples.PRACTICE, tmp_path)
    assert again.poll_once() == 1
    assert again.poll_once() == 0
    logged = [
        json.loads(line)["seq"] for line in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    assert logged == [1, 2, 3]
