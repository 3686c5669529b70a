"""A visibility decision: from the clinicians' form, and from a hospital system as JSON."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from api.schemas.base import FormSchema
from flagging.gp_reads import MAX_SEQ
from flagging.models import Reason

REASONS = [r.value for r in Reason]
NOTE_LENGTH = 2000


class DecisionFormSchema(FormSchema):
    """The document page's form: withhold (reason, note, until) or release."""

    decision = fields.Str(
        required=True,
        validate=validate.OneOf(["withhold", "release"]),
        error_messages={"required": "Choose whether to withhold or release the document"},
    )
    reason = fields.Str(
        validate=validate.OneOf(REASONS, error="Choose a reason from the list"),
    )
    note = fields.Str(
        load_default="",
        validate=validate.Length(max=NOTE_LENGTH, error="Keep the note under 2,000 characters"),
    )
    withhold_until = fields.Date(error_messages={"invalid": "Enter a real date"})
    # Bounded like the database column, so a forged value is a form error, never an overflow.
    revision = fields.Int(required=True, strict=False, validate=validate.Range(min=0, max=MAX_SEQ))

    @validates_schema
    def reason_when_withholding(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("decision") != "withhold":
            return
        if not data.get("reason"):
            raise ValidationError("Choose why the patient must not see it", "reason")
        if data["reason"] == "other" and not data.get("note"):
            raise ValidationError("Say in the note why the patient must not see it", "note")


class ClinicianSchema(Schema):
    code = fields.Str(required=True, validate=validate.Length(min=1, max=100))
    name = fields.Str(load_default="", validate=validate.Length(max=200))


class HospitalDecisionSchema(Schema):
    """POST /hospital/v1/documents/{sender}/{number}/decision, sent by an EPR at sign-off."""

    class Meta:
        unknown = RAISE

    visibility = fields.Str(required=True, validate=validate.OneOf(["withheld", "visible"]))
    reason = fields.Str(validate=validate.OneOf(REASONS))
    note = fields.Str(load_default="", validate=validate.Length(max=NOTE_LENGTH))
    withhold_until = fields.AwareDateTime(load_default=None)
    decided_by = fields.Nested(ClinicianSchema, required=True)
    # The version the clinician signed off; refused (409) when a newer one has arrived since.
    version = fields.Int(strict=True, validate=validate.Range(min=1, max=MAX_SEQ))

    @validates_schema
    def reason_when_withholding(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("visibility") == "withheld" and not data.get("reason"):
            raise ValidationError("a reason is required to withhold", "reason")
        if data.get("visibility") == "visible" and (
            data.get("reason") or data.get("withhold_until")
        ):
            raise ValidationError(
                "reason and withhold_until belong to a withheld decision", "visibility"
            )


class DecidedBySchema(Schema):
    code = fields.Str()
    name = fields.Str()


class DocumentDecisionSchema(Schema):
    """The answer: the document's visibility after the decision."""

    sender = fields.Str()
    document_number = fields.Str()
    version = fields.Int()
    visibility = fields.Str()
    reason = fields.Str()
    note = fields.Str()
    withhold_until = fields.AwareDateTime(allow_none=True)
    decided_at = fields.AwareDateTime()
    decided_by = fields.Nested(DecidedBySchema)
