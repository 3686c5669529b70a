"""Reading documents and routing the unroutable ones to a practice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from flagging import feed
from flagging.errors import Conflict, NotFound
from flagging.models import (
    Decision,
    Document,
    DocumentVersion,
    ScreeningHit,
    ScreeningRule,
    Sender,
)
from flagging.organisations import get_practice
from flagging.store import bounded_key


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


def find_by_number(session: Session, sender_id: int, document_number: str) -> Document | None:
    """A sender's document by its number (TXA-12 / OBR-3): the thread's first number, or the
    number of any later version (a replacement may carry its own)."""
    document_number = bounded_key(document_number)
    document = session.scalars(
        select(Document).where(
            Document.sender_id == sender_id, Document.document_number == document_number
        )
    ).first()
    if document is not None:
        return document
    document_id = session.scalar(
        select(DocumentVersion.document_id)
        .where(
            DocumentVersion.sender_id == sender_id,
            DocumentVersion.document_number == document_number,
        )
        .limit(1)
    )
    return session.get(Document, document_id) if document_id is not None else None


def get_version(session: Session, document_id: int, version: int) -> DocumentVersion:
    found = session.scalars(
        select(DocumentVersion).where(
            DocumentVersion.document_id == document_id, DocumentVersion.version == version
        )
    ).first()
    if found is None:
        raise NotFound(f"document {document_id} has no version {version}")
    return found


@dataclass(frozen=True)
class HeldBy:
    """A screening rule that holds a document's latest version for a person to decide."""

    name: str
    category: str


def held_by(session: Session, document_ids: list[int]) -> dict[int, list[HeldBy]]:
    """For each document, the screening rules that matched its latest version (one query for
    a whole worklist page), so the list can say why a document is held."""
    if not document_ids:
        return {}
    rows = session.execute(
        select(Document.id, ScreeningRule.name, ScreeningRule.category)
        .join(
            DocumentVersion,
            and_(
                DocumentVersion.document_id == Document.id,
                DocumentVersion.version == Document.latest_version,
            ),
        )
        .join(ScreeningHit, ScreeningHit.version_id == DocumentVersion.id)
        .join(ScreeningRule, ScreeningRule.id == ScreeningHit.rule_id)
        .where(Document.id.in_(document_ids))
        .distinct()
        .order_by(Document.id, ScreeningRule.name)
    ).all()
    found: dict[int, list[HeldBy]] = {}
    for document_id, name, category in rows:
        found.setdefault(document_id, []).append(HeldBy(name, category))
    return found


def decisions_of(session: Session, document_id: int) -> list[Decision]:
    """Every visibility decision on the document, newest first."""
    return list(
        session.scalars(
            select(Decision).where(Decision.document_id == document_id).order_by(Decision.id.desc())
        )
    )


def screening_hits_of(
    session: Session, version_id: int
) -> list[tuple[ScreeningHit, ScreeningRule]]:
    """Where screening rules matched a version, in text order, with the rule that matched."""
    rows = session.execute(
        select(ScreeningHit, ScreeningRule)
        .join(ScreeningRule, ScreeningRule.id == ScreeningHit.rule_id)
        .where(ScreeningHit.version_id == version_id)
        .order_by(ScreeningHit.start, ScreeningHit.id)
    ).all()
    return [(hit, rule) for hit, rule in rows]


def version_text(version: DocumentVersion) -> str | None:
    """A text version's content as the screening saw it (offsets of hits refer to it); None
    for a rendition that is not text (PDF, RTF)."""
    if version.content is None:
        return ""
    if not version.content_type.startswith("text/") and version.content_type:
        return None
    return version.content.decode("utf-8", "replace")


def trust_document(session: Session, sender_id: int | None, document_id: int) -> Document:
    """A document of the trust (sender) a clinician belongs to. Any other answers NotFound,
    exactly as one that does not exist: a clinician cannot learn what other trusts hold."""
    document = session.get(Document, document_id)
    if document is None or sender_id is None or document.sender_id != sender_id:
        raise NotFound(f"There is no document {document_id} for your trust.")
    return document


def trust_document_by_number(
    session: Session, sender_id: int | None, sender_code: str, document_number: str
) -> Document:
    """The trust's document by the stable link an EPR opens (MSH-4 code, TXA-12 / OBR-3);
    NotFound for another trust's, as for one that does not exist."""
    own = session.get(Sender, sender_id) if sender_id else None
    document = None
    if own is not None and own.ods_code == sender_code.strip().upper():
        document = find_by_number(session, own.id, document_number)
    if document is None:
        raise NotFound(f"There is no document {document_number} from {sender_code} for your trust.")
    return document


def version_numbered(
    versions: list[DocumentVersion], document_id: int, number: int | None
) -> DocumentVersion:
    """The version asked for among a document's versions, or the latest when none is."""
    if number is None:
        return versions[-1]
    matching = [v for v in versions if v.version == number]
    if not matching:
        raise NotFound(f"Document {document_id} has no version {number}.")
    return matching[0]


def rules_holding(
    session: Session,
    document: Document,
    versions: list[DocumentVersion],
    latest_hits: list[tuple[ScreeningHit, ScreeningRule]] | None = None,
) -> list[ScreeningRule]:
    """Why the latest version is held, each rule once: the rules that matched it or, for a
    version held because the one before it was, the rules that held that one."""
    hits = screening_hits_of(session, versions[-1].id) if latest_hits is None else latest_hits
    if not hits and not document.auto_release:
        for earlier in reversed(versions[:-1]):
            hits = screening_hits_of(session, earlier.id)
            if hits:
                break
    return list({(r.name, r.category): r for _, r in hits}.values())


def count_unroutable(session: Session) -> int:
    """Documents waiting for an administrator to name their practice."""
    return int(
        session.scalar(
            select(func.count()).select_from(Document).where(Document.practice_id.is_(None))
        )
        or 0
    )
