"""The audit trail: who received, decided, read, exported and changed what, tamper-evident.

Every entry is written in the same transaction as the change or read it records (a rolled-back
change leaves no entry; a committed one always has its entry), by identifiers only: never
document text or people's names. Entries form a hash chain: each holds the SHA-256 of its own
fields and of the entry before it (canonical JSON, sorted keys), so `verify` finds the first
entry changed, removed or inserted behind the service's back.

The chain has one head row (`audit_head`), taken under a row lock by each append, so appends
from several processes on PostgreSQL fall into one order (the commit order), and the lock is
held only from the append to the commit: callers append as late in their transaction as they
can. Appends run plain SQL (flagging/rawsql.py) because receiving a message, the hot path,
writes one; ORM callers use `record`, which runs the same statements on the session's
connection.

What the chain cannot see: someone with write access who rewrites every entry after the one
they changed, and the head too. `verify` prints the head's hash so an operator can keep it
elsewhere (a ticket, a SIEM) and compare later.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from flagging.models import AuditEntry, AuditHead, Document
from flagging.rawsql import Raw

if TYPE_CHECKING:  # flagging.inbound -> visibility -> audit: types only, no cycle at run time
    from flagging.inbound import DocumentInput, Receipt

GENESIS = "0" * 64  # the `prev_hash` of entry 1


class Action(enum.StrEnum):
    MESSAGE_RECEIVED = "message.received"
    MESSAGE_REPROCESSED = "message.reprocessed"
    DECISION = "decision.recorded"
    DOCUMENT_VIEWED = "document.viewed"  # a clinician's page
    DOCUMENT_ROUTED = "document.routed"
    GP_DOCUMENT_READ = "gp.document.read"  # metadata, HL7 v2 or FHIR representation
    GP_CONTENT_READ = "gp.content.read"
    GP_FEED_READ = "gp.feed.read"
    EXPORT = "export"
    SIGN_IN = "signin"  # outcome success or failure
    SESSION_ENDED = "session.ended"
    SENDER_CHANGED = "admin.sender"
    PRACTICE_CHANGED = "admin.practice"
    USER_CHANGED = "admin.user"
    RULE_CHANGED = "admin.rule"
    TOKEN_CHANGED = "admin.token"  # noqa: S105 (an action name, not a secret)
    REVIEW_WINDOW_CHANGED = "admin.review-window"


# What the subject access report counts as someone seeing a patient's document.
READS = (Action.DOCUMENT_VIEWED, Action.GP_DOCUMENT_READ, Action.GP_CONTENT_READ)

CLI = "cli"  # an administrator at the command line (the operating system knows who)


def user_actor(user_id: int) -> str:
    return f"user:{user_id}"


def token_actor(token_id: int) -> str:
    return f"token:{token_id}"


def sender_actor(ods_code: str) -> str:
    return f"sender:{ods_code}"


def system_actor(job: str) -> str:
    return f"system:{job}"


# Hashing ---------------------------------------------------------------------------------------


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), default=str)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    document_id: int | None,
    message_id: int | None,
    nhs_number: str,
    practice: str,
    detail: str,
    prev_hash: str,
) -> str:
    """SHA-256 of an entry's fields as canonical JSON (sorted keys, no spaces)."""
    fields = {
        "seq": seq,
        "at": _iso(at),
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "document_id": document_id,
        "message_id": message_id,
        "nhs_number": nhs_number,
        "practice": practice,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# Appending ------------------------------------------------------------------------------------

# Statements built once: the hot path runs them for every message.
_ADVANCE = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"
_START = (
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis) ON CONFLICT (id) DO NOTHING"
)
_SET_HEAD = "UPDATE audit_head SET hash = :hash WHERE id = 1"
_INSERT = (
    "INSERT INTO audit_entries (seq, at, actor, action, outcome, document_id, message_id,"
    " nhs_number, practice, detail, prev_hash, hash) VALUES (:seq, :at, :actor, :action,"
    " :outcome, :document_id, :message_id, :nhs_number, :practice, :detail, :prev_hash, :hash)"
)


def append(
    raw: Raw,
    *,
    actor: str,
    action: Action,
    outcome: str = "",
    document_id: int | None = None,
    message_id: int | None = None,
    nhs_number: str = "",
    practice: str = "",
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Add an entry to the chain inside the caller's transaction; returns its position.

    Takes the head's row lock (held until the commit), so call it last in a transaction."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    # The stored timestamp keeps microseconds; hash what will be read back.
    detail_text = canonical_detail(detail)
    head = raw.one(_ADVANCE, {})
    if head is None:  # an empty chain: its head row is made by the first append
        raw.execute(_START, {"genesis": GENESIS})
        head = raw.one(_ADVANCE, {})
        assert head is not None
    seq, prev_hash = int(head[0]), str(head[1])
    values: dict[str, Any] = {
        "seq": seq,
        "actor": actor[:120],
        "action": action.value,
        "outcome": outcome[:20],
        "document_id": document_id,
        "message_id": message_id,
        "nhs_number": nhs_number[:10],
        "practice": practice[:20],
        "detail": detail_text,
        "prev_hash": prev_hash,
    }
    digest = entry_hash(at=at, **values)
    raw.execute(_INSERT, {**values, "at": raw.timestamp(at), "hash": digest})
    raw.execute(_SET_HEAD, {"hash": digest})
    return seq


def defer(raw: Raw, **entry: Any) -> None:
    """`append` at the end of the transaction rather than now (see `flush_deferred`).

    For the group commit, whose transaction holds many messages: appending at once would take
    the chain's lock with the first message and then wait for row locks with it held, while
    another process holding such a row waits for the chain (a deadlock, on PostgreSQL)."""
    raw.deferred.append(entry)


def flush_deferred(raw: Raw) -> None:
    """Append the deferred entries, in order; the transaction's owner calls it before commit."""
    entries, raw.deferred = raw.deferred, []
    for entry in entries:
        append(raw, **entry)


def record(
    session: Session,
    *,
    actor: str,
    action: Action,
    outcome: str = "",
    document_id: int | None = None,
    message_id: int | None = None,
    nhs_number: str = "",
    practice: str = "",
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """`append` inside an ORM session's transaction (flushed first, so ids exist)."""
    session.flush()
    return append(
        Raw.on(session.connection()),
        actor=actor,
        action=action,
        outcome=outcome,
        document_id=document_id,
        message_id=message_id,
        nhs_number=nhs_number,
        practice=practice,
        detail=detail,
        at=at,
    )


def document_read(
    session: Session,
    *,
    actor: str,
    action: Action,
    document: Document,
    version: int | None = None,
    practice: str = "",
    detail: Mapping[str, Any] | None = None,
) -> int:
    """The entry for someone seeing a document (a page, a GP representation, its content)."""
    return record(
        session,
        actor=actor,
        action=action,
        document_id=document.id,
        nhs_number=document.nhs_number,
        practice=practice,
        detail={**(detail or {}), "version": version},
    )


def message_received(
    raw: Raw,
    receipt: Receipt,
    *,
    outcome: str,
    ack_code: str,
    message_id: int | None,
    registered: bool,
    documents: list[DocumentInput] | None = None,
    document_ids: list[int] | None = None,
) -> None:
    """The entry for one received frame (the ingest hot path), appended at the commit."""
    patients = {doc.patient.nhs_number for doc in documents or ()}
    defer(
        raw,
        # MSH-4 is who the frame claims to be; only a registered sender is named as an actor.
        actor=sender_actor(receipt.sending_facility) if registered else f"peer:{receipt.peer}",
        action=Action.MESSAGE_RECEIVED,
        outcome=ack_code,
        document_id=document_ids[0] if document_ids and len(document_ids) == 1 else None,
        message_id=message_id,
        nhs_number=patients.pop() if len(patients) == 1 else "",
        detail={
            "sender": receipt.sending_facility[:180],
            "control_id": receipt.control_id[:199],
            "message_type": receipt.message_type,
            "outcome": outcome,
            "transport": receipt.transport,
            "peer": receipt.peer[:100],
            "documents": document_ids or [],
        },
        at=receipt.received_at,
    )


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


def _positions(rows: Iterable[Row[Any]]) -> Iterator[list[Row[Any]]]:
    """The entries in chain order, grouped by position (an inserted row may share one)."""
    group: list[Row[Any]] = []
    for row in rows:
        if group and row.seq != group[0].seq:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def verify(session: Session) -> Verification:
    """Walk the chain from entry 1 and name the first entry changed, removed or inserted."""
    table = AuditEntry.__table__
    # Streamed (a server-side cursor on PostgreSQL), closed however the walk ends.
    rows = session.execute(
        select(table).order_by(table.c.seq, table.c.id).execution_options(yield_per=1000)
    )
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

    for group in _positions(rows):
        seq = group[0].seq
        if seq < expected:  # only a row with an id out of order can land here
            return problem(seq, "inserted", f"entry {seq} was inserted: its position is taken")
        if seq > expected:
            return problem(
                expected,
                "removed",
                f"entry {expected} was removed: the chain goes from {expected - 1} to {seq}",
            )
        genuine = [r for r in group if r.prev_hash == prev and _row_hash(r) == r.hash]
        if len(group) > 1:
            extra = next(r for r in group if not genuine or r is not genuine[0])
            return problem(
                seq,
                "inserted",
                f"entry {seq} was inserted: {len(group)} rows claim that position"
                f" (row id {extra.id} is not the one the chain holds)",
            )
        row = group[0]
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
    return list(
        session.scalars(query.order_by(AuditEntry.seq.desc(), AuditEntry.id.desc()).limit(limit))
    )


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
