"""Upgrading keeps every sender's token working: it becomes the sender's first token."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from flagging.storage.migrate import alembic_config


def _run(url: str, action: str, revision: str) -> None:
    cfg = alembic_config()
    engine = create_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        getattr(command, action)(cfg, revision)
    engine.dispose()


def test_a_senders_token_from_before_the_upgrade_still_works_after_it_and_after_a_downgrade(
    tmp_path: Path,
) -> None:
    # SQLite only: this is about the data the migration moves, not the dialect.
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    _run(url, "upgrade", "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO senders (ods_code, application, name, token_hash,"
                " review_window_minutes, txa18_v_policy, created_at)"
                " VALUES ('RXX', '', 'Trust', 'abc123', 1440, 'pending', '2026-01-01 00:00:00')"
            )
        )
    _run(url, "upgrade", "0002")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.ods_code, t.token_hash, t.revoked_at FROM sender_tokens t"
                " JOIN senders s ON s.id = t.sender_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("RXX", "abc123", None)]
    _run(url, "downgrade", "0001")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT token_hash FROM senders")).scalar_one() == "abc123"
    engine.dispose()
