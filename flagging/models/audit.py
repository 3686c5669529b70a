"""The audit trail: append-only entries, each holding the hash of the one before it.

An entry names who did what to which document or message, by identifiers only (never document
text or names). `seq` numbers the chain 1, 2, 3... in commit order; `hash` is SHA-256 over the
entry's fields and `prev_hash` (flagging/audit.py), so a row changed, removed or inserted in the
database breaks the chain where it happened. `audit_head` is the chain's one-row head: writers
take it under a row lock, so several processes append in one order.

No foreign keys: an entry outlives the row it names (retention may remove a message's bytes,
an administrator a token), and what was recorded must never block or cascade a delete.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (
        # Few indexes, as receiving a message writes an entry on the hot path: the subject
        # access report, a document's history. The chain's order (verify, list) is the key.
        Index("ix_audit_entries_nhs_number", "nhs_number"),
        Index("ix_audit_entries_document_id", "document_id"),
    )

    # The position in the chain is the key: one B-tree, where an `id` beside it needed a
    # second for `seq` (an index entry less per message received). INTEGER on SQLite, where
    # only `INTEGER PRIMARY KEY` is the rowid itself; a position is never reused or generated.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # "user:7", "token:3", "sender:RXX", "system:release", "cli": who, by identifier.
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))  # flagging.audit.Action
    outcome: Mapped[str] = mapped_column(String(20), default="")
    document_id: Mapped[int | None]
    message_id: Mapped[int | None]
    nhs_number: Mapped[str] = mapped_column(String(10), default="")
    practice: Mapped[str] = mapped_column(String(20), default="")
    # Canonical JSON (sorted keys) of further identifiers; hashed exactly as stored.
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last position and hash: one row, id 1, locked by each append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
