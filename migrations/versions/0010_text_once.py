"""text once: a version's text may be kept as spans of its message's bytes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 09:30:00

`document_versions.content_spans` (flagging/spans.py): where a version's text is in
`inbound_messages.raw`, its `content` then NULL. Existing versions keep their copies.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document_versions") as batch:
        batch.add_column(sa.Column("content_spans", sa.Text(), nullable=True))


def downgrade() -> None:
    # The text back into the versions first, as the code before this reads only `content`.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT v.id, v.content_spans, m.raw FROM document_versions v"
            " JOIN inbound_messages m ON m.id = v.message_id WHERE v.content_spans IS NOT NULL"
        )
    ).all()
    for version_id, spans, raw in rows:
        bind.execute(
            sa.text("UPDATE document_versions SET content = :content WHERE id = :id"),
            {"content": join_spans(bytes(raw), spans), "id": version_id},
        )
    with op.batch_alter_table("document_versions") as batch:
        batch.drop_column("content_spans")


def join_spans(message: bytes, spans: str) -> bytes:
    """flagging.spans.join_spans as it was at this revision (a migration stays as written)."""
    lines = []
    end = 0
    for span in spans.split(","):
        skip, length = span.split("+")
        start = end + int(skip)
        end = start + int(length)
        lines.append(message[start:end])
    return b"\n".join(lines)
