"""Reading the audit trail: verifying its hash chain, listing it, the subject access report.

Split from flagging/audit.py, which writes it (on every hot path), so that module stays small.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from flagging.audit import GENESIS, READS, entry_hash
from flagging.models import AuditEntry, AuditHead

# Verifying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain: how far it is intact, and the first problem."""

    entries: int
    head_seq: int
    head_hash: str
    problem: str = ""  # empty when the chain is intact
    seq: int | None = None  # the entry the problem names
    kind: str = ""  # changed | removed | inserted

    @property
    def ok(self) -> bool:
        return not self.problem


def _row_hash(row: Row[Any]) -> str:
    return entry_hash(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        document_id=row.document_id,
        message_id=row.message_id,
        nhs_number=row.nhs_number,
        practice=row.practice,
        detail=row.detail,
        prev_hash=row.prev_hash,
    )


def verify(session: Session) -> Verification:
    """Walk the chain from entry 1 and name the first entry changed, removed or inserted."""
    table = AuditEntry.__table__
    # Streamed (a server-side cursor on PostgreSQL), closed however the walk ends.
    rows = session.execute(select(table).order_by(table.c.seq).execution_options(yield_per=1000))
    try:
        return _walk(session, rows)
    finally:
        rows.close()


def _walk(session: Session, rows: Iterable[Row[Any]]) -> Verification:
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    expected, prev = 1, GENESIS
    count = 0

    def problem(seq: int, kind: str, text: str) -> Verification:
        return Verification(count, head_seq, head_hash, text, seq, kind)

    # `seq` is the key, so no two rows share a position: an entry inserted before the head
    # must move the ones after it, which changes them (their hashes cover `seq`).
    for row in rows:
        seq = row.seq
        if seq < expected:  # only a position before the first, 0 or less, can be below
            return problem(seq, "inserted", f"entry {seq} was inserted before entry 1")
        if seq > expected:
            return problem(
                expected,
                "removed",
                f"entry {expected} was removed: the chain goes from {expected - 1} to {seq}",
            )
        if _row_hash(row) != row.hash:
            return problem(seq, "changed", f"entry {seq} was changed: its hash does not match")
        if row.prev_hash != prev:
            # This row is self-consistent, so the one before it is what changed (or this one
            # was written in place of the original with a new hash).
            return problem(
                seq - 1,
                "changed",
                f"entry {seq - 1} was changed: entry {seq} holds a different hash for it",
            )
        count += 1
        prev, expected = row.hash, seq + 1
    last = expected - 1
    if head_seq > last:
        return problem(
            last + 1,
            "removed",
            f"entry {last + 1} was removed: the head records {head_seq} entries, the table ends"
            f" at {last}",
        )
    if head_seq < last:
        return problem(
            head_seq + 1,
            "inserted",
            f"entry {head_seq + 1} was inserted after the head (which records {head_seq})",
        )
    if head_hash != prev:
        return problem(last, "changed", f"entry {last} was changed: the head holds another hash")
    return Verification(count, head_seq, head_hash)


# Reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What `list_entries` and the admin page filter on (empty means any)."""

    actor: str = ""
    action: str = ""
    document_id: int | None = None
    nhs_number: str = ""
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session, filters: Filters, *, limit: int = 100, before_seq: int | None = None
) -> list[AuditEntry]:
    """Entries matching the filters, newest first; `before_seq` pages further back."""
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.action:
        # "admin" matches every administrative action, "gp" every GP read.
        query = query.where(
            (AuditEntry.action == filters.action)
            | AuditEntry.action.startswith(filters.action + ".", autoescape=True)
        )
    if filters.document_id is not None:
        query = query.where(AuditEntry.document_id == filters.document_id)
    if filters.nhs_number:
        query = query.where(AuditEntry.nhs_number == filters.nhs_number.replace(" ", ""))
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))


def subject_access(session: Session, nhs_number: str) -> list[AuditEntry]:
    """Every read of a patient's documents, by clinicians (pages) and GP systems, oldest first:
    the answer to "who has seen my record"."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.nhs_number == nhs_number.replace(" ", ""),
                AuditEntry.action.in_([a.value for a in READS]),
            )
            .order_by(AuditEntry.seq)
        )
    )


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """An entry as plain data (the CLI's --json, the admin page)."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "document_id": entry.document_id,
        "message_id": entry.message_id,
        "nhs_number": entry.nhs_number,
        "practice": entry.practice,
        "detail": json.loads(entry.detail),
        "hash": entry.hash,
    }
