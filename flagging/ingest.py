"""Use case of the inbound path: store the documents a message carries (flagging/receive.py

Called once per message inside the transaction its entry point owns; they never commit. This
is the service's hot path (every message of every connection), so it runs plain SQL on the
transaction's connection (see flagging/storage/rawsql.py for why and what it costs) and decides each
new version's visibility with the pure `initial_visibility` before writing any row, so each
row is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flagging import store
from flagging.feed import defer_event, event_for_new_version
from flagging.models import (
    DocumentStatus,
    Reason,
    Source,
    VersionChange,
    Visibility,
)
from flagging.organisations import UNKNOWN_PRACTICE, SenderPolicy
from flagging.received import DocumentInput
from flagging.screening import Hit, active_rules, cached_rules
from flagging.spans import join_spans
from flagging.storage.rawsql import Raw
from flagging.store import bounded_key
from flagging.visibility import Initial, Previous, SourceFlag, initial_visibility


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
    if rules is None or (doc.content is None and doc.content_base64 is None):
        return None  # no content of its own (a T03 keeps the text before it), or no rules yet
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


# The thread a version joins: the one holding its own number, else its parent's. Two
# equality lookups, so that both columns of ix_document_versions_sender_number are index
# conditions in every plan: PostgreSQL's generic plan for `document_number IN (:number,
# :parent)` kept only sender_id as the condition and read every version of the sender (on a
# fresh database, before ANALYZE, and as the table grew).
_THREAD_OF = (
    "SELECT COALESCE((SELECT document_id FROM document_versions WHERE sender_id = :sender"
    " AND document_number = :number LIMIT 1), (SELECT document_id FROM document_versions"
    " WHERE sender_id = :sender AND document_number = :parent LIMIT 1))"
)
_PRACTICE_BY_CODE = "SELECT id, feed_mode FROM practices WHERE ods_code = :code"
_PRACTICE_MODE = "SELECT feed_mode FROM practices WHERE id = :id"
_WINDOW = "SELECT minutes FROM review_windows WHERE sender_id = :sender AND document_type = :type"
_DOCUMENT = (
    "SELECT latest_version, revision, published, practice_id, auto_release FROM documents"
    " WHERE id = :id"
)
_PREVIOUS = (
    "SELECT id, visibility, visibility_source, reason, withhold_until, content, content_type,"
    " content_spans, message_id FROM document_versions"
    " WHERE document_id = :document AND version = :version"
)
_MESSAGE_BYTES = "SELECT raw FROM inbound_messages WHERE id = :id"
# The latest decision by a person or the clock, skipping those that messages made: whether
# a person's withholding still stands (rarely run: only when a message asks to release).
_LAST_PERSON_DECISION = (
    "SELECT source, visibility FROM decisions WHERE document_id = :document"
    " AND source NOT IN ('message', 'screening') ORDER BY id DESC LIMIT 1"
)


def store_document(
    raw: Raw,
    *,
    sender: SenderPolicy,
    message_id: int,
    doc: DocumentInput,
    now: datetime,
    screened: Screened | None = None,
    message: bytes = b"",
) -> int:
    """Add a version to its thread (found by its number or its parent's) or start a thread;
    give it its first visibility; put it into the practice's feed. Returns the document id.

    `screened` is `screen_ahead(doc)`, if it was called; `message` the bytes of the message,
    where `doc.content_spans` finds its text."""
    doc = doc.decoded()  # a rendition the listener did not keep as spans (Arrival.with_spans)
    thread = _thread_params(sender.id, doc)
    number, document_id = thread["number"], raw.scalar(_THREAD_OF, thread)
    content, content_type, spans = doc.content, doc.content_type, doc.content_spans
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
        if content is None and spans is None and not doc.cancel:
            # A status change without content (T03) keeps the text of the version before it:
            # a copy, as the spans of that text are in another message.
            content, content_type = before[5], before[6]
            if before[7] is not None:
                earlier = raw.scalar(_MESSAGE_BYTES, {"id": before[8]})
                content = join_spans(bytes(earlier), before[7])
        version_number = latest + 1
        feed_mode = _feed_mode(raw, practice_id) if practice_id else ""
        change = VersionChange.CANCEL if doc.cancel else doc.change or VersionChange.CORRECTION

    minutes = raw.memo(
        ("window", sender.id, doc.document_type),
        lambda: raw.scalar(_WINDOW, {"sender": sender.id, "type": doc.document_type}),
    )
    window = timedelta(minutes=sender.review_window_minutes if minutes is None else minutes)
    rules = active_rules(raw)
    own = content is doc.content  # this document's text, not the version before's
    if screened is not None and screened.fingerprint == rules.fingerprint and own:
        hits = screened.hits
    else:
        if own and spans is not None and content_type.startswith("text/"):
            content = join_spans(message, spans)  # only text is screened: a PDF stays as it is
        hits = rules.screen(_text(content, content_type), doc.document_type, doc.specialty)
    if not own:
        spans = None
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
        "document_type": store.document_cut(doc.document_type, "document_type"),
        "title": store.document_cut(doc.title, "title"),
        "author_code": store.document_cut(doc.author_code, "author_code"),
        "specialty": store.document_cut(doc.specialty, "specialty"),
        "visibility": initial.visibility.value,
        "due": raw.timestamp(initial.review_due_at),
        "auto_release": initial.auto_release,
        "until": raw.timestamp(initial.withhold_until),
        "published": document_published,
        "now": raw.timestamp(now),
    }
    version = _version_params(
        raw,
        doc,
        initial,
        common,
        version_number=version_number,
        message_id=message_id,
        sender_id=sender.id,
        change=change,
        content=None if spans is not None else content,
        spans=spans,
        content_type=content_type,
        published=version_published,
        now=now,
    )
    version_id: int | None = None
    if document_id is not None:
        raw.execute(
            store.UPDATE_DOCUMENT,
            {**common, "id": document_id, "version": version_number, "cancel": doc.cancel},
        )
    else:
        new = {
            **common,
            "sender": sender.id,
            "number": number,
            "kind": doc.kind,
            "status": (DocumentStatus.WITHDRAWN if doc.cancel else DocumentStatus.CURRENT).value,
            "nhs_number": doc.patient.nhs_number,
            "family_name": store.document_cut(doc.patient.family_name, "family_name"),
            "given_name": store.document_cut(doc.patient.given_name, "given_name"),
            "birth_date": raw.date(doc.patient.birth_date),
            "practice_code": store.document_cut(doc.practice_ods_code, "practice_ods_code"),
            "practice": practice_id,
        }
        if raw.postgres:  # one statement, and one round trip, for both
            ids = raw.one(store.INSERT_DOCUMENT_AND_VERSION, {**new, **version})
            assert ids is not None
            document_id, version_id = int(ids[0]), int(ids[1])
        else:
            document_id = raw.insert(store.INSERT_DOCUMENT, new)
    if version_id is None:
        version_id = raw.insert(store.INSERT_VERSION, {**version, "document": document_id})
    if initial.source is not None:
        store.add_decision(
            raw,
            document_id=document_id,
            version_id=version_id,
            visibility=initial.visibility.value,
            source=initial.source.value,
            actor=initial.decided_by,
            decided_at=initial.decided_at or now,
            reason=initial.reason,
            note=initial.note,
            withhold_until=initial.withhold_until,
        )
    if doc.cancel and version_number > 1:
        withdraw = {
            "document": document_id,
            "version": version_number,
            "reason": initial.reason,
            "withdrawn": initial.reason,
            "note": initial.note,
            "source": Source.MESSAGE.value,
            "by_name": store.decision_cut(initial.decided_by.name, "decided_by_name"),
            "at": raw.timestamp(now),
        }
        raw.execute(store.WITHDRAW_DECISIONS, withdraw)
        raw.execute(store.WITHDRAW_VERSIONS, withdraw)
    store.add_hits(raw, version_id, hits)
    if event is not None and practice_id is not None:
        # Numbered at the end of the transaction, so the practice's lock is held only then.
        defer_event(
            raw,
            practice_id=practice_id,
            event_type=event,
            document_id=document_id,
            version_id=version_id,
            visibility=initial.visibility.value,
            now=now,
        )
    return int(document_id)


def ask_lookups(raw: Raw, doc: DocumentInput, sender: SenderPolicy | None, thread: bool) -> None:
    """Send ahead (Raw.ahead) what `store_document` will look up for `doc`: its practice;
    once the sender is known, its review window and, if `thread`, its thread (only when no
    document stored before it in this unit can have started that thread)."""
    code = doc.practice_ods_code
    if sender is None:
        if code and code != UNKNOWN_PRACTICE:
            raw.ahead(_PRACTICE_BY_CODE, {"code": code}, ("practice", code))
        return
    raw.ahead(
        _WINDOW,
        {"sender": sender.id, "type": doc.document_type},
        ("window", sender.id, doc.document_type),
    )
    if thread:
        raw.ahead(_THREAD_OF, _thread_params(sender.id, doc))


def _thread_params(sender_id: int, doc: DocumentInput) -> dict[str, Any]:
    return {
        "sender": sender_id,
        "number": bounded_key(doc.number),
        "parent": bounded_key(doc.parent_number),
    }


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


def _version_params(
    raw: Raw,
    doc: DocumentInput,
    initial: Initial,
    common: dict[str, Any],
    *,
    version_number: int,
    message_id: int,
    sender_id: int,
    change: VersionChange,
    content: bytes | None,
    spans: str | None,
    content_type: str,
    published: bool,
    now: datetime,
) -> dict[str, Any]:
    """store.INSERT_VERSION's parameters, but for `document`."""
    decided = initial.source is not None
    return {
        **common,
        "version": version_number,
        "message": message_id,
        "sender": sender_id,
        "number": bounded_key(doc.number),
        "parent": bounded_key(doc.parent_number),
        "event": doc.event,
        "change": change.value,
        "author_name": store.version_cut(doc.author_name, "author_name"),
        "provider": store.version_cut(doc.provider, "provider"),
        "origination_time": raw.timestamp(doc.origination_time),
        "completion_status": store.version_cut(doc.completion_status, "completion_status"),
        "confidentiality": store.version_cut(doc.confidentiality, "confidentiality"),
        "availability": store.version_cut(doc.availability, "availability"),
        "placer_number": store.version_cut(doc.placer_number, "placer_number"),
        "content_type": store.version_cut(content_type, "content_type"),
        "content": content,
        "content_spans": spans,
        "source": initial.source.value if initial.source else "",
        "reason": initial.reason,
        "decided_at": raw.timestamp(initial.decided_at or now) if decided else None,
        "decided_by": (initial.decided_by.name or initial.decided_by.code) if decided else "",
        "published": published,
    }
