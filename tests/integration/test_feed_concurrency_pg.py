"""Several writer processes ingest and decide at once while a poller reads the GP feed with
`after=N` throughout: the poller must see every event, once, in order, with no gap, matching
the final table. Thousands of events on PostgreSQL; a smaller run on SQLite."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.wiring import Services, web_app
from config import Settings, load_settings
from flagging.models import Visibility
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.visibility import Actor, decide_visibility
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import add_practice, document_id, feed_table, token_for

pytestmark = pytest.mark.slow

PRACTICES = (samples.PRACTICE, "B82002", "C83003")
Event = tuple[int, str, int, int, str]


def write(database_url: str, instance: str, writer: int, count: int) -> None:
    """One writer process: `count` messages across the practices, a decision after every
    second one, an addendum after every fifth."""
    settings = load_settings(
        {
            "FLAGGING_ENV": "test",
            "FLAGGING_DATABASE_URL": database_url,
            "FLAGGING_INSTANCE_PATH": instance,
            "FLAGGING_SECRET_KEY": "test-secret",
        }
    )
    db = Database(settings)
    handler = MessageHandler(Receiver(db, settings))
    rng = random.Random(writer)
    mine: list[str] = []
    actor = Actor(code=f"W{writer}", name=f"Writer {writer}")
    for i in range(count):
        number = f"W{writer}-{i}"
        practice = PRACTICES[rng.randrange(len(PRACTICES))]
        raw = samples.mdm(control_id=f"C{writer}-{i}", number=number, practice=practice)
        reply = handler.handle(raw, transport="mllp", peer=f"writer {writer}")
        assert reply.code == "AA", reply.ack
        mine.append(number)
        if i % 5 == 4:
            parent = rng.choice(mine)
            addendum = samples.mdm(
                "T06", control_id=f"A{writer}-{i}", number=f"{number}-ADD", parent=parent
            )
            assert handler.handle(addendum, transport="mllp").code == "AA"
        if i % 2 == 1:
            target = document_id(db, rng.choice(mine))
            withhold = rng.random() < 0.5
            with db.transaction() as session:
                decide_visibility(
                    session,
                    document_id=target,
                    visibility=Visibility.WITHHELD if withhold else Visibility.VISIBLE,
                    actor=actor,
                    reason="serious-harm" if withhold else "",
                    now=datetime.now(UTC),
                )
    db.dispose()


@dataclass
class Seen:
    events: list[Event] = field(default_factory=list)
    polls: int = 0
    problems: list[str] = field(default_factory=list)


def poll(client: FlaskClient, ods: str, token: str, seen: Seen, after: int, limit: int) -> int:
    response = client.get(
        f"/gp/v1/practices/{ods}/feed?after={after}&limit={limit}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.data
    page = response.json
    assert page is not None
    seen.polls += 1
    for event in page["events"]:
        if event["seq"] != after + 1:
            seen.problems.append(f"{ods}: after {after} came {event['seq']}")
        seen.events.append(
            (
                event["seq"],
                event["type"],
                event["document_id"],
                event["version_id"],
                event["visibility"],
            )
        )
        after = event["seq"]
    assert page["next_after"] == after
    return after


def run(
    db: Database, settings: Settings, app: Flask, writers: int, per_writer: int, tmp: Path
) -> dict[str, Seen]:
    for ods in PRACTICES[1:]:
        add_practice(db, ods)
    tokens = {ods: token_for(db, ods) for ods in PRACTICES}
    seen = {ods: Seen() for ods in PRACTICES}
    client = app.test_client()
    done = threading.Event()

    def poller() -> None:
        positions = dict.fromkeys(PRACTICES, 0)
        rng = random.Random(0)
        while not done.is_set():
            for ods in PRACTICES:
                positions[ods] = poll(
                    client, ods, tokens[ods], seen[ods], positions[ods], rng.choice((7, 50, 500))
                )
        for ods in PRACTICES:  # after the writers: read what is left
            while True:
                before = positions[ods]
                positions[ods] = poll(client, ods, tokens[ods], seen[ods], before, 500)
                if positions[ods] == before:
                    break

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=write, args=(settings.database_url, str(tmp), n, per_writer), daemon=True
        )
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 300
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        process.kill()
    done.set()
    thread.join(60)
    assert not alive, "a writer did not finish in time"
    assert not thread.is_alive()
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    return seen


def check(db: Database, seen: dict[str, Seen], minimum: int) -> None:
    total = 0
    for ods, observed in seen.items():
        stored = feed_table(db, ods)
        assert observed.problems == [], observed.problems[:5]
        # No gap, no duplicate, nothing reordered: exactly the final table, in its order.
        assert [e[0] for e in observed.events] == list(range(1, len(stored) + 1)), ods
        assert observed.events == stored, ods
        total += len(stored)
    assert total >= minimum
    assert min(s.polls for s in seen.values()) > 10  # the poller really read throughout


def test_concurrent_writer_processes_on_postgresql_never_make_a_poller_miss_or_reorder(
    db: Database, settings: Settings, handler: MessageHandler, tmp_path: Path
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("needs FLAGGING_TEST_DATABASE_URL=postgresql://...")
    app = web_app(Services(settings, db, handler))
    seen = run(db, settings, app, writers=4, per_writer=400, tmp=tmp_path)
    check(db, seen, minimum=2000)


def test_concurrent_writer_processes_on_sqlite_never_make_a_poller_miss_or_reorder(
    db: Database, settings: Settings, handler: MessageHandler, tmp_path: Path
) -> None:
    if not settings.is_sqlite:
        pytest.skip("the SQLite run; PostgreSQL has its own, larger one")
    app = web_app(Services(settings, db, handler))
    seen = run(db, settings, app, writers=3, per_writer=80, tmp=tmp_path)
    check(db, seen, minimum=300)
