"""Reading documents and routing the unroutable ones to a practice."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging import feed
from flagging.errors import Conflict, NotFound
from flagging.models import Document, DocumentVersion
from flagging.organisations import get_practice


def list_documents(
    session: Session,
    *,
    unroutable: bool = False,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Document]:
    """Newest first, paged by id; `unroutable` lists those waiting for a practice."""
    query = select(Document).order_by(Document.id.desc()).limit(limit)
    if unroutable:
        query = query.where(Document.practice_id.is_(None))
    if before_id is not None:
        query = query.where(Document.id < before_id)
    return list(session.scalars(query))


def get_document(session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


def versions_of(session: Session, document_id: int) -> list[DocumentVersion]:
    return list(
        session.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id)
            .order_by(DocumentVersion.version)
        )
    )


def route_document(session: Session, document_id: int, practice_ods_code: str) -> Document:
    """Send an unroutable document to a registered practice."""
    document = get_document(session, document_id)
    practice = get_practice(session, practice_ods_code)
    if document.practice_id is not None:
        raise Conflict(f"document {document_id} already goes to {document.practice_ods_code}")
    now = datetime.now(UTC)
    document.practice_id = practice.id
    document.practice_ods_code = practice.ods_code
    document.updated_at = now
    latest = versions_of(session, document_id)[-1]
    feed.publish_version(session, document, latest, now)
    session.flush()
    return document
