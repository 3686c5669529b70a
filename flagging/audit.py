"""The audit trail: who received, decided, read, exported and changed what, tamper-evident.

Every entry is written in the same transaction as the change or read it records (a rolled-back
change leaves no entry; a committed one always has its entry), by identifiers only: never
document text or people's names. Entries form a hash chain: each holds the SHA-256 of its own
fields and of the entry before it (canonical JSON, sorted keys), so `flagging.audit_log.verify`
finds the first entry changed, removed or inserted behind the service's back.

The chain has one head row (`audit_head`), taken under a row lock by each append, so appends
from several processes on PostgreSQL fall into one order (the commit order), and the lock is
held only from the append to the commit: callers append as late in their transaction as they
can. Appends run plain SQL (flagging/storage/rawsql.py) because receiving a message, the hot path,
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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Required, TypedDict, Unpack

from sqlalchemy.orm import Session

from flagging.models import AuditEntry, Document
from flagging.storage.rawsql import Raw
from flagging.store import Cut

if TYPE_CHECKING:  # flagging.received -> visibility -> audit: types only, no cycle at run time
    from flagging.received import DocumentInput, Receipt

GENESIS = "0" * 64  # the `prev_hash` of entry 1
_cut = Cut(AuditEntry)


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


# Encoders built once: `json.dumps` with options builds a JSONEncoder each call, and the hot
# path hashes an entry for every message.
_DETAIL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_ENTRY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    return _DETAIL_JSON(detail or {})


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
    return _hash(
        {
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
    )


def _hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(_ENTRY_JSON(fields).encode()).hexdigest()


# Appending ------------------------------------------------------------------------------------

# Statements built once: the hot path runs them for every batch of messages.
_ADVANCE = "UPDATE audit_head SET seq = seq + :count WHERE id = 1 RETURNING seq, hash"
_START = (
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis) ON CONFLICT (id) DO NOTHING"
)
_SET_HEAD = "UPDATE audit_head SET hash = :hash WHERE id = 1"
_INSERT = (
    "INSERT INTO audit_entries (seq, at, actor, action, outcome, document_id, message_id,"
    " nhs_number, practice, detail, prev_hash, hash) VALUES (:seq, :at, :actor, :action,"
    " :outcome, :document_id, :message_id, :nhs_number, :practice, :detail, :prev_hash, :hash)"
)


class Entry(TypedDict, total=False):
    """What `append` takes besides the connection: one entry's fields (actor, action required)."""

    actor: Required[str]
    action: Required[Action]
    outcome: str
    document_id: int | None
    message_id: int | None
    nhs_number: str
    practice: str
    detail: Mapping[str, Any] | None
    at: datetime | None


def append(raw: Raw, **entry: Unpack[Entry]) -> int:
    """Add an entry to the chain inside the caller's transaction; returns its position.

    Takes the head's row lock (held until the commit), so call it last in a transaction."""
    return _append_all(raw, [entry])


def _append_all(raw: Raw, entries: Sequence[Mapping[str, Any]]) -> int:
    """Chain `entries` in order with three statements whatever their number (the group commit
    flushes a batch of messages at once); returns the last one's position."""
    head = raw.one(_ADVANCE, {"count": len(entries)})
    if head is None:  # an empty chain: its head row is made by the first append
        raw.execute(_START, {"genesis": GENESIS})
        head = raw.one(_ADVANCE, {"count": len(entries)})
        assert head is not None
    last, prev_hash = int(head[0]), str(head[1])
    rows = []
    for seq, entry in enumerate(entries, start=last - len(entries) + 1):
        at = (entry.get("at") or datetime.now(UTC)).astimezone(UTC)
        row: dict[str, Any] = {
            "seq": seq,
            # The stored timestamp keeps microseconds; hash what will be read back.
            "at": _iso(at),
            "actor": _cut(entry["actor"], "actor"),
            "action": entry["action"].value,
            "outcome": _cut(entry.get("outcome", ""), "outcome"),
            "document_id": entry.get("document_id"),
            "message_id": entry.get("message_id"),
            "nhs_number": _cut(entry.get("nhs_number", ""), "nhs_number"),
            "practice": _cut(entry.get("practice", ""), "practice"),
            "detail": canonical_detail(entry.get("detail")),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = _hash(row)  # the hash covers every field but itself
        row["at"] = raw.timestamp(at)
        rows.append(row)
    raw.executemany(_INSERT, rows)
    raw.execute(_SET_HEAD, {"hash": prev_hash})
    return last


def defer(raw: Raw, **entry: Unpack[Entry]) -> None:
    """`append` at the end of the transaction rather than now (see `flush_deferred`).

    For the group commit, whose transaction holds many messages: appending at once would take
    the chain's lock with the first message and then wait for row locks with it held, while
    another process holding such a row waits for the chain (a deadlock, on PostgreSQL)."""
    raw.deferred.append(entry)


def ask_head(raw: Raw) -> None:
    """Send ahead (Raw.ahead) the chain head's update that `flush_deferred` will read: after
    the practices' counters (flagging.feed.ask_numbers), in the order of the locks."""
    if raw.deferred:
        raw.ahead(_ADVANCE, {"count": len(raw.deferred)})


def flush_deferred(raw: Raw) -> None:
    """Append the deferred entries, in order; the transaction's owner calls it before commit."""
    entries, raw.deferred = raw.deferred, []
    if entries:
        _append_all(raw, entries)


def record(session: Session, **entry: Unpack[Entry]) -> int:
    """`append` inside an ORM session's transaction (flushed first, so ids exist)."""
    session.flush()
    return append(Raw.on(session.connection()), **entry)


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
