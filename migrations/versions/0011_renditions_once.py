"""renditions once: a decoded rendition may be kept as the span of its Base64 in the message

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11 09:00:00

No change to the schema: from this revision `document_versions.content_spans` may also be
`base64:start+length` (flagging/spans.py), the Base64 of an ED rendition in the message's
bytes, decoded when read. The downgrade copies those renditions into `content` first, as the
code before this reads such spans as lines.
"""

import binascii
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BASE64 = "base64:"


def upgrade() -> None:
    pass


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT v.id, v.content_spans, m.raw FROM document_versions v"
            " JOIN inbound_messages m ON m.id = v.message_id"
            " WHERE v.content_spans LIKE :prefix"
        ),
        {"prefix": _BASE64 + "%"},
    ).all()
    for version_id, spans, raw in rows:
        start, length = map(int, spans[len(_BASE64) :].split("+"))
        content = binascii.a2b_base64(bytes(raw)[start : start + length], strict_mode=True)
        bind.execute(
            sa.text(
                "UPDATE document_versions SET content = :content, content_spans = NULL"
                " WHERE id = :id"
            ),
            {"content": content, "id": version_id},
        )
