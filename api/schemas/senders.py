"""A sender's review window and TXA-18 policy, and its per-document-type review windows."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas.base import FormSchema

UNITS = {"minutes": 1, "hours": 60, "days": 1440}


class _Window(FormSchema):
    amount = fields.Int(
        required=True,
        strict=False,
        validate=validate.Range(min=0, error="Enter 0 or more"),
        error_messages={"required": "Enter how long", "invalid": "Enter a whole number"},
    )
    unit = fields.Str(load_default="hours", validate=validate.OneOf(list(UNITS)))


class SenderPolicySchema(_Window):
    txa18_v_policy = fields.Str(required=True, validate=validate.OneOf(["pending", "withheld"]))


class ReviewWindowSchema(_Window):
    document_type = fields.Str(
        required=True,
        validate=validate.Length(max=250),
        error_messages={"required": "Enter the document type code (TXA-2 or OBR-4)"},
    )


def minutes(data: dict[str, object]) -> int:
    amount = data["amount"]
    assert isinstance(amount, int)
    return amount * UNITS[str(data["unit"])]
