"""Each practice's append-only feed of events, numbered 1, 2, 3... without gaps."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime


class EventType(enum.StrEnum):
    AVAILABLE = "document.available"
    SUPERSEDED = "document.superseded"
    VISIBILITY_CHANGED = "visibility.changed"
    WITHDRAWN = "document.withdrawn"


class FeedEvent(Base):
    __tablename__ = "feed_events"
    # A poll reads (practice_id, seq > after) in order: one index range, whatever the size.
    __table_args__ = (UniqueConstraint("practice_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(30))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    visibility: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GPToken(Base):
    """A GP system's bearer token (stored hashed), scoped to one or more practices."""

    __tablename__ = "gp_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class GPTokenPractice(Base):
    __tablename__ = "gp_token_practices"

    token_id: Mapped[int] = mapped_column(ForeignKey("gp_tokens.id"), primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id"), primary_key=True)
