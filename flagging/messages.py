"""Reading the inbound message store: the list an operator scans, one message in full."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging.errors import NotFound
from flagging.models import InboundMessage, MessageOutcome


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
        query = query.where(InboundMessage.outcome == outcome.value)
    if before_id is not None:
        query = query.where(InboundMessage.id < before_id)
    return list(session.scalars(query))


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
