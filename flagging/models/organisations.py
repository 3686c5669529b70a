"""Organisations the service talks to: sending trusts and receiving GP practices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
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
    # Minutes a document stays pending before it is released if nobody decided (0 allowed).
    review_window_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    # What TXA-18 = V (very restricted) means for this sender: "withheld" or "pending".
    txa18_v_policy: Mapped[str] = mapped_column(String(10), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SenderToken(Base):
    """A sender's HTTP bearer token (stored hashed). A sender may hold several at once while a
    trust changes over from one to the next; a revoked token is refused from its next use."""

    __tablename__ = "sender_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), index=True)
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Updated at most once a minute, so a busy sender does not turn every request into a write.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SenderBinding(Base):
    """How a sender proves itself on MLLP: a network it connects from, or a client certificate.

    MSH-4 is only a claim; a connection speaks for the senders bound to it (flagging/bindings.py).
    `kind` is "network" (a CIDR, IPv4 or IPv6) or "certificate" (a SHA-256 fingerprint of the
    certificate, 64 hex digits, or a subject such as "CN=ra7-epr,O=Example Trust")."""

    __tablename__ = "sender_bindings"
    __table_args__ = (UniqueConstraint("sender_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    value: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewWindow(Base):
    """A sender's review window for one document type (TXA-2 / OBR-4 code)."""

    __tablename__ = "review_windows"
    __table_args__ = (UniqueConstraint("sender_id", "document_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    document_type: Mapped[str] = mapped_column(String(250))
    minutes: Mapped[int]


class Practice(Base):
    """A GP practice, known by its ODS code (a letter and five digits)."""

    __tablename__ = "practices"

    id: Mapped[int] = mapped_column(primary_key=True)
    ods_code: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # "immediate": documents enter the feed when received; "decided": once not pending.
    feed_mode: Mapped[str] = mapped_column(String(10), default="immediate")
    # The number of the practice's last feed event; the row is locked to number the next.
    feed_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Receipt the GP system acknowledged (POST .../acknowledgements), for the operators.
    acknowledged_seq: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optional MLLP push of the feed to the practice's system.
    push_host: Mapped[str] = mapped_column(String(200), default="")
    push_port: Mapped[int] = mapped_column(Integer, default=0)
    # Push over TLS (with our client certificate when FLAGGING_PUSH_TLS_CERT is set).
    push_tls: Mapped[bool] = mapped_column(default=False)
    push_seq: Mapped[int] = mapped_column(Integer, default=0)  # last event delivered
    push_failures: Mapped[int] = mapped_column(Integer, default=0)
    push_error: Mapped[str] = mapped_column(String(500), default="")
    push_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # For the operators' alerts: the last acknowledged delivery, and since when the push has
    # been failing without one (NULL while it works).
    push_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    push_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
