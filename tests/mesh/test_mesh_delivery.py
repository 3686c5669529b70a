"""The MESH channel against NHS England's MESH sandbox: retries while MESH fails, a stop when
MESH refuses a practice's message, tracking, and the practices' ITK3 responses matched to what
they answer; shown to operators by `flagging practices mesh`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from api import itk
from cli.main import main
from config import Settings
from flagging import mesh_channels, mesh_sending
from flagging.models import MeshChannel, MeshInbound
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from mesh import channel
from tests import samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, now, send
from tests.mesh.conftest import OUR_MAILBOX, PRACTICE_MAILBOXES, MeshServer, inbox, itk_response

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The CLI reads the same database as the test."""
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


class Clock:
    """The channel's clock, moved on by the test past each backoff."""

    def __init__(self) -> None:
        self.at = now()

    def __call__(self) -> datetime:
        return self.at

    def past_retry(self, db: Database, ods_code: str) -> None:
        with db.reading() as session:
            channel_row = mesh_channels.channel_of(session, ods_code)
            assert channel_row is not None
            assert channel_row.retry_at is not None
            self.at = channel_row.retry_at + timedelta(seconds=1)


def send_all(db: Database, server: MeshServer, clock: Clock) -> int:
    return channel.send_due(db, server.config(), itk.render, itk.subject, clock=clock)


def cli_status(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["practices", "mesh", *args, "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def documents(handler: MessageHandler, *numbers: str, practice: str = samples.PRACTICE) -> None:
    for number in numbers:
        send(handler, samples.mdm(control_id=f"C-{number}", number=number, practice=practice))


def test_a_failing_mesh_server_delays_delivery_without_losing_or_reordering_anything(
    db: Database,
    handler: MessageHandler,
    mesh_server: MeshServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["practices", "set", samples.PRACTICE, "--mesh-mailbox", "a81001ot01"]) == 0
    assert "MESH A81001OT01 (GPFED_CONSULT_REPORT)" in capsys.readouterr().out
    clock = Clock()
    documents(handler, "DOC-1", "DOC-2")
    assert send_all(db, mesh_server, clock) == 2

    # MESH answers 500 to every send: the next event waits, with the error shown.
    documents(handler, "DOC-3", "DOC-4")
    mesh_server.fault(500, path="outbox")
    assert send_all(db, mesh_server, clock) == 0
    [row] = cli_status(capsys)
    assert (row["sent"], row["backlog"], row["failures"]) == (2, 2, 1)
    assert "event 3" in row["error"]
    assert "500" in row["error"]
    assert row["state"].startswith("retrying")
    # Not due again before its backoff: no hammering of a failing server.
    assert send_all(db, mesh_server, clock) == 0
    assert cli_status(capsys)[0]["failures"] == 1

    # Throttled (429), then the server is down altogether: still waiting at event 3.
    clock.past_retry(db, samples.PRACTICE)
    mesh_server.fault(429)
    assert send_all(db, mesh_server, clock) == 0
    mesh_server.stop()
    clock.past_retry(db, samples.PRACTICE)
    assert send_all(db, mesh_server, clock) == 0
    [row] = cli_status(capsys)
    assert (row["sent"], row["failures"]) == (2, 3)
    assert "event 3" in row["error"]

    # Back again (same port, same mailboxes on disk): the rest goes, in order.
    documents(handler, "DOC-5")
    mesh_server.start()
    clock.past_retry(db, samples.PRACTICE)
    assert send_all(db, mesh_server, clock) == 3
    messages = inbox(mesh_server, PRACTICE_MAILBOXES[0])
    assert [h["localid"] for _, h, _ in messages] == [
        mesh_sending.local_id(samples.PRACTICE, seq) for seq in range(1, 6)
    ]
    assert channel.track(db, mesh_server.config(), clock=clock) == 5
    [row] = cli_status(capsys)
    assert (row["sent"], row["backlog"], row["failures"], row["error"]) == (5, 0, 0, "")
    assert (row["in_mailbox"], row["state"]) == (5, "ok")


def test_a_message_mesh_refuses_stops_that_practice_with_a_clear_error_until_resumed(
    db: Database,
    handler: MessageHandler,
    mesh_server: MeshServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_practice(db, OTHER_PRACTICE)
    with db.transaction() as session:
        mesh_channels.configure_channel(session, samples.PRACTICE, "NOSUCHBOX1")
        mesh_channels.configure_channel(session, OTHER_PRACTICE, PRACTICE_MAILBOXES[1])
    clock = Clock()
    documents(handler, "DOC-1", "DOC-2")
    documents(handler, "DOC-3", practice=OTHER_PRACTICE)
    assert send_all(db, mesh_server, clock) == 1  # the other practice is not held up

    rows = {r["ods_code"]: r for r in cli_status(capsys)}
    stopped = rows[samples.PRACTICE]
    assert stopped["stopped"] is True
    assert stopped["state"].startswith("STOPPED: stopped at event 1: MESH rejected the message")
    assert "Unregistered to address" in stopped["error"]
    assert rows[OTHER_PRACTICE]["state"] == "ok"
    clock.at += timedelta(days=1)
    assert send_all(db, mesh_server, clock) == 0  # stopped stays stopped, whatever the time

    # The operator fixes the mailbox: the channel resumes from the event it stopped at.
    assert main(["practices", "set", samples.PRACTICE, "--mesh-mailbox", "A81001OT01"]) == 0
    assert send_all(db, mesh_server, clock) == 2
    assert [h["localid"] for _, h, _ in inbox(mesh_server, PRACTICE_MAILBOXES[0])] == [
        mesh_sending.local_id(samples.PRACTICE, 1),
        mesh_sending.local_id(samples.PRACTICE, 2),
    ]


def test_itk_responses_in_our_inbox_are_matched_so_operators_see_what_the_practice_filed(
    db: Database,
    handler: MessageHandler,
    mesh_server: MeshServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with db.transaction() as session:
        mesh_channels.configure_channel(session, samples.PRACTICE, PRACTICE_MAILBOXES[0])
    clock = Clock()
    documents(handler, "DOC-1", "DOC-2")
    assert send_all(db, mesh_server, clock) == 2

    # The practice's system downloads both, files the first and cannot match the second.
    received = inbox(mesh_server, PRACTICE_MAILBOXES[0], acknowledge=True)
    headers = [json.loads(body)["entry"][0]["resource"]["id"] for _, _, body in received]
    answers = [
        itk_response(headers[0], "ok", "20013", "Success"),
        itk_response(headers[0], "ok", "30001", "Patient known here"),
        itk_response(headers[1], "fatal-error", "30002", "Patient not known here"),
        b"not an ITK response",
    ]
    with mesh_server.client(PRACTICE_MAILBOXES[0]) as practice:
        for body in answers:
            practice.send_message(OUR_MAILBOX, body, workflow_id="GPFED_CONSULT_REPORT_ACK")

    assert channel.collect(db, mesh_server.config(), clock=clock) == 4
    assert channel.collect(db, mesh_server.config(), clock=clock) == 0  # acknowledged to MESH
    assert channel.track(db, mesh_server.config(), clock=clock) == 2

    rows = cli_status(capsys, samples.PRACTICE)
    assert [r["seq"] for r in rows] == [1, 2]
    assert rows[0]["answer"] == "filed by the practice"
    assert rows[0]["ack_detail"] == "30001 Patient known here"
    assert rows[1]["answer"] == "fatal-error: 30002 Patient not known here"
    assert [r["tracking"] for r in rows] == ["acknowledged", "acknowledged"]
    [summary] = cli_status(capsys)
    assert (summary["downloaded"], summary["filed"], summary["errors"]) == (2, 1, 1)
    # Everything collected is kept, the unreadable one too.
    with db.reading() as session:
        kept = session.execute(select(MeshInbound.outcome, MeshInbound.body)).all()
        assert sorted(o for o, _ in kept) == ["matched", "matched", "matched", "unreadable"]
        assert (b"not an ITK response") in [b for _, b in kept]
        assert session.scalars(select(MeshChannel)).one().error == ""


def test_the_scheduler_sends_over_mesh_with_our_mailbox_from_the_flagging_mesh_settings(
    db: Database,
    handler: MessageHandler,
    mesh_server: MeshServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = mesh_server.config()
    monkeypatch.setenv("FLAGGING_MESH_URL", config.url)
    monkeypatch.setenv("FLAGGING_MESH_MAILBOX", config.mailbox)
    monkeypatch.setenv("FLAGGING_MESH_PASSWORD", config.password)
    monkeypatch.setenv("FLAGGING_MESH_SHARED_KEY", config.shared_key)
    assert main(["practices", "set", samples.PRACTICE, "--mesh-mailbox", "A81001OT01"]) == 0
    documents(handler, "DOC-1")
    capsys.readouterr()
    assert main(["scheduler", "--once"]) == 0
    out = capsys.readouterr().out
    assert "\nmesh: 1\n" in f"\n{out}"
    assert [h["localid"] for _, h, _ in inbox(mesh_server, PRACTICE_MAILBOXES[0])] == [
        mesh_sending.local_id(samples.PRACTICE, 1)
    ]


def test_practice_mesh_settings_are_checked_and_explained(
    db: Database, sender_token: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["practices", "set", samples.PRACTICE, "--mesh-mailbox", "not a box!"]) == 1
    assert "a MESH mailbox id is 1 to 20 letters and digits" in capsys.readouterr().err
    assert main(["practices", "set", samples.PRACTICE, "--mesh-workflow", "TOC_FHIR_IP_DISCH"]) == 1
    assert "give --mesh-mailbox" in capsys.readouterr().err
    assert main(["practices", "set", samples.PRACTICE, "--mesh-mailbox", "A81001OT01"]) == 0
    assert main(["practices", "set", samples.PRACTICE, "--mesh-workflow", "toc_fhir_ip_disch"]) == 0
    assert "MESH A81001OT01 (TOC_FHIR_IP_DISCH)" in capsys.readouterr().out
    assert main(["practices", "set", samples.PRACTICE, "--no-mesh"]) == 0
    assert "MESH off" in capsys.readouterr().out
    assert cli_status(capsys) == []


def test_an_event_whose_message_cannot_be_built_holds_the_channel_with_the_reason_shown(
    db: Database,
    handler: MessageHandler,
    mesh_server: MeshServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with db.transaction() as session:
        mesh_channels.configure_channel(session, samples.PRACTICE, PRACTICE_MAILBOXES[0])
    documents(handler, "DOC-1")

    def broken(*args: Any) -> bytes:
        raise ValueError("DocumentReference failed validation")

    assert channel.send_due(db, mesh_server.config(), broken, itk.subject) == 0
    [row] = cli_status(capsys)
    assert (row["sent"], row["failures"]) == (0, 1)
    assert row["error"] == "event 1: cannot build the message: DocumentReference failed validation"
    assert inbox(mesh_server, PRACTICE_MAILBOXES[0]) == []
