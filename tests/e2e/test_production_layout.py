"""The production layout (README "Deploy") on PostgreSQL: the web app under gunicorn with two
workers, two MLLP listener processes and the scheduler, each a `flagging` command of its own.

5,000 messages stream over both listeners while GP clients poll the feed and a clinician decides
on the web pages; one listener is killed with SIGKILL mid-stream and the senders resend what was
not acknowledged to the other. Every acknowledged message must be stored once, every document
must reach its practice once, in order, and the decisions must follow it there.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cli.gp_poll import GPClient
from config import Settings
from flagging.models import Document, DocumentVersion, InboundMessage, MessageOutcome, Practice
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from tests import accounts, samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, feed_table, token_for

pytestmark = pytest.mark.slow

TOTAL = 5000
CONNECTIONS = 8  # four senders' connections on each listener
KILL_AFTER = TOTAL // 3  # acknowledged messages before one listener is killed
DECISIONS = 40
METRICS_TOKEN = "metrics-test-token"
DEADLINE = 600.0  # seconds: a bound on every wait, so a broken layout fails, never hangs


@pytest.fixture(autouse=True)
def postgresql_only(settings: Settings) -> None:
    if settings.is_sqlite:
        pytest.skip(
            "on SQLite the service runs as one process (flagging serve); the production "
            "layout of several processes is for PostgreSQL (FLAGGING_TEST_DATABASE_URL)"
        )


class Process:
    """One `flagging` command in a process of its own; the address it prints is read back."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self.name = args[0]
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a stop reaches gunicorn's workers too
        )

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{self.name} did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._out.close()


@dataclass
class Layout:
    web: str
    mllp: list[int]
    listeners: list[Process]
    processes: list[Process] = field(default_factory=list)


@pytest.fixture
def layout(settings: Settings, db: Database, tmp_path: Path) -> Iterator[Layout]:
    env = {
        **os.environ,
        "FLAGGING_ENV": "test",
        "FLAGGING_DATABASE_URL": settings.database_url,
        "FLAGGING_INSTANCE_PATH": str(settings.instance_path),
        "FLAGGING_SECRET_KEY": "test-secret",
        "FLAGGING_HTTP_HOST": "127.0.0.1",
        "FLAGGING_MLLP_HOST": "127.0.0.1",
        "FLAGGING_METRICS_DIR": str(tmp_path / "metrics"),
        "FLAGGING_METRICS_TOKEN": METRICS_TOKEN,
        "FLAGGING_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes: list[Process] = []
    try:
        web = Process(env, tmp_path / "web.log", "web", "--workers", "2", "--port", "0")
        processes.append(web)
        listeners = [Process(env, tmp_path / f"mllp{i}.log", "mllp", "--port", "0") for i in (1, 2)]
        processes.extend(listeners)
        scheduler = Process(env, tmp_path / "scheduler.log", "scheduler")
        processes.append(scheduler)
        url = web.wait_for(r"web on (http://[\d.]+:\d+)").group(1)
        ports = [int(p.wait_for(r"MLLP on [\d.]+:(\d+)").group(1)) for p in listeners]
        scheduler.wait_for("scheduler running")
        yield Layout(url, ports, listeners, processes)
    finally:
        for process in processes:
            process.stop()


class FeedReader(GPClient):
    """The reference GP client's protocol (pages, position, acknowledgements), recording each
    event instead of fetching every document: 5,000 documents' files are not the point here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[dict[str, Any]] = []

    def file_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


class Sender(threading.Thread):
    """A hospital system's connection: sends its messages one at a time; when its listener
    dies it resends the unacknowledged message to the next listener, as real senders do."""

    def __init__(self, layout: Layout, first: int, messages: list[tuple[str, bytes]]) -> None:
        super().__init__(daemon=True)
        self.layout, self.port_index, self.messages = layout, first, messages
        self.acked: list[str] = []
        self.resends = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._send_all()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _send_all(self) -> None:
        pending = list(self.messages)
        deadline = time.monotonic() + DEADLINE
        while pending and time.monotonic() < deadline:
            port = self.layout.mllp[self.port_index]
            try:
                with MLLPClient("127.0.0.1", port, timeout=30) as client:
                    while pending:
                        control_id, raw = pending[0]
                        ack = client.send(raw)
                        assert f"MSA|AA|{control_id}".encode() in ack, ack
                        self.acked.append(control_id)
                        pending.pop(0)
            except OSError:
                # The listener went away: its last message may or may not be stored.
                self.resends += 1
                self.port_index = (self.port_index + 1) % len(self.layout.mllp)
                time.sleep(0.1)
        assert not pending, f"{len(pending)} messages never acknowledged"


class Clinician(threading.Thread):
    """Signs in on the web pages (over HTTP, through gunicorn) and decides on documents as they
    arrive: withholds some, releases others."""

    def __init__(self, base: str, db: Database, numbers: list[str]) -> None:
        super().__init__(daemon=True)
        self.base, self.db, self.numbers = base, db, numbers
        self.decided: dict[int, str] = {}
        self.error: BaseException | None = None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            _NoRedirect(),
        )

    def _request(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data)  # noqa: S310 - loopback
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def run(self) -> None:
        try:
            self._decide_all()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _decide_all(self) -> None:
        _, page = self._request("/login")
        status, _ = self._request(
            "/login",
            {
                "username": accounts.CLINICIAN,
                "password": accounts.PASSWORD,
                "csrf_token": accounts.csrf_token(page),
            },
        )
        assert status == 302, status
        deadline = time.monotonic() + DEADLINE
        for i, number in enumerate(self.numbers):
            document = None
            while document is None and time.monotonic() < deadline:
                with self.db.reading() as session:
                    document = session.scalars(
                        select(Document.id).where(Document.document_number == number)
                    ).first()
                if document is None:
                    time.sleep(0.05)
            assert document is not None, f"{number} never arrived"
            decision = "withhold" if i % 2 == 0 else "release"
            for _ in range(3):  # a page gone stale (the release job acted) is read again
                _, page = self._request(f"/documents/{document}")
                form = {
                    "csrf_token": accounts.csrf_token(page),
                    "decision": decision,
                    "revision": re.findall(r'name="revision" value="(\d+)"', page)[0],
                }
                if decision == "withhold":
                    form["reason"] = "third-party"
                status, body = self._request(f"/documents/{document}/decision", form)
                if status == 302:
                    break
            assert status == 302, body[:500]
            self.decided[document] = "withheld" if decision == "withhold" else "visible"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _messages() -> list[tuple[str, bytes]]:
    out = []
    for i in range(TOTAL):
        practice = samples.PRACTICE if i % 3 else OTHER_PRACTICE
        control_id = f"PL{i:05d}"
        raw = samples.mdm(
            control_id=control_id,
            number=f"PL-DOC-{i:05d}",
            practice=practice,
            nhs_number=samples.NHS_NUMBERS[i % len(samples.NHS_NUMBERS)],
        )
        out.append((control_id, raw))
    return out


def _metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_production_layout_stores_each_message_once_and_feeds_each_document_once_in_order(
    db: Database, sender_token: str, layout: Layout, tmp_path: Path
) -> None:
    add_practice(db, OTHER_PRACTICE)
    accounts.add_clinician(db)
    messages = _messages()
    readers = {
        ods: FeedReader(layout.web, token_for(db, ods), ods, tmp_path / ods)
        for ods in (samples.PRACTICE, OTHER_PRACTICE)
    }
    stop = threading.Event()
    polling = [
        threading.Thread(target=r.run, args=(stop,), kwargs={"interval": 0.2}, daemon=True)
        for r in readers.values()
    ]
    senders = [Sender(layout, i % 2, messages[i::CONNECTIONS]) for i in range(CONNECTIONS)]
    # Early documents, so that decisions interleave with the stream.
    clinician = Clinician(layout.web, db, [f"PL-DOC-{i:05d}" for i in range(0, DECISIONS * 30, 30)])
    for thread in [*polling, *senders, clinician]:
        thread.start()

    deadline = time.monotonic() + DEADLINE
    while sum(len(s.acked) for s in senders) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.01)

    layout.listeners[0].kill()  # mid-stream: its connections drop, whatever was in flight

    for thread in [*senders, clinician]:
        thread.join(max(1.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "the stream did not finish in time"
    for sender in senders:
        assert sender.error is None, repr(sender.error)
    assert clinician.error is None, repr(clinician.error)
    assert sum(s.resends for s in senders) >= 2, "the killed listener's senders never resent"

    # Wait for the GP clients to read everything the feed holds.
    with db.reading() as session:
        ends = {p.ods_code: p.feed_seq for p in session.scalars(select(Practice))}
    while time.monotonic() < deadline and any(
        r.position() < ends[ods] for ods, r in readers.items()
    ):
        time.sleep(0.1)
    stop.set()
    for thread in polling:
        thread.join(30)

    # Every acknowledged message stored once: one accepted receipt per MSH-10, any resend
    # of an already stored one recorded as a duplicate, nothing else.
    acked = sorted(c for s in senders for c in s.acked)
    assert acked == sorted(c for c, _ in messages)
    with db.reading() as session:
        outcomes = dict(
            session.execute(
                select(InboundMessage.outcome, func.count()).group_by(InboundMessage.outcome)
            ).all()
        )
        accepted = session.scalars(
            select(InboundMessage.control_id).where(
                InboundMessage.outcome == MessageOutcome.ACCEPTED
            )
        ).all()
        documents = session.execute(
            select(Document.id, Document.document_number, Practice.ods_code).join(
                Practice, Practice.id == Document.practice_id
            )
        ).all()
        versions = session.scalar(select(func.count()).select_from(DocumentVersion))
    assert sorted(accepted) == acked
    assert set(outcomes) <= {MessageOutcome.ACCEPTED, MessageOutcome.DUPLICATE}, outcomes
    assert len(documents) == TOTAL == versions

    # Every document reached its practice once, in the feed's order, and the GP client read
    # that order without gaps; each decision followed its document there.
    for ods, reader in readers.items():
        stored = feed_table(db, ods)
        assert [e["seq"] for e in reader.events] == list(range(1, len(stored) + 1)), ods
        assert [(e["seq"], e["type"], e["document_id"]) for e in reader.events] == [
            (seq, kind, document) for seq, kind, document, _, _ in stored
        ]
        available = [e["document_id"] for e in reader.events if e["type"] == "document.available"]
        assert sorted(available) == sorted(d for d, _, practice in documents if practice == ods)
        for document, visibility in clinician.decided.items():
            mine = [e for e in reader.events if e["document_id"] == document]
            if mine:
                assert mine[0]["type"] == "document.available"
                assert mine[-1]["visibility"] == visibility
    assert len(clinician.decided) == DECISIONS

    # /metrics adds up the counters of every process on the machine: the surviving
    # listener's, the killed one's (its files remain) and the web workers'.
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{layout.web}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        text = answer.read().decode()
    counted = _metric(
        text, "flagging_messages_total", f'{{outcome="accepted",sender="{samples.SENDER}"}}'
    )
    # A message committed by the killed listener in the instant before it counted it is
    # stored but not counted: at most one per connection it had.
    assert TOTAL - CONNECTIONS // 2 <= counted <= TOTAL
