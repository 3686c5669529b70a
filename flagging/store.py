"""The one place documents, versions, decisions and screening hits are written.

Every caller goes through here: ingest (flagging/ingest.py, the hot path), decisions by
people, hospital systems, the review-window and expiry jobs (flagging/visibility.py), and
withdrawals. Feed events have their own single writer, flagging.feed.append_event.

The statements are plain SQL run on the transaction's DBAPI connection (storage/rawsql.py says
why: the ORM costs milliseconds a message), but they are built once, at import, from the
models' Table objects, so a column renamed in a model breaks here at import rather than at
run time; and values are cut to the lengths the models declare, never to copied literals.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

from flagging.models import Decision, Document, DocumentVersion, ScreeningHit, max_length
from flagging.storage.rawsql import Raw

if TYPE_CHECKING:  # visibility -> store: types only, no cycle at run time
    from flagging.visibility import Actor


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def insert_sql(model: type[Any], columns: Iterable[str], **literal: str) -> str:
    """`INSERT INTO table (columns) VALUES (:column, ...)` for the model's table; a column in
    `literal` gets that SQL instead of a parameter. Every name is checked against the table."""
    table = _table(model)
    names = [*columns, *literal]
    for name in names:
        table.c[name]
    values = [literal.get(name, f":{name}") for name in names]
    quoted = [f'"{name}"' if name == "end" else name for name in names]
    # Only the model's own table and column names are interpolated, never a value.
    return f"INSERT INTO {table.name} ({', '.join(quoted)}) VALUES ({', '.join(values)})"  # noqa: S608


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


class Cut:
    """A model's String columns' lengths: `cut(value, "title")` is `value` bounded to it."""

    def __init__(self, model: type[Any]) -> None:
        table = _table(model)
        self._lengths = {
            column.name: max_length(model, column.name)
            for column in table.c
            if isinstance(getattr(column.type, "length", None), int)
        }

    def __call__(self, value: str, column: str) -> str:
        return value[: self._lengths[column]]

    def length(self, column: str) -> int:
        return self._lengths[column]


document_cut = Cut(Document)
version_cut = Cut(DocumentVersion)
decision_cut = Cut(Decision)

_DECISION_COLUMNS = (
    "document_id",
    "version_id",
    "visibility",
    "reason",
    "note",
    "withhold_until",
    "source",
    "user_id",
    "sender_id",
    "sender_token_id",
    "decided_by_code",
    "decided_by_name",
    "decided_at",
)
INSERT_DECISION = insert_sql(Decision, _DECISION_COLUMNS)
INSERT_HIT = insert_sql(ScreeningHit, ("version_id", "rule_id", "start", "end"))


def add_decision(
    raw: Raw,
    *,
    document_id: int,
    version_id: int,
    visibility: str,
    source: str,
    actor: Actor,
    decided_at: datetime,
    reason: str = "",
    note: str = "",
    withhold_until: datetime | None = None,
) -> int:
    """Add one entry to a document's decision history; return its id."""
    return raw.insert(
        INSERT_DECISION,
        {
            "document_id": document_id,
            "version_id": version_id,
            "visibility": visibility,
            "reason": reason,
            "note": note,
            "withhold_until": raw.timestamp(withhold_until),
            "source": source,
            "user_id": actor.user_id,
            "sender_id": actor.sender_id,
            "sender_token_id": actor.sender_token_id,
            "decided_by_code": decision_cut(actor.code, "decided_by_code"),
            "decided_by_name": decision_cut(actor.name, "decided_by_name"),
            "decided_at": raw.timestamp(decided_at),
        },
    )


def add_hits(raw: Raw, version_id: int, hits: Iterable[Any]) -> None:
    """The screening rules that matched a version's text, with where."""
    for hit in hits:
        raw.execute(
            INSERT_HIT,
            {"version_id": version_id, "rule_id": hit.rule_id, "start": hit.start, "end": hit.end},
        )


INSERT_DOCUMENT = insert_sql(
    Document,
    (),
    sender_id=":sender",
    document_number=":number",
    kind=":kind",
    status=":status",
    nhs_number=":nhs_number",
    family_name=":family_name",
    given_name=":given_name",
    birth_date=":birth_date",
    practice_ods_code=":practice_code",
    practice_id=":practice",
    latest_version="1",
    document_type=":document_type",
    title=":title",
    author_code=":author_code",
    specialty=":specialty",
    visibility=":visibility",
    review_due_at=":due",
    auto_release=":auto_release",
    withhold_until=":until",
    revision="1",
    published=":published",
    created_at=":now",
    updated_at=":now",
)
UPDATE_DOCUMENT = (
    "UPDATE documents SET latest_version = :version, revision = revision + 1,"
    " status = CASE WHEN :cancel THEN 'withdrawn' ELSE status END, document_type = :document_type,"
    " title = :title, author_code = :author_code, specialty = :specialty,"
    " visibility = :visibility, review_due_at = :due, auto_release = :auto_release,"
    " withhold_until = :until, published = :published, updated_at = :now WHERE id = :id"
)
INSERT_VERSION = insert_sql(
    DocumentVersion,
    (
        "event",
        "change",
        "document_type",
        "title",
        "author_code",
        "author_name",
        "provider",
        "origination_time",
        "completion_status",
        "confidentiality",
        "availability",
        "placer_number",
        "content_type",
        "content",
        "content_spans",
        "specialty",
        "visibility",
        "reason",
        "decided_at",
        "decided_by",
        "published",
    ),
    document_id=":document",
    version=":version",
    message_id=":message",
    sender_id=":sender",
    document_number=":number",
    parent_number=":parent",
    visibility_source=":source",
    withhold_until=":until",
    created_at=":now",
)
# On PostgreSQL a new document and its first version in one statement (and one round trip):
# the version's document is the row its document's insert returns.
INSERT_DOCUMENT_AND_VERSION = (
    f"WITH document AS ({INSERT_DOCUMENT} RETURNING id) "  # noqa: S608 (no value in it)
    + re.sub(r":document\b", "(SELECT id FROM document)", INSERT_VERSION)
    + " RETURNING document_id, id"
)
# A cancel withholds every earlier version too (DESIGN.md rule 8): a practice that filed an
# earlier version, or asks for it by number, must read "do not show" there as well.
# The values are cast, and the WHERE has a parameter of its own: PostgreSQL must deduce one type
# for each parameter, and a value in a SELECT list says nothing of the column it goes into.
_DECISION_TYPES = {
    name: f"VARCHAR({decision_cut.length(name)})"
    for name in ("reason", "source", "decided_by_name")
}
# Only the model's column lengths are interpolated.
WITHDRAW_DECISIONS = (
    "INSERT INTO decisions (document_id, version_id, visibility, reason, note, withhold_until,"  # noqa: S608
    " source, user_id, decided_by_code, decided_by_name, decided_at) SELECT document_id, id,"
    f" 'withheld', CAST(:reason AS {_DECISION_TYPES['reason']}), CAST(:note AS TEXT), NULL,"
    f" CAST(:source AS {_DECISION_TYPES['source']}), NULL, '',"
    f" CAST(:by_name AS {_DECISION_TYPES['decided_by_name']}), :at"
    " FROM document_versions WHERE document_id = :document AND version < :version"
    " AND NOT (visibility = 'withheld' AND reason = :withdrawn)"
)
WITHDRAW_VERSIONS = (
    "UPDATE document_versions SET visibility = 'withheld', visibility_source = :source,"
    " reason = :reason, withhold_until = NULL, decided_at = :at, decided_by = :by_name"
    " WHERE document_id = :document AND version < :version"
    " AND NOT (visibility = 'withheld' AND reason = :withdrawn)"
)
