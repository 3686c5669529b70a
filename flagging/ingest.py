"""Use cases of the inbound path: record every receipt, store the documents a message carries.

Called once per message inside the transaction its entry point owns; they never commit. This
is the service's hot path (every message of every connection), so it runs plain SQL on the
transaction's connection (see flagging/storage/rawsql.py for why and what it costs) and decides each
new version's visibility with the pure `initial_visibility` before writing any row, so each
row is written once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flagging.feed import append_event, event_for_new_version
from flagging.models import (
    DocumentStatus,
    MessageOutcome,
    Reason,
    Source,
    VersionChange,
    Visibility,
)
from flagging.organisations import UNKNOWN_PRACTICE, SenderPolicy
from flagging.received import DocumentInput, Problem, Receipt
from flagging.screening import Hit, active_rules, cached_rules
from flagging.storage.rawsql import Raw
from flagging.visibility import Initial, Previous, SourceFlag, initial_visibility


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class AcceptedMessage:
    """What a resend is compared with: the first accepted message for a sender and MSH-10."""

    id: int
    content_hash: str
    ack: bytes | None


_FIND_ACCEPTED = (
    "SELECT id, content_hash, ack FROM inbound_messages"
    " WHERE sender_id = :sender AND control_key = :control"
)


# The longest key a column holds (String(199)): longer values are stored as a prefix and a
# hash of the whole value, so that storing and looking up agree at any length.
KEY_LENGTH = 199
_KEY_PREFIX = KEY_LENGTH - 65


def bounded_key(value: str) -> str:
    """`value` itself when it fits a key column, else its first characters, "#" and the
    SHA-256 of the whole value: distinct values stay distinct, equal ones stay equal."""
    if len(value) <= KEY_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{value[:_KEY_PREFIX]}#{digest}"


def _column(value: str, limit: int) -> str:
    """A display column's value: bounded, and without NUL, which PostgreSQL text refuses
    (the raw bytes keep what was sent)."""
    return value.replace("\x00", "")[:limit]


def find_accepted(raw: Raw, sender_id: int, control_id: str) -> AcceptedMessage | None:
    row = raw.one(_FIND_ACCEPTED, {"sender": sender_id, "control": bounded_key(control_id)})
    if row is None:
        return None
    return AcceptedMessage(row[0], row[1], bytes(row[2]) if row[2] is not None else None)


_INSERT_MESSAGE = (
    "INSERT INTO inbound_messages (received_at, transport, peer, raw, size, content_hash,"
    " sender_id, sending_facility, sending_application, control_id, control_key, message_type,"
    " version, outcome, ack_code, ack, error_code, error_location, error_text, duplicate_of_id)"
    " VALUES (:received_at, :transport, :peer, :raw, :size, :content_hash, :sender_id,"
    " :sending_facility, :sending_application, :control_id, :control_key, :message_type,"
    " :version, :outcome, :ack_code, :ack, :error_code, :error_location, :error_text,"
    " :duplicate_of_id)"
)


def record_message(
    raw: Raw,
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
    accepted = outcome is MessageOutcome.ACCEPTED
    params = {
        "received_at": raw.timestamp(receipt.received_at),
        "transport": receipt.transport,
        "peer": _column(receipt.peer, 100),
        # A resend's bytes are those of the message it repeats: keep one copy.
        "raw": None if duplicate_of else receipt.raw,
        "size": len(receipt.raw) if size is None else size,
        "content_hash": duplicate_of.content_hash if duplicate_of else content_hash(receipt.raw),
        "sender_id": sender_id,
        "sending_facility": _column(receipt.sending_facility, 180),
        "sending_application": _column(receipt.sending_application, 180),
        "control_id": _column(receipt.control_id, 199),
        # The first accepted message for a sender and MSH-10 claims the key (unique index).
        "control_key": bounded_key(receipt.control_id) if accepted and receipt.control_id else None,
        "message_type": _column(receipt.message_type, 20),
        "version": _column(receipt.version, 20),
        "outcome": outcome.value,
        "ack_code": ack_code,
        "ack": ack,
        "error_code": problem.code if problem else "",
        "error_location": _column(problem.location, 40) if problem else "",
        "error_text": _column(problem.text, 2000) if problem else "",
        "duplicate_of_id": duplicate_of.id if duplicate_of else None,
    }
    return raw.insert(_INSERT_MESSAGE, params)


@dataclass(frozen=True)
class Screened:
    """A document's own text screened with one rule set, before the writer's transaction."""

    fingerprint: tuple[object, ...]  # of the rules used (RuleSet.fingerprint)
    hits: list[Hit]


def screen_ahead(doc: DocumentInput) -> Screened | None:
    """Screen a document with the rules this process last saw, outside the writer lock (it is
    a tenth of a millisecond a letter); `store_document` keeps the hits if those rules are
    still the active ones, and screens again otherwise."""
    rules = cached_rules()
    if rules is None or doc.content is None:
        return None
    text = _text(doc.content, doc.content_type)
    return Screened(rules.fingerprint, rules.screen(text, doc.document_type, doc.specialty))


def _text(content: bytes | None, content_type: str) -> str:
    if content and content_type.startswith("text/"):
        return bytes(content).decode("utf-8", "replace")
    return ""


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


_THREAD_OF = (
    "SELECT document_id FROM document_versions WHERE sender_id = :sender"
    " AND document_number IN (:number, :parent) ORDER BY document_number = :number DESC LIMIT 1"
)
_PRACTICE_BY_CODE = "SELECT id, feed_mode FROM practices WHERE ods_code = :code"
_PRACTICE_MODE = "SELECT feed_mode FROM practices WHERE id = :id"
_WINDOW = "SELECT minutes FROM review_windows WHERE sender_id = :sender AND document_type = :type"
_DOCUMENT = (
    "SELECT latest_version, revision, published, practice_id, auto_release FROM documents"
    " WHERE id = :id"
)
_PREVIOUS = (
    "SELECT id, visibility, visibility_source, reason, withhold_until, content, content_type"
    " FROM document_versions WHERE document_id = :document AND version = :version"
)
# The latest decision by a person or the clock, skipping those that messages made: whether
# a person's withholding still stands (rarely run: only when a message asks to release).
_LAST_PERSON_DECISION = (
    "SELECT source, visibility FROM decisions WHERE document_id = :document"
    " AND source NOT IN ('message', 'screening') ORDER BY id DESC LIMIT 1"
)
_INSERT_DOCUMENT = (
    "INSERT INTO documents (sender_id, document_number, kind, status, nhs_number, family_name,"
    " given_name, birth_date, practice_ods_code, practice_id, latest_version, document_type,"
    " title, author_code, specialty, visibility, review_due_at, auto_release, withhold_until,"
    " revision, published, created_at, updated_at) VALUES (:sender, :number, :kind, :status,"
    " :nhs_number, :family_name, :given_name, :birth_date, :practice_code, :practice, 1,"
    " :document_type, :title, :author_code, :specialty, :visibility, :due, :auto_release,"
    " :until, 1, :published, :now, :now)"
)
_UPDATE_DOCUMENT = (
    "UPDATE documents SET latest_version = :version, revision = revision + 1,"
    " status = CASE WHEN :cancel THEN 'withdrawn' ELSE status END, document_type = :document_type,"
    " title = :title, author_code = :author_code, specialty = :specialty,"
    " visibility = :visibility, review_due_at = :due, auto_release = :auto_release,"
    " withhold_until = :until, published = :published, updated_at = :now WHERE id = :id"
)
_INSERT_VERSION = (
    "INSERT INTO document_versions (document_id, version, message_id, sender_id,"
    " document_number, parent_number, event, change, document_type, title, author_code,"
    " author_name, provider, origination_time, completion_status, confidentiality,"
    " availability, placer_number, content_type, content, specialty, visibility,"
    " visibility_source, reason, withhold_until, decided_at, decided_by, published, created_at)"
    " VALUES (:document, :version, :message, :sender, :number, :parent, :event, :change,"
    " :document_type, :title, :author_code, :author_name, :provider, :origination_time,"
    " :completion_status, :confidentiality, :availability, :placer_number, :content_type,"
    " :content, :specialty, :visibility, :source, :reason, :until, :decided_at, :decided_by,"
    " :published, :now)"
)
_INSERT_DECISION = (
    "INSERT INTO decisions (document_id, version_id, visibility, reason, note, withhold_until,"
    " source, user_id, decided_by_code, decided_by_name, decided_at) VALUES (:document,"
    " :version, :visibility, :reason, :note, :until, :source, NULL, :by_code, :by_name, :at)"
)
# A cancel withholds every earlier version too (DESIGN.md rule 8): a practice that filed an
# earlier version, or asks for it by number, must read "do not show" there as well.
# The values are cast, and the WHERE has a parameter of its own: PostgreSQL must deduce one type
# for each parameter, and a value in a SELECT list says nothing of the column it goes into.
_WITHDRAW_DECISIONS = (
    "INSERT INTO decisions (document_id, version_id, visibility, reason, note, withhold_until,"
    " source, user_id, decided_by_code, decided_by_name, decided_at) SELECT document_id, id,"
    " 'withheld', CAST(:reason AS VARCHAR(20)), CAST(:note AS TEXT), NULL,"
    " CAST(:source AS VARCHAR(15)), NULL, '', CAST(:by_name AS VARCHAR(200)), :at"
    " FROM document_versions WHERE document_id = :document AND version < :version"
    " AND NOT (visibility = 'withheld' AND reason = :withdrawn)"
)
_WITHDRAW_VERSIONS = (
    "UPDATE document_versions SET visibility = 'withheld', visibility_source = :source,"
    " reason = :reason, withhold_until = NULL, decided_at = :at, decided_by = :by_name"
    " WHERE document_id = :document AND version < :version"
    " AND NOT (visibility = 'withheld' AND reason = :withdrawn)"
)
_INSERT_HIT = (
    'INSERT INTO screening_hits (version_id, rule_id, start, "end")'
    " VALUES (:version, :rule, :start, :end)"
)


def store_document(
    raw: Raw,
    *,
    sender: SenderPolicy,
    message_id: int,
    doc: DocumentInput,
    now: datetime,
    screened: Screened | None = None,
) -> int:
    """Add a version to its thread (found by its number or its parent's) or start a thread;
    give it its first visibility; put it into the practice's feed. Returns the document id.

    `screened` is `screen_ahead(doc)`, if it was called."""
    number, parent_number = bounded_key(doc.number), bounded_key(doc.parent_number)
    document_id = raw.scalar(
        _THREAD_OF,
        {"sender": sender.id, "number": number, "parent": parent_number},
    )
    content, content_type = doc.content, doc.content_type
    flag = _source_flag(doc, sender.txa18_v_policy)
    previous: Previous | None = None
    if document_id is None:
        version_number, published = 1, False
        practice_id, feed_mode = None, ""
        code = doc.practice_ods_code
        if code and code != UNKNOWN_PRACTICE:
            found = raw.memo(("practice", code), lambda: raw.one(_PRACTICE_BY_CODE, {"code": code}))
            if found is not None:
                practice_id, feed_mode = found
        change = doc.change or VersionChange.ORIGINAL
    else:
        # Locks the thread on PostgreSQL, so concurrent versions are numbered one after another.
        row = raw.one(_DOCUMENT + raw.for_update(), {"id": document_id})
        assert row is not None
        latest, _revision, published, practice_id, auto_release = row
        before = raw.one(_PREVIOUS, {"document": document_id, "version": latest})
        assert before is not None
        previous = Previous(
            version=latest,
            visibility=before[1],
            source=before[2],
            reason=before[3],
            withhold_until=raw.read_timestamp(before[4]),
            held=not auto_release,
            person_withheld=(
                before[1] == Visibility.WITHHELD
                and flag is not None
                and flag.visibility != Visibility.WITHHELD
                and _person_withheld(raw, document_id)
            ),
        )
        if content is None and not doc.cancel:
            # A status change without content (T03) keeps the text of the version before it.
            content, content_type = before[5], before[6]
        version_number = latest + 1
        feed_mode = _feed_mode(raw, practice_id) if practice_id else ""
        change = VersionChange.CANCEL if doc.cancel else doc.change or VersionChange.CORRECTION

    minutes = raw.memo(
        ("window", sender.id, doc.document_type),
        lambda: raw.scalar(_WINDOW, {"sender": sender.id, "type": doc.document_type}),
    )
    window = timedelta(minutes=sender.review_window_minutes if minutes is None else minutes)
    rules = active_rules(raw)
    if (
        screened is not None
        and screened.fingerprint == rules.fingerprint
        and content is doc.content
    ):
        hits = screened.hits
    else:
        hits = rules.screen(_text(content, content_type), doc.document_type, doc.specialty)
    initial = initial_visibility(
        cancel=doc.cancel,
        flag=flag,
        previous=previous,
        screened=bool(hits),
        window=window,
        now=now,
    )
    event = None
    if practice_id is not None:
        event = event_for_new_version(
            cancel=doc.cancel,
            visibility=initial.visibility,
            feed_mode=feed_mode,
            document_published=bool(published),
        )
    version_published = practice_id is not None and (event is not None or doc.cancel)
    document_published = bool(published) or (event is not None)
    common: dict[str, Any] = {
        "document_type": doc.document_type[:250],
        "title": doc.title[:250],
        "author_code": doc.author_code[:100],
        "specialty": doc.specialty[:100],
        "visibility": initial.visibility.value,
        "due": raw.timestamp(initial.review_due_at),
        "auto_release": initial.auto_release,
        "until": raw.timestamp(initial.withhold_until),
        "published": document_published,
        "now": raw.timestamp(now),
    }
    if document_id is None:
        document_id = raw.insert(
            _INSERT_DOCUMENT,
            {
                **common,
                "sender": sender.id,
                "number": number,
                "kind": doc.kind,
                "status": (
                    DocumentStatus.WITHDRAWN if doc.cancel else DocumentStatus.CURRENT
                ).value,
                "nhs_number": doc.patient.nhs_number,
                "family_name": doc.patient.family_name[:100],
                "given_name": doc.patient.given_name[:100],
                "birth_date": raw.date(doc.patient.birth_date),
                "practice_code": doc.practice_ods_code[:20],
                "practice": practice_id,
            },
        )
    else:
        raw.execute(
            _UPDATE_DOCUMENT,
            {**common, "id": document_id, "version": version_number, "cancel": doc.cancel},
        )
    version_id = _insert_version(
        raw,
        doc,
        initial,
        common,
        document_id=document_id,
        version_number=version_number,
        message_id=message_id,
        sender_id=sender.id,
        change=change,
        content=content,
        content_type=content_type,
        published=version_published,
        now=now,
    )
    if initial.source is not None:
        raw.execute(
            _INSERT_DECISION,
            {
                "document": document_id,
                "version": version_id,
                "visibility": initial.visibility.value,
                "reason": initial.reason,
                "note": initial.note,
                "until": raw.timestamp(initial.withhold_until),
                "source": initial.source.value,
                "by_code": initial.decided_by.code[:100],
                "by_name": initial.decided_by.name[:200],
                "at": raw.timestamp(initial.decided_at or now),
            },
        )
    if doc.cancel and version_number > 1:
        withdraw = {
            "document": document_id,
            "version": version_number,
            "reason": initial.reason,
            "withdrawn": initial.reason,
            "note": initial.note,
            "source": Source.MESSAGE.value,
            "by_name": initial.decided_by.name[:200],
            "at": raw.timestamp(now),
        }
        raw.execute(_WITHDRAW_DECISIONS, withdraw)
        raw.execute(_WITHDRAW_VERSIONS, withdraw)
    for hit in hits:
        raw.execute(
            _INSERT_HIT,
            {"version": version_id, "rule": hit.rule_id, "start": hit.start, "end": hit.end},
        )
    if event is not None and practice_id is not None:
        append_event(
            raw,
            practice_id=practice_id,
            event_type=event,
            document_id=document_id,
            version_id=version_id,
            visibility=initial.visibility.value,
            now=now,
        )
    return int(document_id)


def _person_withheld(raw: Raw, document_id: int) -> bool:
    row = raw.one(_LAST_PERSON_DECISION, {"document": document_id})
    return row is not None and (row[0], row[1]) == (
        Source.CLINICIAN.value,
        Visibility.WITHHELD.value,
    )


def _feed_mode(raw: Raw, practice_id: int) -> str:
    return str(
        raw.memo(
            ("feed mode", practice_id), lambda: raw.scalar(_PRACTICE_MODE, {"id": practice_id})
        )
    )


def _insert_version(
    raw: Raw,
    doc: DocumentInput,
    initial: Initial,
    common: dict[str, Any],
    *,
    document_id: int,
    version_number: int,
    message_id: int,
    sender_id: int,
    change: VersionChange,
    content: bytes | None,
    content_type: str,
    published: bool,
    now: datetime,
) -> int:
    decided = initial.source is not None
    return raw.insert(
        _INSERT_VERSION,
        {
            **common,
            "document": document_id,
            "version": version_number,
            "message": message_id,
            "sender": sender_id,
            "number": bounded_key(doc.number),
            "parent": bounded_key(doc.parent_number),
            "event": doc.event,
            "change": change.value,
            "author_name": doc.author_name[:250],
            "provider": doc.provider[:250],
            "origination_time": raw.timestamp(doc.origination_time),
            "completion_status": doc.completion_status[:5],
            "confidentiality": doc.confidentiality[:5],
            "availability": doc.availability[:5],
            "placer_number": doc.placer_number[:199],
            "content_type": content_type[:100],
            "content": content,
            "source": initial.source.value if initial.source else "",
            "reason": initial.reason,
            "decided_at": raw.timestamp(initial.decided_at or now) if decided else None,
            "decided_by": (initial.decided_by.name or initial.decided_by.code) if decided else "",
            "published": published,
        },
    )
