"""A rendition kept as the span of its Base64 is copied back into the version on a downgrade."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from sqlalchemy import text

from config import load_settings
from flagging import organisations
from flagging.receiver import Receiver
from flagging.storage.engine import Database
from flagging.storage.migrate import alembic_config, upgrade
from hl7.handler import MessageHandler
from tests import samples


def test_a_downgrade_to_0010_copies_renditions_kept_as_base64_spans_into_their_versions(
    tmp_path: Path,
) -> None:
    # SQLite only: this is about the data the downgrade moves, not the dialect.
    settings = load_settings(
        {
            "FLAGGING_ENV": "test",
            "FLAGGING_INSTANCE_PATH": str(tmp_path),
            "FLAGGING_DATABASE_URL": f"sqlite:///{tmp_path / 'spans.sqlite3'}",
            "FLAGGING_SECRET_KEY": "test-secret",
        }
    )
    db = Database(settings)
    try:
        upgrade(db.engine)
        with db.transaction() as session:
            organisations.add_sender(session, samples.SENDER, "Test Hospitals NHS Trust")
            organisations.add_practice(session, samples.PRACTICE, "The Surgery")
        pdf = samples.TINY_PDF + os.urandom(2000)
        handler = MessageHandler(Receiver(db, settings))
        for message in (
            samples.oru(control_id="P1", observations=samples.obx_pdf(pdf)),
            samples.mdm(control_id="M1", lines=("Discharged home on aspirin, review in clinic.",)),
        ):
            assert handler.handle(message, transport="mllp").code == "AA"
        handler.close()
        cfg = alembic_config()
        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0010")
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT content_type, content, content_spans FROM document_versions")
            ).all()
        by_type = {row[0]: (row[1], row[2]) for row in rows}
        assert by_type["application/pdf"] == (pdf, None)
        content, spans = by_type["text/plain; charset=utf-8"]  # text spans stay for 0010
        assert (content, spans is not None) == (None, True)
    finally:
        db.dispose()
