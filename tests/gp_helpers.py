"""Helpers for the GP feed tests: practices, tokens, messages in and decisions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from flagging import gp_tokens, organisations, practice_settings
from flagging.models import Document, FeedEvent, Practice, Visibility
from flagging.storage.engine import Database
from flagging.visibility import Actor, decide_visibility
from hl7.handler import MessageHandler

OTHER_PRACTICE = "B82002"
CLINICIAN = Actor(code="C1234567", name="Dr Sam Grey")


def now() -> datetime:
    return datetime.now(UTC)


def add_practice(db: Database, ods_code: str, *, mode: str = "immediate") -> int:
    with db.transaction() as session:
        practice = organisations.add_practice(session, ods_code, f"Practice {ods_code}")
        practice.feed_mode = mode
        return practice.id


def set_mode(db: Database, ods_code: str, mode: str) -> None:
    with db.transaction() as session:
        practice_settings.configure_practice(session, ods_code, feed_mode=mode)


def token_for(db: Database, *ods_codes: str) -> str:
    with db.transaction() as session:
        return gp_tokens.issue_token(session, list(ods_codes), name="test", now=now()).token


def send(handler: MessageHandler, raw: bytes) -> None:
    reply = handler.handle(raw, transport="mllp", peer="test")
    assert reply.code == "AA", reply.ack


def document_id(db: Database, number: str) -> int:
    with db.reading() as session:
        return session.execute(
            select(Document.id).where(Document.document_number == number)
        ).scalar_one()


def decide(db: Database, doc_id: int, visibility: Visibility, reason: str = "serious-harm") -> None:
    with db.transaction() as session:
        decide_visibility(
            session,
            document_id=doc_id,
            visibility=visibility,
            actor=CLINICIAN,
            reason=reason if visibility == Visibility.WITHHELD else "",
            now=now(),
        )


def feed_table(db: Database, ods_code: str) -> list[tuple[int, str, int, int, str]]:
    """The practice's feed as stored: (seq, type, document id, version id, visibility)."""
    with db.reading() as session:
        rows = session.execute(
            select(
                FeedEvent.seq,
                FeedEvent.type,
                FeedEvent.document_id,
                FeedEvent.version_id,
                FeedEvent.visibility,
            )
            .join(Practice, Practice.id == FeedEvent.practice_id)
            .where(Practice.ods_code == ods_code)
            .order_by(FeedEvent.seq)
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
