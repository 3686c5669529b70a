"""sender tokens: several HTTP bearer tokens per sender, each revocable

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 08:50:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import flagging.models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", flagging.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", flagging.models.base.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", flagging.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["senders.id"], name=op.f("fk_sender_tokens_sender_id_senders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sender_tokens_token_hash")),
    )
    with op.batch_alter_table("sender_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sender_tokens_sender_id"), ["sender_id"], unique=False)
    # Each sender's one token so far becomes its first token: no trust has to change over.
    now = datetime.now(UTC).replace(tzinfo=None)
    op.execute(
        sa.text(
            "INSERT INTO sender_tokens (sender_id, token_hash, name, created_at)"
            " SELECT id, token_hash, 'first token', :now FROM senders"
            " WHERE token_hash IS NOT NULL"
        ).bindparams(now=now)
    )
    with op.batch_alter_table("senders", schema=None) as batch_op:
        batch_op.drop_constraint("uq_senders_token_hash", type_="unique")
        batch_op.drop_column("token_hash")


def downgrade() -> None:
    with op.batch_alter_table("senders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_senders_token_hash", ["token_hash"])
    # A sender keeps one token on the way down: its oldest one still valid.
    op.execute(
        sa.text(
            "UPDATE senders SET token_hash = (SELECT t.token_hash FROM sender_tokens t"
            " WHERE t.sender_id = senders.id AND t.revoked_at IS NULL ORDER BY t.id LIMIT 1)"
        )
    )
    with op.batch_alter_table("sender_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sender_tokens_sender_id"))
    op.drop_table("sender_tokens")
