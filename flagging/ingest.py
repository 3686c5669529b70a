"""Use cases of the inbound path: record every receipt, store the documents a message carries.

Called once per message inside the transaction its entry point owns; they flush, never commit.
The hot path issues a handful of indexed statements and no ORM unit-of-work bookkeeping, since
it runs for every message of every connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from flagging.inbound import DocumentInput, Problem, Receipt
from flagging.models import Document, DocumentVersion, InboundMessage, MessageOutcome
from flagging.models.documents import DocumentStatus, VersionChange
from flagging.organisations import routable_practice_id


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class AcceptedMessage:
    """What a resend is compared with: the first accepted message for a sender and MSH-10."""

    id: int
    content_hash: str
    ack: bytes | None


def find_accepted(session: Session, sender_id: int, control_id: str) -> AcceptedMessage | None:
    row = session.execute(
        select(InboundMessage.id, InboundMessage.content_hash, InboundMessage.ack).where(
            InboundMessage.sender_id == sender_id, InboundMessage.control_key == control_id
        )
    ).first()
    return AcceptedMessage(row.id, row.content_hash, row.ack) if row else None


def record_message(
    session: Session,
    receipt: Receipt,
    outcome: MessageOutcome,
    *,
    ack_code: str,
    ack: bytes | None,
    sender_id: int | None = None,
    problem: Problem | None = None,
    duplicate_of: AcceptedMessage | None = None,
    size: int | None = None,
) -> int:
    """Store a receipt with its outcome and the ACK that answers it; return its id.

    `size` is given for an oversize message, of which only the first bytes are kept.
    """
    digest = duplicate_of.content_hash if duplicate_of else content_hash(receipt.raw)
    accepted = outcome is MessageOutcome.ACCEPTED
    values = {
        "received_at": receipt.received_at,
        "transport": receipt.transport,
        "peer": receipt.peer[:100],
        # A resend's bytes are those of the message it repeats: keep one copy.
        "raw": None if duplicate_of else receipt.raw,
        "size": len(receipt.raw) if size is None else size,
        "content_hash": digest,
        "sender_id": sender_id,
        "sending_facility": receipt.sending_facility[:180],
        "sending_application": receipt.sending_application[:180],
        "control_id": receipt.control_id[:199],
        "control_key": receipt.control_id[:199] if accepted and receipt.control_id else None,
        "message_type": receipt.message_type[:20],
        "version": receipt.version[:20],
        "outcome": outcome.value,
        "ack_code": ack_code,
        "ack": ack,
        "error_code": problem.code if problem else "",
        "error_location": problem.location[:40] if problem else "",
        "error_text": problem.text if problem else "",
        "duplicate_of_id": duplicate_of.id if duplicate_of else None,
    }
    result = session.execute(insert(InboundMessage).values(values).returning(InboundMessage.id))
    return int(result.scalar_one())


def _thread_of(session: Session, sender_id: int, number: str) -> int | None:
    if not number:
        return None
    return session.scalar(
        select(DocumentVersion.document_id)
        .where(DocumentVersion.sender_id == sender_id, DocumentVersion.document_number == number)
        .limit(1)
    )


def store_document(
    session: Session, *, sender_id: int, message_id: int, doc: DocumentInput, now: datetime
) -> int:
    """Add a document version to its thread (found by number or parent), or start a thread."""
    document_id = _thread_of(session, sender_id, doc.number) or _thread_of(
        session, sender_id, doc.parent_number
    )
    content, content_type = doc.content, doc.content_type
    if document_id is None:
        practice_code = doc.practice_ods_code
        document_id = session.execute(
            insert(Document)
            .values(
                sender_id=sender_id,
                document_number=doc.number,
                kind=doc.kind,
                status=(DocumentStatus.WITHDRAWN if doc.cancel else DocumentStatus.CURRENT).value,
                nhs_number=doc.patient.nhs_number,
                family_name=doc.patient.family_name[:100],
                given_name=doc.patient.given_name[:100],
                birth_date=doc.patient.birth_date,
                practice_ods_code=practice_code[:20],
                practice_id=routable_practice_id(session, practice_code),
                latest_version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Document.id)
        ).scalar_one()
        version = 1
        change = doc.change or VersionChange.ORIGINAL
    else:
        # Locks the thread on PostgreSQL, so concurrent versions are numbered one after another.
        latest = session.execute(
            select(Document.latest_version).where(Document.id == document_id).with_for_update()
        ).scalar_one()
        version = latest + 1
        change = doc.change or VersionChange.CORRECTION
        if doc.cancel:
            change = VersionChange.CANCEL
        changes: dict[str, object] = {"latest_version": version, "updated_at": now}
        if doc.cancel:
            changes["status"] = DocumentStatus.WITHDRAWN.value
        session.execute(update(Document).where(Document.id == document_id).values(changes))
        if content is None and not doc.cancel:
            # A status change without content (T03) keeps the text of the version before it.
            previous = session.execute(
                select(DocumentVersion.content, DocumentVersion.content_type).where(
                    DocumentVersion.document_id == document_id,
                    DocumentVersion.version == latest,
                )
            ).one()
            content, content_type = previous.content, previous.content_type
    session.execute(
        insert(DocumentVersion).values(
            document_id=document_id,
            version=version,
            message_id=message_id,
            sender_id=sender_id,
            document_number=doc.number,
            parent_number=doc.parent_number,
            event=doc.event,
            change=change.value,
            document_type=doc.document_type[:250],
            title=doc.title[:250],
            author_code=doc.author_code[:100],
            author_name=doc.author_name[:250],
            provider=doc.provider[:250],
            origination_time=doc.origination_time,
            completion_status=doc.completion_status[:5],
            confidentiality=doc.confidentiality[:5],
            availability=doc.availability[:5],
            placer_number=doc.placer_number[:199],
            content_type=content_type,
            content=content,
            created_at=now,
        )
    )
    return int(document_id)
