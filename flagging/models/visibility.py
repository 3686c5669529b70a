"""Whether the patient may see a document: the decisions, and what screening found."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from flagging.models.base import Base, UTCDateTime


class Visibility(enum.StrEnum):
    PENDING = "pending"  # no decision yet: hidden from the patient
    WITHHELD = "withheld"  # NOPAT: must not be shown
    VISIBLE = "visible"  # released to the patient


class Source(enum.StrEnum):
    """Who or what set a visibility (ZFL-8)."""

    MESSAGE = "message"
    SCREENING = "screening"
    REVIEW_WINDOW = "review-window"
    CLINICIAN = "clinician"
    EXPIRY = "expiry"


class Reason(enum.StrEnum):
    """Why a document is withheld (DESIGN.md; DPA 2018 Sch. 3 Part 2 and NHS England guidance)."""

    SERIOUS_HARM = "serious-harm"
    THIRD_PARTY = "third-party"
    SAFEGUARDING = "safeguarding"
    NOT_YET_DISCUSSED = "not-yet-discussed"
    LEGAL = "legal"
    OTHER = "other"


REASON_LABELS = {
    Reason.SERIOUS_HARM: "Likely to cause serious harm",
    Reason.THIRD_PARTY: "Information about a third party",
    Reason.SAFEGUARDING: "Safeguarding concern",
    Reason.NOT_YET_DISCUSSED: "Not yet discussed with the patient",
    Reason.LEGAL: "Legal restriction",
    Reason.OTHER: "Other (explain in the note)",
}


class Decision(Base):
    """One visibility decision on one document version. Append-only: never updated."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_document_id_id", "document_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    visibility: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(20), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    withhold_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(15))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by_code: Mapped[str] = mapped_column(String(100), default="")  # ZFL-5.1
    decided_by_name: Mapped[str] = mapped_column(String(200), default="")
    # A decision an EPR asserted through the hospital API: which sender and which of its
    # tokens, beside the clinician it names (whom the service cannot itself verify).
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("senders.id"))
    sender_token_id: Mapped[int | None] = mapped_column(ForeignKey("sender_tokens.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScreeningRule(Base):
    """A pattern that holds back likely-sensitive documents for a person to decide."""

    __tablename__ = "screening_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # word | phrase | regex (matched in the text) | document-type | specialty
    kind: Mapped[str] = mapped_column(String(15))
    pattern: Mapped[str] = mapped_column(String(500))
    category: Mapped[str] = mapped_column(String(50), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScreeningHit(Base):
    """Where a rule matched a version's text (character offsets), shown to the reviewer."""

    __tablename__ = "screening_hits"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"), index=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("screening_rules.id"))
    start: Mapped[int] = mapped_column(Integer, default=0)
    end: Mapped[int] = mapped_column(Integer, default=0)
