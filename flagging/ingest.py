"""Use cases of the inbound path: record every receipt, store the documents a message carries.

Called once per message inside the transaction its entry point owns; they flush, never commit.
The receipt is one Core insert; documents use the ORM, since their visibility and feed
bookkeeping act on the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from flagging import feed
from flagging.inbound import DocumentInput, Problem, Receipt
from flagging.models import (
    Document,
    DocumentStatus,
    DocumentVersion,
    InboundMessage,
    MessageOutcome,
    Reason,
    Sender,
    VersionChange,
    Visibility,
)
from flagging.organisations import routable_practice_id
from flagging.visibility import SourceFlag, assess_new_version


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


def _source_flag(doc: DocumentInput, txa18_v_policy: str) -> SourceFlag | None:
    """The flag at source: ZFL wins; else TXA-18 = V as the sender's policy says."""
    if doc.flag is not None:
        return doc.flag
    if doc.confidentiality == "V":
        if txa18_v_policy == "withheld":
            return SourceFlag(
                Visibility.WITHHELD,
                reason=Reason.OTHER.value,
                note="TXA-18 confidentiality status V (very restricted) at source",
            )
        return SourceFlag(Visibility.PENDING, note="TXA-18 confidentiality status V at source")
    return None


def store_document(
    session: Session,
    *,
    sender: Sender,
    message_id: int,
    doc: DocumentInput,
    now: datetime,
) -> Document:
    """Add a version to its thread (found by number or parent) or start a thread; give it its
    first visibility and put it into the practice's feed."""
    document_id = _thread_of(session, sender.id, doc.number) or _thread_of(
        session, sender.id, doc.parent_number
    )
    content, content_type = doc.content, doc.content_type
    previous: DocumentVersion | None = None
    if document_id is None:
        document = Document(
            sender_id=sender.id,
            document_number=doc.number,
            kind=doc.kind,
            status=(DocumentStatus.WITHDRAWN if doc.cancel else DocumentStatus.CURRENT).value,
            nhs_number=doc.patient.nhs_number,
            family_name=doc.patient.family_name[:100],
            given_name=doc.patient.given_name[:100],
            birth_date=doc.patient.birth_date,
            practice_ods_code=doc.practice_ods_code[:20],
            practice_id=routable_practice_id(session, doc.practice_ods_code),
            latest_version=1,
            revision=1,
            published=False,
            created_at=now,
            updated_at=now,
        )
        session.add(document)
        change = doc.change or VersionChange.ORIGINAL
    else:
        # Locks the thread on PostgreSQL, so concurrent versions are numbered one after another.
        document = session.execute(
            select(Document).where(Document.id == document_id).with_for_update()
        ).scalar_one()
        previous = session.execute(
            select(DocumentVersion).where(
                DocumentVersion.document_id == document_id,
                DocumentVersion.version == document.latest_version,
            )
        ).scalar_one()
        document.latest_version += 1
        document.revision += 1
        document.updated_at = now
        change = VersionChange.CANCEL if doc.cancel else doc.change or VersionChange.CORRECTION
        if doc.cancel:
            document.status = DocumentStatus.WITHDRAWN.value
        if content is None and not doc.cancel:
            # A status change without content (T03) keeps the text of the version before it.
            content, content_type = previous.content, previous.content_type
    document.document_type = doc.document_type[:250]
    document.title = doc.title[:250]
    document.author_code = doc.author_code[:100]
    document.specialty = doc.specialty[:100]
    version = DocumentVersion(
        version=document.latest_version,
        message_id=message_id,
        sender_id=sender.id,
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
        specialty=doc.specialty[:100],
        content_type=content_type,
        content=content,
        visibility=Visibility.PENDING.value,
        published=False,
        created_at=now,
    )
    session.add(document)
    session.flush()
    version.document_id = document.id
    session.add(version)
    session.flush()
    text = (
        content.decode("utf-8", "replace") if content and content_type.startswith("text/") else ""
    )
    assess_new_version(
        session,
        document,
        version,
        previous=previous,
        flag=_source_flag(doc, sender.txa18_v_policy),
        text=text,
        now=now,
    )
    feed.publish_version(session, document, version, now)
    session.flush()
    return document
