"""The worklist query: order, filters and keyset pages, on real rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from flagging import organisations
from flagging.errors import InvalidInput
from flagging.models import Document, DocumentVersion, InboundMessage, Sender, Visibility
from flagging.storage.engine import Database
from flagging.worklist import Cursor, Filters, worklist_page

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def sender_id(db: Database) -> int:
    with db.transaction() as session:
        organisations.add_sender(session, "RXX", "Test Trust")
        organisations.add_sender(session, "ROTHER", "Other Trust")
        return session.scalars(select(Sender.id).where(Sender.ods_code == "RXX")).one()


def _add(
    db: Database,
    sender_id: int,
    number: str,
    visibility: str = "pending",
    *,
    due: datetime | None = None,
    updated: datetime = T0,
    created: datetime = T0,
    author: str = "C1",
    family: str = "SMITH",
    given: str = "JO",
    nhs_number: str = "9990000018",
) -> int:
    with db.transaction() as session:
        message_id = session.execute(
            insert(InboundMessage)
            .values(received_at=T0, transport="test", size=0, content_hash="", outcome="accepted")
            .returning(InboundMessage.id)
        ).scalar_one()
        document = Document(
            sender_id=sender_id, document_number=number, kind="MDM", nhs_number=nhs_number,
            family_name=family, given_name=given, visibility=visibility, review_due_at=due,
            author_code=author, created_at=created, updated_at=updated, title=number,
        )  # fmt: skip
        session.add(document)
        session.flush()
        session.add(
            DocumentVersion(
                document_id=document.id, version=1, message_id=message_id, sender_id=sender_id,
                document_number=number, event="T02", change="original", author_code=author,
                author_name=f"Dr {author}", visibility=visibility, created_at=created,
            )
        )  # fmt: skip
        return document.id


def _numbers(db: Database, filters: Filters, **kwargs: object) -> list[str]:
    with db.transaction() as session:
        page = worklist_page(session, filters, **kwargs)  # type: ignore[arg-type]
        return [row.document.document_number for row in page.rows]


def test_pending_come_first_by_deadline_then_withheld_then_visible_newest_first(
    db: Database, sender_id: int
) -> None:
    hour = timedelta(hours=1)
    _add(db, sender_id, "visible-old", "visible", updated=T0)
    _add(db, sender_id, "withheld-new", "withheld", updated=T0 + 2 * hour)
    _add(db, sender_id, "pending-late", due=T0 + 5 * hour)
    _add(db, sender_id, "pending-no-deadline", due=None)
    _add(db, sender_id, "visible-new", "visible", updated=T0 + hour)
    _add(db, sender_id, "pending-soon", due=T0 + hour)
    _add(db, sender_id, "withheld-old", "withheld", updated=T0)

    assert _numbers(db, Filters(sender_id)) == [
        "pending-soon",
        "pending-late",
        "pending-no-deadline",
        "withheld-new",
        "withheld-old",
        "visible-new",
        "visible-old",
    ]


def test_keyset_pages_cover_every_document_once_across_the_segments(
    db: Database, sender_id: int
) -> None:
    for i in range(4):
        _add(db, sender_id, f"p{i}", due=T0 + timedelta(minutes=i % 2))  # equal deadlines too
        _add(db, sender_id, f"n{i}", due=None)
        _add(db, sender_id, f"w{i}", "withheld", updated=T0)  # all changed at the same moment
        _add(db, sender_id, f"v{i}", "visible", updated=T0 + timedelta(minutes=i))
    whole = _numbers(db, Filters(sender_id), limit=100)
    seen: list[str] = []
    after = None
    pages = 0
    with db.transaction() as session:
        while True:
            page = worklist_page(session, Filters(sender_id), after, limit=3)
            seen.extend(row.document.document_number for row in page.rows)
            pages += 1
            if page.next is None:
                break
            after = Cursor.decode(page.next.encode())  # as it travels in the page's link
    assert seen == whole
    assert len(seen) == 16
    assert pages == 6


def test_mine_status_patient_and_dates_filter_the_list(db: Database, sender_id: int) -> None:
    _add(db, sender_id, "mine-smith", author="C1", family="SMITH", given="JO")
    _add(db, sender_id, "mine-smythe", author="C1", family="Smythe", given="Alex",
         nhs_number="9990000026")  # fmt: skip
    _add(db, sender_id, "theirs", author="C2", family="JONES",
         created=T0 - timedelta(days=3))  # fmt: skip
    _add(db, sender_id, "withheld", "withheld", author="C1")
    base = Filters(sender_id)

    assert _numbers(db, Filters(sender_id, author_code="C2")) == ["theirs"]
    assert _numbers(db, Filters(sender_id, status=Visibility.WITHHELD)) == ["withheld"]
    assert _numbers(db, Filters(sender_id, nhs_number="9990000026")) == ["mine-smythe"]
    assert sorted(_numbers(db, Filters(sender_id, family_name="sm"))) == [
        "mine-smith",
        "mine-smythe",
        "withheld",
    ]
    assert _numbers(db, Filters(sender_id, family_name="SMY", given_name="al")) == ["mine-smythe"]
    assert _numbers(db, Filters(sender_id, received_before=T0 - timedelta(days=1))) == ["theirs"]
    assert "theirs" not in _numbers(db, Filters(sender_id, received_from=T0))
    assert len(_numbers(db, base)) == 4


def test_another_trusts_documents_never_appear(db: Database, sender_id: int) -> None:
    with db.transaction() as session:
        other = session.scalars(select(Sender.id).where(Sender.ods_code == "ROTHER")).one()
    _add(db, other, "other-trust")
    _add(db, sender_id, "ours")
    assert _numbers(db, Filters(sender_id)) == ["ours"]


def test_a_hand_edited_page_position_is_refused() -> None:
    for value in ("", "x", "9..1", "0.notadate.5", "1.2.3.4"):
        with pytest.raises(InvalidInput):
            Cursor.decode(value)
    cursor = Cursor(0, T0 + timedelta(microseconds=7), 42)
    assert Cursor.decode(cursor.encode()) == cursor
