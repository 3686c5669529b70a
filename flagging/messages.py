"""The inbound message store as an operator uses it: search, one message in full, and closing
a quarantined entry with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, LargeBinary, Select, func, literal, or_, select, text
from sqlalchemy.orm import Session

from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import (
    Document,
    DocumentVersion,
    InboundMessage,
    MessageOutcome,
    MessageResolution,
)
from flagging.models.messages import NOT_ACCEPTED

T = TypeVar("T")

# Entries an operator can close: those the service did not process.
CLOSABLE = (MessageOutcome.QUARANTINED, MessageOutcome.REJECTED)

# Implied by an outcome other than accepted, but SQLite uses the partial index on (outcome,
# id) only for a query that names its condition.
_NOT_ACCEPTED = text(f"inbound_messages.{NOT_ACCEPTED}")


@dataclass(frozen=True)
class MessageSearch:
    """What an operator searches by; empty fields do not filter."""

    sender: str = ""  # MSH-4 as sent (an ODS code)
    control_id: str = ""  # MSH-10
    nhs_number: str = ""
    document_number: str = ""  # TXA-12 / OBR-3
    outcome: MessageOutcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    open_only: bool = False  # quarantined or rejected, and not yet resolved or dismissed


def search_messages(
    session: Session, search: MessageSearch, *, before_id: int | None = None, limit: int = 50
) -> list[InboundMessage]:
    """Newest first, paged by id. An NHS number or document number finds the messages that
    carried a document of that patient or number, and the quarantined or rejected ones whose
    bytes hold it (they never became documents)."""
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if search.sender:
        query = query.where(InboundMessage.sending_facility == search.sender.strip().upper())
    if search.control_id:
        query = query.where(InboundMessage.control_id == search.control_id.strip())
    if search.outcome is not None:
        query = _with_outcome(query, search.outcome)
    if search.open_only:
        query = query.where(
            _NOT_ACCEPTED,
            InboundMessage.outcome.in_([o.value for o in CLOSABLE]),
            InboundMessage.resolution == "",
            InboundMessage.reprocessed_as_id.is_(None),
        )
    if search.since is not None:
        query = query.where(InboundMessage.received_at >= search.since)
    if search.until is not None:
        query = query.where(InboundMessage.received_at < search.until)
    not_processed = InboundMessage.outcome.in_([o.value for o in CLOSABLE])
    if search.nhs_number:
        number = "".join(search.nhs_number.split())
        if not number.isdigit() or len(number) != 10:
            raise InvalidInput(f"{search.nhs_number!r} is not an NHS number (10 digits)")
        carried = (
            select(DocumentVersion.message_id)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(Document.nhs_number == number)
        )
        query = query.where(
            or_(
                InboundMessage.id.in_(carried),
                not_processed & _holds(session, number.encode()),
            )
        )
    if search.document_number:
        number = search.document_number.strip()
        carried = select(DocumentVersion.message_id).where(
            DocumentVersion.document_number == number
        )
        query = query.where(
            or_(
                InboundMessage.id.in_(carried),
                not_processed & _holds(session, number.encode()),
            )
        )
    if before_id is not None:
        query = query.where(InboundMessage.id < before_id)
    return list(session.scalars(query))


def _holds(session: Session, needle: bytes) -> ColumnElement[bool]:
    """The raw bytes contain `needle` (a scan of the messages the other conditions leave)."""
    if session.get_bind().dialect.name == "postgresql":
        escaped = needle.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
        pattern = literal(b"%" + escaped + b"%", LargeBinary())
        return InboundMessage.raw.op("LIKE", is_comparison=True)(pattern)  # bytea LIKE bytea
    return func.instr(InboundMessage.raw, literal(needle, LargeBinary())) > 0


def close_message(
    session: Session,
    message_id: int,
    resolution: MessageResolution,
    *,
    reason: str,
    by: str,
    now: datetime,
) -> InboundMessage:
    """Resolve or dismiss a quarantined or rejected entry, with the reason, who and when."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give a reason: it is kept with the entry")
    if resolution not in (MessageResolution.RESOLVED, MessageResolution.DISMISSED):
        raise InvalidInput("an operator can resolve or dismiss an entry")
    message = session.execute(
        select(InboundMessage).where(InboundMessage.id == message_id).with_for_update()
    ).scalar_one_or_none()
    if message is None:
        raise NotFound(f"no message {message_id}")
    if message.outcome not in CLOSABLE:
        raise Conflict(
            f"message {message_id} is {message.outcome}: only quarantined or rejected "
            "messages can be resolved or dismissed"
        )
    if message.resolution:
        raise Conflict(f"message {message_id} was already {message.resolution}")
    message.resolution = resolution.value
    message.resolution_reason = reason[:500]
    message.resolved_by = by[:200]
    message.resolved_at = now
    session.flush()
    return message


def list_messages(
    session: Session,
    *,
    outcome: MessageOutcome | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[InboundMessage]:
    """Newest first, paged by id so a page costs the same however large the store is."""
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if outcome is not None:
        query = _with_outcome(query, outcome)
    if before_id is not None:
        query = query.where(InboundMessage.id < before_id)
    return list(session.scalars(query))


def _with_outcome(query: Select[T], outcome: MessageOutcome) -> Select[T]:
    query = query.where(InboundMessage.outcome == outcome.value)
    return query if outcome == MessageOutcome.ACCEPTED else query.where(_NOT_ACCEPTED)


def get_message(session: Session, message_id: int) -> InboundMessage:
    message = session.get(InboundMessage, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    return message


def original_bytes(session: Session, message: InboundMessage) -> bytes:
    """The bytes as received; a resend's are those of the message it repeats."""
    if message.raw is not None:
        return message.raw
    if message.duplicate_of_id is not None:
        return get_message(session, message.duplicate_of_id).raw or b""
    return b""


def count_quarantined(session: Session) -> int:
    """Quarantined messages not yet run again: what an administrator has to look at."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(
                InboundMessage.outcome == MessageOutcome.QUARANTINED.value,
                InboundMessage.reprocessed_as_id.is_(None),
            )
        )
        or 0
    )
