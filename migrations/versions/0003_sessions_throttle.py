"""users' session generation (sessions end on the server), failed sign-ins per address

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import flagging.models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )
    # The default was only for the rows already there; the model gives new rows theirs.
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("session_generation", server_default=None)
    op.create_table(
        "sign_in_addresses",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", flagging.models.base.UTCDateTime(), nullable=False),
        sa.Column("blocked_until", flagging.models.base.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_sign_in_addresses")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_addresses")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
