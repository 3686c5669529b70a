"""The clinicians' worklist: one trust's documents, pending first by review deadline.

Pages are keyset pages, never offsets: each page continues after the last row of the one
before, inside one index range, so a page costs the same with ten thousand documents as with
ten million. The list is walked as segments, each one an index range in its own order:

0. pending with a review deadline, soonest first (ix_documents_worklist[_author]);
1. pending with no deadline (held at source), oldest first (same index, deadline NULL);
2. withheld, most recently changed first (ix_documents_decided[_author]);
3. visible, most recently changed first (same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from flagging.errors import InvalidInput
from flagging.models import Document, DocumentVersion, Visibility
from flagging.models.documents import DECIDED

PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Segment:
    visibility: Visibility
    due: bool | None  # pending only: with a deadline (True) or without (False)
    descending: bool  # by (updated_at, id) descending; else by (review_due_at | id) ascending


SEGMENTS = (
    Segment(Visibility.PENDING, True, False),
    Segment(Visibility.PENDING, False, False),
    Segment(Visibility.WITHHELD, None, True),
    Segment(Visibility.VISIBLE, None, True),
)


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (key, id) in segment `segment`."""

    segment: int
    key: datetime | None
    id: int

    def encode(self) -> str:
        key = self.key.strftime("%Y%m%dT%H%M%S.%f") if self.key else ""
        return f"{self.segment}.{key}.{self.id}"

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """The cursor `encode` wrote; InvalidInput for anything else (a hand-edited link)."""
        segment, _, rest = value.partition(".")
        key, _, ident = rest.rpartition(".")
        try:
            moment = datetime.strptime(key + "+0000", "%Y%m%dT%H%M%S.%f%z") if key else None
            cursor = cls(int(segment), moment, int(ident))
        except ValueError:
            raise InvalidInput(f"{value!r} is not a worklist position") from None
        if not 0 <= cursor.segment < len(SEGMENTS):
            raise InvalidInput(f"{value!r} is not a worklist position")
        return cursor


@dataclass(frozen=True)
class Filters:
    """What the clinician asked for. `sender_id` is not a choice: it is the user's trust."""

    sender_id: int
    author_code: str = ""  # "mine": documents whose TXA-9 / OBR-32 is this code
    status: Visibility | None = None  # None: every status, pending first
    received_from: datetime | None = None
    received_before: datetime | None = None
    nhs_number: str = ""
    family_name: str = ""  # a prefix, any case
    given_name: str = ""  # a prefix, any case (with a family name)


@dataclass(frozen=True)
class Row:
    document: Document
    author_name: str
    source: str = ""  # who or what set the latest version's visibility (ZFL-8)


@dataclass(frozen=True)
class Page:
    rows: list[Row] = field(default_factory=list)
    next: Cursor | None = None


def _case_variants(prefix: str) -> list[str]:
    """Spellings a stored name may start with. HL7 feeds send names in capitals or in title
    case; a range per variant keeps the search inside the (sender, family name) index."""
    return sorted({prefix, prefix.upper(), prefix.lower(), prefix.capitalize()})


def _prefix(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    return or_(*(and_(column >= v, column < v + "\U0010ffff") for v in _case_variants(prefix)))


def _segment_query(
    filters: Filters, segment: Segment, after: Cursor | None
) -> Any:  # a Select of (Document, author name); its generic form differs by version
    query = (
        select(Document, DocumentVersion.author_name, DocumentVersion.visibility_source)
        .join(
            DocumentVersion,
            and_(
                DocumentVersion.document_id == Document.id,
                DocumentVersion.version == Document.latest_version,
            ),
        )
        .where(Document.sender_id == filters.sender_id)
        .where(Document.visibility == segment.visibility.value)
    )
    if filters.author_code:
        query = query.where(Document.author_code == filters.author_code)
    if filters.received_from is not None:
        query = query.where(Document.created_at >= filters.received_from)
    if filters.received_before is not None:
        query = query.where(Document.created_at < filters.received_before)
    if filters.nhs_number:
        query = query.where(Document.nhs_number == filters.nhs_number)
    if filters.family_name:
        query = query.where(_prefix(Document.family_name, filters.family_name))
        if filters.given_name:
            query = query.where(_prefix(Document.given_name, filters.given_name))
    if segment.descending:
        # Implied by the segment's visibility, but SQLite uses a partial index only for a
        # query that names its condition.
        query = query.where(text(f"documents.{DECIDED}"))
        query = query.order_by(Document.updated_at.desc(), Document.id.desc())
        if after is not None and after.key is not None:
            # The plain bound lets the database start the index range there; the OR then
            # settles ties on the key by id.
            query = query.where(Document.updated_at <= after.key).where(
                or_(
                    Document.updated_at < after.key,
                    and_(Document.updated_at == after.key, Document.id < after.id),
                )
            )
    elif segment.due:
        query = query.where(Document.review_due_at.is_not(None))
        query = query.order_by(Document.review_due_at, Document.id)
        if after is not None and after.key is not None:
            query = query.where(Document.review_due_at >= after.key).where(
                or_(
                    Document.review_due_at > after.key,
                    and_(Document.review_due_at == after.key, Document.id > after.id),
                )
            )
    else:
        query = query.where(Document.review_due_at.is_(None)).order_by(Document.id)
        if after is not None:
            query = query.where(Document.id > after.id)
    return query


def _key(document: Document, segment: Segment) -> datetime | None:
    if segment.descending:
        return document.updated_at
    return document.review_due_at if segment.due else None


def worklist_page(
    session: Session, filters: Filters, after: Cursor | None = None, limit: int = PAGE_SIZE
) -> Page:
    """One page of the worklist, continuing after `after` (the first page when None)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    found: list[tuple[int, Row]] = []  # (segment index, row); one more than a page, if any
    start = after.segment if after is not None else 0
    for index in range(start, len(SEGMENTS)):
        segment = SEGMENTS[index]
        if filters.status is not None and segment.visibility != filters.status:
            continue
        position = after if after is not None and index == after.segment else None
        query = _segment_query(filters, segment, position).limit(limit + 1 - len(found))
        found.extend((index, Row(r[0], r[1], r[2])) for r in session.execute(query).all())
        if len(found) > limit:
            break
    if len(found) <= limit:
        return Page([row for _, row in found], None)
    index, last = found[limit - 1]
    cursor = Cursor(index, _key(last.document, SEGMENTS[index]), last.document.id)
    return Page([row for _, row in found[:limit]], cursor)
