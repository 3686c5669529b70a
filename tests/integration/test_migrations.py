"""Migration guardrails: one head, and the migrated schema matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from flagging.models import metadata
from flagging.storage.engine import Database
from flagging.storage.migrate import alembic_config


def test_migrations_have_a_single_head() -> None:
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_revision_ids_fit_the_alembic_version_column() -> None:
    # alembic_version.version_num is VARCHAR(32): PostgreSQL refuses a longer id at upgrade time.
    script = ScriptDirectory.from_config(alembic_config())
    assert [r.revision for r in script.walk_revisions() if len(r.revision) > 32] == []
