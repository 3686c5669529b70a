"""A practice's feed: the query of a poll and the page it returns."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from flagging.feed import MAX_PAGE
from flagging.gp_reads import MAX_SEQ
from flagging.models import EventType, Visibility

EVENT_TYPES = [e.value for e in EventType]
VISIBILITIES = [v.value for v in Visibility]


class FeedQuerySchema(Schema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=MAX_SEQ),
        metadata={
            "description": "Return events numbered after this one (the `next_after` of "
            "the previous page; 0 for the start of the feed)."
        },
    )
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"At most this many events (1 to {MAX_PAGE})."},
    )


class FeedEventSchema(Schema):
    seq = fields.Integer(
        required=True,
        metadata={
            "description": "The event's number in the practice's feed: 1, 2, 3... "
            "without gaps, in commit order."
        },
    )
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    document_id = fields.Integer(required=True)
    version = fields.Integer(
        required=True, metadata={"description": "The document version the event is about."}
    )
    version_id = fields.Integer(required=True)
    visibility = fields.String(
        required=True,
        validate=validate.OneOf(VISIBILITIES),
        metadata={
            "description": "The version's visibility when the event happened: pending "
            "and withheld must not be shown to the patient (NOPAT)."
        },
    )
    occurred_at = fields.DateTime(required=True)
    document = fields.String(
        required=True, metadata={"description": "The document's metadata URL (its current state)."}
    )


class FeedPageSchema(Schema):
    practice = fields.String(required=True, metadata={"example": "A81001"})
    events = fields.List(fields.Nested(FeedEventSchema), required=True)
    next_after = fields.Integer(
        required=True,
        metadata={
            "description": "Pass as `after` in the next poll (the last event's number, or "
            "`after` itself when no event was returned)."
        },
    )
    more = fields.Boolean(
        required=True, metadata={"description": "True when more events wait: poll again now."}
    )


def feed_page_data(
    practice: str, events: list[Any], next_after: int, more: bool, prefix: str
) -> dict[str, Any]:
    """What `FeedPageSchema().dump` gives for a page, built directly.

    A poll is the service's hottest request (DESIGN.md: polls outnumber documents), and
    dumping 100 events field by field through marshmallow costs as much as the rest of the
    request; tests/api/test_gp_feed.py checks that this stays equal to the schema's dump.
    `prefix` is the document URL without its id.
    """
    return {
        "events": [
            {
                "document": f"{prefix}{e.document_id}",
                "document_id": e.document_id,
                "occurred_at": e.occurred_at.isoformat(),
                "seq": e.seq,
                "type": e.type,
                "version": e.version,
                "version_id": e.version_id,
                "visibility": e.visibility,
            }
            for e in events
        ],
        "more": more,
        "next_after": next_after,
        "practice": practice,
    }
