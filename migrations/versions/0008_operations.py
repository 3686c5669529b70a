"""operations: quarantine resolution, retention of raw bytes, push health for alerts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import flagging.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(
            sa.Column("resolution", sa.String(length=12), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("resolution_reason", sa.String(length=500), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("resolved_at", flagging.models.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("resolved_by", sa.String(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("superseded_by_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("raw_deleted_at", flagging.models.base.UTCDateTime(), nullable=True)
        )
        batch.create_foreign_key(
            op.f("fk_inbound_messages_superseded_by_id_inbound_messages"),
            "inbound_messages",
            ["superseded_by_id"],
            ["id"],
        )
    op.create_index(
        "ix_inbound_messages_quarantine",
        "inbound_messages",
        ["sender_id", "control_id"],
        unique=False,
        sqlite_where=sa.text("outcome = 'quarantined'"),
        postgresql_where=sa.text("outcome = 'quarantined'"),
    )
    op.create_index(
        "ix_document_versions_message_id", "document_versions", ["message_id"], unique=False
    )
    with op.batch_alter_table("practices") as batch:
        batch.add_column(
            sa.Column("push_delivered_at", flagging.models.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("push_failing_since", flagging.models.base.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.drop_column("push_failing_since")
        batch.drop_column("push_delivered_at")
    op.drop_index("ix_inbound_messages_quarantine", table_name="inbound_messages")
    op.drop_index("ix_document_versions_message_id", table_name="document_versions")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_constraint(
            op.f("fk_inbound_messages_superseded_by_id_inbound_messages"), type_="foreignkey"
        )
        batch.drop_column("raw_deleted_at")
        batch.drop_column("superseded_by_id")
        batch.drop_column("resolved_by")
        batch.drop_column("resolved_at")
        batch.drop_column("resolution_reason")
        batch.drop_column("resolution")
