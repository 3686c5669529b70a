"""What the form schemas share: unknown fields (the CSRF token, buttons) are ignored, text is
trimmed, and an empty field counts as not filled in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, pre_load


class FormSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def drop_empty(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned = {}
        for key in data:
            value = data[key]
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            cleaned[key] = value
        return cleaned


def load_form(schema: Schema, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Load a form; on failure return what was sent and one message per field."""
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        for name, value in messages.items():
            while isinstance(value, list | dict):
                value = next(iter(value.values() if isinstance(value, dict) else value), "")
            errors[str(name)] = str(value)
        return dict(data), errors
