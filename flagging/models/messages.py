"""Every frame that reached the service, kept with its outcome and the ACK that answered it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime


class MessageOutcome(enum.StrEnum):
    ACCEPTED = "accepted"  # AA/CA: stored and processed
    DUPLICATE = "duplicate"  # a resend of an accepted message: answered AA again, not processed
    QUARANTINED = "quarantined"  # AE/CE: content error, kept for an administrator to reprocess
    REJECTED = "rejected"  # AR/CR: unsupported, unknown sender, unreadable or too large
    REPROCESSED = "reprocessed"  # a quarantined message that a later reprocess accepted
    # A frame cut short by the sender starting another: kept, not answered (nobody waits).
    TRUNCATED = "truncated frame"


class MessageResolution(enum.StrEnum):
    """How a quarantined or rejected entry left the operators' list (empty: still open)."""

    RESOLVED = "resolved"  # fixed elsewhere (a reprocess, a correction by hand), with a reason
    DISMISSED = "dismissed"  # nothing to do (a test message, sent in error), with a reason
    SUPERSEDED = "superseded"  # the sender sent a corrected message that was accepted


# The rows of ix_inbound_messages_outcome_id (SQL, as the index and its queries say it).
NOT_ACCEPTED = "outcome <> 'accepted'"


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        # The first accepted message for a sender and MSH-10 claims the key; resends and other
        # receipts leave `control_key` NULL, which both databases treat as distinct.
        Index("uq_inbound_messages_sender_control_key", "sender_id", "control_key", unique=True),
        # The operators' lists by outcome: partial, so an accepted message, nearly every
        # one, costs ingest no entry (a list of accepted ones walks the key, where nearly
        # every row is one). A query names NOT_ACCEPTED itself for SQLite to use it.
        Index(
            "ix_inbound_messages_outcome_id",
            "outcome",
            "id",
            sqlite_where=text(NOT_ACCEPTED),
            postgresql_where=text(NOT_ACCEPTED),
        ),
        # A corrected resend finds the quarantined entry it supersedes (flagging/receive.py):
        # partial, so accepted messages, nearly all of them, cost ingest no entry here.
        Index(
            "ix_inbound_messages_quarantine",
            "sender_id",
            "control_id",
            sqlite_where=text("outcome = 'quarantined'"),
            postgresql_where=text("outcome = 'quarantined'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    transport: Mapped[str] = mapped_column(String(10))  # mllp | http | reprocess
    peer: Mapped[str] = mapped_column(String(100), default="")
    # Exactly as received. NULL for a duplicate, whose bytes are those of `duplicate_of`, and
    # once the retention job deleted them (`raw_deleted_at`).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int]
    content_hash: Mapped[str] = mapped_column(String(64))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("senders.id"))
    sending_facility: Mapped[str] = mapped_column(String(180), default="")
    sending_application: Mapped[str] = mapped_column(String(180), default="")
    control_id: Mapped[str] = mapped_column(String(199), default="")
    control_key: Mapped[str | None] = mapped_column(String(199))
    message_type: Mapped[str] = mapped_column(String(20), default="")
    version: Mapped[str] = mapped_column(String(20), default="")
    outcome: Mapped[MessageOutcome] = mapped_column(String(20))
    ack_code: Mapped[str] = mapped_column(String(2), default="")
    ack: Mapped[bytes | None] = mapped_column(LargeBinary)
    error_code: Mapped[str] = mapped_column(String(10), default="")
    error_location: Mapped[str] = mapped_column(String(40), default="")
    error_text: Mapped[str] = mapped_column(Text, default="")
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # Set on a quarantined or rejected message once a reprocess has accepted it.
    reprocessed_as_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # How an operator closed a quarantined or rejected entry (MessageResolution), why and who;
    # a later message from the same sender that fixed it, for a superseded one.
    # (Server defaults: ingest inserts receipts with plain SQL that does not name these.)
    resolution: Mapped[str] = mapped_column(String(12), default="", server_default="")
    resolution_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    # When the retention job deleted `raw` (the receipt, its outcome and the ACK stay).
    raw_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
