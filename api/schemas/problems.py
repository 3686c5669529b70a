"""RFC 9457 problem details, the one error shape of every JSON endpoint (for the OpenAPI doc)."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    """An error: what went wrong, for people (`title`, `detail`) and programs (`status`)."""

    class Meta:
        # Problem details may carry extension members (RFC 9457 section 3.2).
        unknown = "include"

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(
        metadata={"description": "For a 400: each invalid parameter with what is wrong with it"}
    )
