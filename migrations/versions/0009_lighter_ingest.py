"""lighter ingest: the audit chain's position is its key (one B-tree less per message)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 09:00:00

`audit_entries` had an `id` key and an index on `seq`; `seq` becomes the key and both go.
On SQLite `seq` becomes INTEGER, so that it is the rowid itself (only `INTEGER PRIMARY KEY`
is). A chain with two rows at one position (tampered with: `flagging audit verify` names it)
stops this upgrade at the copy, which is the moment to look at it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("audit_entries", recreate="always" if sqlite else "never") as batch:
        batch.drop_index("ix_audit_entries_seq")
        batch.drop_constraint("pk_audit_entries", type_="primary")
        batch.drop_column("id")
        if sqlite:
            batch.alter_column("seq", existing_type=sa.BigInteger(), type_=sa.Integer())
        batch.create_primary_key("pk_audit_entries", ["seq"])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("audit_entries", recreate="always" if sqlite else "never") as batch:
        batch.drop_constraint("pk_audit_entries", type_="primary")
        if sqlite:
            batch.alter_column("seq", existing_type=sa.Integer(), type_=sa.BigInteger())
    # The entries get ids in chain order.
    op.add_column("audit_entries", sa.Column("id", sa.Integer(), nullable=True))
    op.execute("UPDATE audit_entries SET id = seq")
    with op.batch_alter_table("audit_entries", recreate="always" if sqlite else "never") as batch:
        batch.alter_column("id", existing_type=sa.Integer(), nullable=False)
        batch.create_primary_key("pk_audit_entries", ["id"])
        batch.create_index("ix_audit_entries_seq", ["seq"], unique=False)
    if not sqlite:  # as SERIAL made it in 0007 (SQLite's INTEGER PRIMARY KEY numbers itself)
        op.execute("CREATE SEQUENCE audit_entries_id_seq OWNED BY audit_entries.id")
        op.execute(
            "SELECT setval('audit_entries_id_seq', COALESCE(MAX(id), 0) + 1, false)"
            " FROM audit_entries"
        )
        op.execute(
            "ALTER TABLE audit_entries ALTER COLUMN id SET DEFAULT nextval('audit_entries_id_seq')"
        )
