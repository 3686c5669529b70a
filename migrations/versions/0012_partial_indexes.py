"""partial indexes: new documents and accepted messages cost ingest no entry in three indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 20:00:00

`ix_documents_decided` and `ix_documents_decided_author` (the worklist's decided segments)
keep only decided documents, `ix_inbound_messages_outcome_id` (the operators' lists by
outcome) only messages not accepted: a message received as usual (accepted, its document
pending) wrote a leaf page of each into its commit. The queries that walk them name the
condition (flagging/worklist.py, flagging/messages.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_documents_decided", "documents", ["sender_id", "visibility", "updated_at", "id"],
     "visibility <> 'pending'"),
    ("ix_documents_decided_author", "documents",
     ["sender_id", "author_code", "visibility", "updated_at", "id"], "visibility <> 'pending'"),
    ("ix_inbound_messages_outcome_id", "inbound_messages", ["outcome", "id"],
     "outcome <> 'accepted'"),
)  # fmt: skip


def upgrade() -> None:
    for name, table, columns, where in _INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(
            name,
            table,
            columns,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, table, columns, _where in _INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
