"""People who sign in: clinicians of a sending organisation, and administrators."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime


class Role(enum.StrEnum):
    CLINICIAN = "clinician"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[str] = mapped_column(String(10))
    # The trust whose documents a clinician sees; None for administrators.
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("senders.id"))
    # Matches TXA-9 / OBR-32 so "my documents" works.
    clinician_code: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Carried in every session cookie and checked on each request: raising it (sign-out,
    # password reset, deactivation) ends every copy of every session the user had.
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignInAddress(Base):
    """Failed sign-ins from one network address: many in a short while block the address,
    whichever accounts it tries (the per-account lock alone lets one address try a password
    against every account in turn)."""

    __tablename__ = "sign_in_addresses"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
