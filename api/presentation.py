"""How the pages show things: NHS numbers 3-3-4, UK times, statuses in words, and document text
with its screening hits marked. Patient text is always escaped, slice by slice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Flask
from markupsafe import Markup, escape

from api.auth import csrf_token, signed_in
from api.context import settings
from flagging.models import reason_text
from flagging.nhs_number import format_nhs_number
from flagging.vocabulary import change_label, document_type_label, event_label

LONDON = ZoneInfo("Europe/London")

VISIBILITY_LABELS = {
    "pending": "Needs a decision",
    "withheld": "Withheld from patient",
    "visible": "Visible to patient",
}
SOURCE_LABELS = {
    "message": "flagged in the hospital's message",
    "screening": "screening",
    "review-window": "review window ended",
    "clinician": "clinician's decision",
    "expiry": "'withhold until' date passed",
}


def local_time(value: datetime | None) -> str:
    """A UTC moment as people in England read it: 24 Nov 2026, 09:30."""
    if value is None:
        return ""
    local = value.astimezone(LONDON)
    return f"{local.day} {local:%b %Y, %H:%M}"


def local_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(LONDON).date()
    return f"{value.day} {value:%b %Y}"


def relative_deadline(value: datetime | None, now: datetime | None = None) -> str:
    """'in 3 hours' or '2 days ago', for review deadlines."""
    if value is None:
        return ""
    seconds = (value - (now or datetime.now(UTC))).total_seconds()
    past = seconds < 0
    seconds = abs(seconds)
    if seconds < 3600:
        amount, unit = max(1, round(seconds / 60)), "minute"
    elif seconds < 2 * 86400:
        amount, unit = round(seconds / 3600), "hour"
    else:
        amount, unit = round(seconds / 86400), "day"
    words = f"{amount} {unit}{'s' if amount != 1 else ''}"
    return f"{words} ago" if past else f"in {words}"


def duration(minutes: int) -> str:
    """A review window in words: 0 minutes, 90 minutes, 24 hours, 7 days."""
    if minutes and minutes % 1440 == 0:
        days = minutes // 1440
        return f"{days} day{'s' if days != 1 else ''}" if days != 1 else "24 hours"
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def person_name(name: str) -> str:
    """A clinician's name as HL7 often sends it (DR SAM GREY) in the case people write it."""
    return name.title() if name.isupper() else name


def reason_label(code: str) -> str:
    return reason_text(code)


@dataclass(frozen=True)
class Mark:
    start: int
    end: int
    label: str


def highlight(text: str, marks: Sequence[Mark]) -> Markup:
    """The text, escaped, with each marked range in <mark>. Overlapping ranges are merged;
    ranges outside the text are ignored."""
    spans: list[tuple[int, int, list[str]]] = []
    for mark in sorted(marks, key=lambda m: (m.start, m.end)):
        start, end = max(0, mark.start), min(len(text), mark.end)
        if end <= start:
            continue
        if spans and start <= spans[-1][1]:
            first, last, labels = spans[-1]
            spans[-1] = (first, max(last, end), labels)
            if mark.label not in labels:
                labels.append(mark.label)
        else:
            spans.append((start, end, [mark.label]))
    out = []
    position = 0
    for start, end, labels in spans:
        out.append(escape(text[position:start]))
        # format() escapes both arguments: the rule names and the patient's text.
        title = "Screening: " + ", ".join(labels)
        out.append(Markup('<mark title="{}">{}</mark>').format(title, text[start:end]))
        position = end
    out.append(escape(text[position:]))
    return Markup("").join(out)


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(
        csrf_token=csrf_token,
        signed_in=signed_in,
        single_sign_on=lambda: bool(settings().trusted_user_header),
    )
    app.jinja_env.filters.update(
        nhs_number=format_nhs_number,
        local_time=local_time,
        local_date=local_date,
        relative_deadline=relative_deadline,
        duration=duration,
        person_name=person_name,
        reason_label=reason_label,
        visibility_label=lambda v: VISIBILITY_LABELS.get(v, v),
        source_label=lambda s: SOURCE_LABELS.get(s, s),
        document_type_label=document_type_label,
        event_label=event_label,
        change_label=change_label,
    )
