"""Clinical documents: a thread per document number, and one row per version received."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    case,
    select,
    text,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column

from flagging.models.base import Base, UTCDateTime
from flagging.models.messages import InboundMessage
from flagging.spans import join_spans


class DocumentStatus(enum.StrEnum):
    CURRENT = "current"
    WITHDRAWN = "withdrawn"  # cancelled by MDM^T11 or OBR-25 X


class VersionChange(enum.StrEnum):
    """What a version did to its thread (from the MDM trigger event or OBR-25)."""

    ORIGINAL = "original"  # T01/T02, first OBR-3
    STATUS = "status"  # T03/T04
    ADDENDUM = "addendum"  # T05/T06
    EDIT = "edit"  # T07/T08
    REPLACEMENT = "replacement"  # T09/T10
    CORRECTION = "correction"  # ORU^R01 again for a known OBR-3
    CANCEL = "cancel"  # T11, OBR-25 X


# The rows of the decided-documents indexes (SQL, as the indexes and their queries say it).
DECIDED = "visibility <> 'pending'"


class Document(Base):
    """A document thread, identified by its sender and first document number (TXA-12 / OBR-3)."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("sender_id", "document_number"),
        # Unroutable documents (no practice), listed for administrators: partial, so routed
        # documents, nearly all of them, cost ingest no entry here.
        Index(
            "ix_documents_unroutable",
            "id",
            sqlite_where=text("practice_id IS NULL"),
            postgresql_where=text("practice_id IS NULL"),
        ),
        # The clinicians' worklist: a trust's documents by status, soonest deadline first, and
        # the same for one author ("mine"). Keyset pages walk these indexes.
        Index("ix_documents_worklist", "sender_id", "visibility", "review_due_at", "id"),
        Index(
            "ix_documents_worklist_author",
            "sender_id",
            "author_code",
            "visibility",
            "review_due_at",
            "id",
        ),
        # Decided documents (withheld, visible) in the worklist, most recently changed first:
        # partial, so a new document (pending) costs ingest no entry in either. A query
        # names DECIDED itself for SQLite to use them (flagging/worklist.py).
        Index(
            "ix_documents_decided",
            "sender_id",
            "visibility",
            "updated_at",
            "id",
            sqlite_where=text(DECIDED),
            postgresql_where=text(DECIDED),
        ),
        Index(
            "ix_documents_decided_author",
            "sender_id",
            "author_code",
            "visibility",
            "updated_at",
            "id",
            sqlite_where=text(DECIDED),
            postgresql_where=text(DECIDED),
        ),
        Index("ix_documents_sender_family_name", "sender_id", "family_name"),
        # Pending documents whose review window lapses, for the release job.
        Index("ix_documents_release", "visibility", "auto_release", "review_due_at"),
        # Withheld documents with an end date, for the expiry job: partial, so the many
        # documents without one cost ingest no index entry.
        Index(
            "ix_documents_expiry",
            "withhold_until",
            sqlite_where=text("withhold_until IS NOT NULL"),
            postgresql_where=text("withhold_until IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    document_number: Mapped[str] = mapped_column(String(199))
    kind: Mapped[str] = mapped_column(String(3))  # MDM | ORU
    status: Mapped[str] = mapped_column(String(12), default=DocumentStatus.CURRENT.value)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    family_name: Mapped[str] = mapped_column(String(100), default="")
    given_name: Mapped[str] = mapped_column(String(100), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)
    # PD1-3 as received; `practice_id` is NULL while the document is unroutable.
    practice_ods_code: Mapped[str] = mapped_column(String(20), default="")
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id"))
    latest_version: Mapped[int] = mapped_column(default=1)
    # Of the latest version, copied here for the worklist and the release job.
    document_type: Mapped[str] = mapped_column(String(250), default="")
    title: Mapped[str] = mapped_column(String(250), default="")
    author_code: Mapped[str] = mapped_column(String(100), default="")
    specialty: Mapped[str] = mapped_column(String(100), default="")  # PV1-10 hospital service
    visibility: Mapped[str] = mapped_column(String(10), default="pending")
    review_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # False while a person must decide (screening hit, or pending at source).
    auto_release: Mapped[bool] = mapped_column(default=True)
    withhold_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped by every new version and decision: a form made on an older one is stale.
    revision: Mapped[int] = mapped_column(default=1)
    # Whether document.available has gone into the practice's feed.
    published: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DocumentVersion(Base):
    """One received version of a document, with its content as text or a decoded rendition."""

    __tablename__ = "document_versions"
    __table_args__ = (
        UniqueConstraint("document_id", "version"),
        # Finds the thread of an incoming TXA-12 / TXA-13 / OBR-3.
        Index("ix_document_versions_sender_number", "sender_id", "document_number"),
        # The versions a message carried: retention checks them before deleting its bytes.
        Index("ix_document_versions_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    version: Mapped[int]
    message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("senders.id"))
    document_number: Mapped[str] = mapped_column(String(199))
    parent_number: Mapped[str] = mapped_column(String(199), default="")
    event: Mapped[str] = mapped_column(String(3))  # T01..T11, R01
    change: Mapped[VersionChange] = mapped_column(String(12))
    document_type: Mapped[str] = mapped_column(String(250), default="")  # TXA-2 / OBR-4
    title: Mapped[str] = mapped_column(String(250), default="")  # TXA-25 / OBR-4 text
    author_code: Mapped[str] = mapped_column(String(100), default="")  # TXA-9 / OBR-32
    author_name: Mapped[str] = mapped_column(String(250), default="")
    provider: Mapped[str] = mapped_column(String(250), default="")  # TXA-5
    origination_time: Mapped[datetime | None] = mapped_column(UTCDateTime())  # TXA-6 / OBR-7
    completion_status: Mapped[str] = mapped_column(String(5), default="")  # TXA-17 / OBR-25
    confidentiality: Mapped[str] = mapped_column(String(5), default="")  # TXA-18
    availability: Mapped[str] = mapped_column(String(5), default="")  # TXA-19
    placer_number: Mapped[str] = mapped_column(String(199), default="")  # OBR-2
    content_type: Mapped[str] = mapped_column(String(100), default="")
    # The text or rendition as stored; NULL when `content_spans` says where it is in the
    # bytes of the message (flagging/spans.py). Read `content`, which gives it either way.
    stored_content: Mapped[bytes | None] = mapped_column("content", LargeBinary)
    content_spans: Mapped[str | None] = mapped_column(Text)
    # The message's bytes, loaded with the version only when its text is kept there, so that
    # `content` needs no second query, nor a session.
    spans_source: Mapped[bytes | None] = column_property(
        case(
            (
                content_spans.is_not(None),
                select(InboundMessage.raw)
                .where(InboundMessage.id == message_id)
                .correlate_except(InboundMessage)
                .scalar_subquery(),
            )
        )
    )
    specialty: Mapped[str] = mapped_column(String(100), default="")
    # The version's current visibility; its history is in `decisions`.
    visibility: Mapped[str] = mapped_column(String(10), default="pending")
    visibility_source: Mapped[str] = mapped_column(String(15), default="")
    reason: Mapped[str] = mapped_column(String(20), default="")
    withhold_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    # Whether this version has gone into the feed (document.available or .superseded).
    published: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def content(self) -> bytes | None:
        """The version's text or rendition, from the message it came in if it is kept there."""
        if self.content_spans is None:
            return self.stored_content
        # Retention copies the text into the version before it deletes these bytes.
        assert self.spans_source is not None, f"message {self.message_id} lost a version's text"
        return join_spans(bytes(self.spans_source), self.content_spans)

    @content.setter
    def content(self, value: bytes | None) -> None:
        self.stored_content, self.content_spans = value, None
