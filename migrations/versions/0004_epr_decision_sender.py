"""decisions name the sender and token of an EPR that recorded them

Revision ID: 0004_epr_decision_sender
Revises: 0003_sessions_throttle
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_epr_decision_sender"
down_revision: str | None = "0003_sessions_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sender_token_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_decisions_sender_id_senders"), "senders", ["sender_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_decisions_sender_token_id_sender_tokens"),
            "sender_tokens",
            ["sender_token_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_decisions_sender_token_id_sender_tokens"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_decisions_sender_id_senders"), type_="foreignkey")
        batch_op.drop_column("sender_token_id")
        batch_op.drop_column("sender_id")
