"""MESH delivery: a practice's channel, each message sent for a feed event, and what came back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime, utcnow


class MeshChannel(Base):
    """A practice that receives its feed in its MESH mailbox, and how far delivery has got."""

    __tablename__ = "mesh_channels"

    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id"), primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(20))  # the practice's MESH mailbox id
    workflow: Mapped[str] = mapped_column(String(40))  # MESH workflow id of what we send
    sent_seq: Mapped[int] = mapped_column(Integer, default=0)  # last feed event sent
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row, for the backoff
    error: Mapped[str] = mapped_column(String(500), default="")
    # The next attempt, or the lease of the scheduler sending now (see flagging.mesh_sending).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when MESH rejected a message for this practice: nothing more is sent until an
    # operator has fixed the cause and resumed the channel.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MeshMessage(Base):
    """One feed event sent over MESH: its ids, MESH's tracking and the practice's answer."""

    __tablename__ = "mesh_messages"
    __table_args__ = (UniqueConstraint("practice_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    practice_id: Mapped[int] = mapped_column(ForeignKey("practices.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[int] = mapped_column(ForeignKey("feed_events.id"))
    local_id: Mapped[str] = mapped_column(String(40))  # Mex-LocalID: the same on a resend
    # The MessageHeader id an ITK3 response names in MessageHeader.response.identifier.
    header_id: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # MESH's message id
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # MESH tracking: accepted (in the practice's inbox), acknowledged (downloaded by the
    # practice's system), or an error status; empty until first polled.
    tracking: Mapped[str] = mapped_column(String(30), default="")
    tracked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The latest ITK3 response: its kind (business, infrastructure), MessageHeader.response
    # code (ok, transient-error, fatal-error) and the ITK response code and display.
    ack_kind: Mapped[str] = mapped_column(String(20), default="")
    ack_code: Mapped[str] = mapped_column(String(20), default="")
    ack_detail: Mapped[str] = mapped_column(String(300), default="")
    ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MeshInbound(Base):
    """Every message collected from our own MESH inbox, kept as received before it is
    acknowledged to MESH, so that nothing that reached us is lost, matched or not."""

    __tablename__ = "mesh_inbound"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    sender: Mapped[str] = mapped_column(String(20), default="")
    workflow: Mapped[str] = mapped_column(String(40), default="")
    local_id: Mapped[str] = mapped_column(String(100), default="")
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # matched (to the mesh_messages row below), unmatched, or unreadable
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(300), default="")
    mesh_message_id: Mapped[int | None] = mapped_column(ForeignKey("mesh_messages.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
