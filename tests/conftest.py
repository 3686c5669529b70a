"""Fixtures: settings, a migrated database (SQLite, or PostgreSQL when
FLAGGING_TEST_DATABASE_URL is set), registered organisations and the message handler.

Tests commit for real, because the code under test commits (one transaction per message) and
the listener tests run several threads and processes. Isolation is by emptying every table after
each test, which a savepoint could not give across threads and processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, make_url, text

from config import Settings, load_settings
from flagging import organisations, passwords
from flagging.models import metadata
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.storage.migrate import upgrade
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import samples


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SQLite in a temporary folder; on PostgreSQL (FLAGGING_TEST_DATABASE_URL) a database of
    this run's own, created on that server and dropped at the end, so that two runs on one
    server never collide."""
    server = os.environ.get("FLAGGING_TEST_DATABASE_URL", "")
    if not server:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"flagging_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with its real parameters costs ~0.1 s a hash: tests use the cheapest ones.
    (tests/unit/test_passwords.py checks the real parameters.)"""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Settings:
    instance = tmp_path_factory.mktemp("instance")
    return load_settings(
        {
            "FLAGGING_ENV": "test",
            "FLAGGING_INSTANCE_PATH": str(instance),
            "FLAGGING_DATABASE_URL": database_url,
            "FLAGGING_SECRET_KEY": "test-secret",
            "FLAGGING_MAX_MESSAGE_BYTES": str(256 * 1024),
        }
    )


@pytest.fixture(scope="session")
def migrated_db(settings: Settings) -> Iterator[Database]:
    db = Database(settings)
    upgrade(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def db(migrated_db: Database) -> Iterator[Database]:
    yield migrated_db
    with migrated_db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def sender_token(db: Database) -> str:
    """Registers the sample sender and practice; returns the sender's HTTP token."""
    with db.transaction() as session:
        token = organisations.add_sender(session, samples.SENDER, "Test Hospitals NHS Trust")
        organisations.add_practice(session, samples.PRACTICE, "The Surgery")
    return token


@pytest.fixture
def handler(db: Database, settings: Settings, sender_token: str) -> MessageHandler:
    return MessageHandler(Receiver(db, settings))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(params=["group commit", "writer process"])
def either_handler(
    request: pytest.FixtureRequest, db: Database, settings: Settings, sender_token: str
) -> Iterator[MessageHandler]:
    """A handler that runs its transactions in this process, then one with a writer process
    (as `flagging serve` and `flagging mllp` run on SQLite)."""
    handler = MessageHandler(
        Receiver(db, settings, writer_process=request.param == "writer process")
    )
    yield handler
    handler.close()


@pytest.fixture
def listener(either_handler: MessageHandler) -> Iterator[MLLPListener]:
    """An MLLP listener on a free loopback port, stopped after the test (for each handler)."""
    server = MLLPListener(either_handler, host="127.0.0.1", port=0, max_message_bytes=256 * 1024)
    server.start()
    yield server
    server.stop()
