"""The worklist's filters, from the query string of its GET form."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from api.schemas.base import FormSchema


class WorklistFilterSchema(FormSchema):
    who = fields.Str(validate=validate.OneOf(["mine", "all"]))
    status = fields.Str(
        load_default="all", validate=validate.OneOf(["all", "pending", "withheld", "visible"])
    )
    received_from = fields.Date(data_key="from", error_messages={"invalid": "Enter a real date"})
    received_to = fields.Date(data_key="to", error_messages={"invalid": "Enter a real date"})
    patient = fields.Str(
        load_default="",
        validate=validate.Length(max=100, error="Enter an NHS number or a name, not more"),
    )
    after = fields.Str(load_default="")

    @validates_schema
    def dates_in_order(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and end < start:
            raise ValidationError("The 'to' date must be on or after the 'from' date", "to")
