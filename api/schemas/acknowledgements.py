"""A GP system's acknowledgement of the events it has received."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from flagging.gp_reads import MAX_SEQ


class AcknowledgementRequestSchema(Schema):
    up_to = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=MAX_SEQ),
        metadata={"description": "Every event up to and including this number was received."},
    )


class AcknowledgementSchema(Schema):
    practice = fields.String(required=True)
    acknowledged_seq = fields.Integer(
        required=True, metadata={"description": "The highest number acknowledged so far."}
    )
    acknowledged_at = fields.DateTime(required=True)
    last_event = fields.Integer(
        required=True, metadata={"description": "The number of the practice's latest event."}
    )
