"""Organisations the service talks to: sending trusts and receiving GP practices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime, utcnow


class Sender(Base):
    """A registered hospital system, matched on MSH-4 (and MSH-3 when `application` is set)."""

    __tablename__ = "senders"
    __table_args__ = (UniqueConstraint("ods_code", "application"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(180))  # MSH-4: an ODS code, or an OID
    # Empty means "any MSH-3": NULLs would not be unique on either database.
    application: Mapped[str] = mapped_column(String(180), default="")
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the HTTP bearer token; the token itself is shown once and never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Practice(Base):
    """A GP practice, known by its ODS code (a letter and five digits)."""

    __tablename__ = "practices"

    id: Mapped[int] = mapped_column(primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
