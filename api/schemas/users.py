"""Adding an account from the administrators' page."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.base import FormSchema
from flagging.gp_reads import MAX_SEQ


class UserFormSchema(FormSchema):
    username = fields.Str(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,99}$",
            error="Use 3 to 100 letters, digits and . _ @ -",
        ),
        error_messages={"required": "Enter a username"},
    )
    display_name = fields.Str(
        required=True,
        validate=validate.Length(max=200),
        error_messages={"required": "Enter the person's name"},
    )
    role = fields.Str(required=True, validate=validate.OneOf(["clinician", "admin"]))
    sender_id = fields.Int(strict=False, validate=validate.Range(min=1, max=MAX_SEQ))
    clinician_code = fields.Str(load_default="", validate=validate.Length(max=100))

    @validates_schema
    def clinician_has_trust(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("role") == "clinician" and not data.get("sender_id"):
            raise ValidationError("Choose the clinician's trust", "sender_id")
        if data.get("role") == "admin" and data.get("clinician_code"):
            raise ValidationError("Administrators have no clinician code", "clinician_code")
