"""A screening rule from the administrators' page."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.base import FormSchema
from flagging.screening import KINDS


class RuleFormSchema(FormSchema):
    name = fields.Str(load_default="", validate=validate.Length(max=200))
    kind = fields.Str(required=True, validate=validate.OneOf(list(KINDS)))
    pattern = fields.Str(
        required=True,
        validate=validate.Length(max=500),
        error_messages={"required": "Enter the word, phrase, expression or code to look for"},
    )
    category = fields.Str(load_default="", validate=validate.Length(max=50))
