"""Registering a practice, and routing an unroutable document to one."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.base import FormSchema

ODS_PRACTICE = validate.Regexp(
    r"^[A-Za-z]\d{5}$", error="Enter the practice's ODS code: a letter and 5 digits, like A81001"
)


class PracticeFormSchema(FormSchema):
    ods_code = fields.Str(
        required=True, validate=ODS_PRACTICE, error_messages={"required": "Enter an ODS code"}
    )
    name = fields.Str(load_default="", validate=validate.Length(max=200))


class RouteFormSchema(FormSchema):
    practice = fields.Str(
        required=True,
        validate=ODS_PRACTICE,
        error_messages={"required": "Enter the practice's ODS code"},
    )
