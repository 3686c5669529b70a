"""sender bindings (MLLP networks and client certificates), push over TLS

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import flagging.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("created_at", flagging.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_sender_bindings_sender_id_senders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_bindings")),
        sa.UniqueConstraint(
            "sender_id", "kind", "value", name=op.f("uq_sender_bindings_sender_id_kind_value")
        ),
    )
    op.create_index(
        op.f("ix_sender_bindings_sender_id"), "sender_bindings", ["sender_id"], unique=False
    )
    # Existing practices keep pushing in clear text, as they did.
    op.add_column(
        "practices",
        sa.Column("push_tls", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.drop_column("push_tls")
    op.drop_index(op.f("ix_sender_bindings_sender_id"), table_name="sender_bindings")
    op.drop_table("sender_bindings")
