"""How pages show things: escaped text with screening marks, names, times and durations."""

from __future__ import annotations

from datetime import UTC, datetime

from api.presentation import Mark, duration, highlight, local_time, person_name


def test_marked_text_escapes_every_slice_and_the_rule_names() -> None:
    text = "<b>HIV</b> & <script>"
    html = highlight(text, [Mark(3, 6, 'Rule "x" <y>')])
    assert str(html) == (
        '&lt;b&gt;<mark title="Screening: Rule &#34;x&#34; &lt;y&gt;">HIV</mark>'
        "&lt;/b&gt; &amp; &lt;script&gt;"
    )


def test_overlapping_marks_merge_and_marks_outside_the_text_are_ignored() -> None:
    html = highlight("abcdefgh", [Mark(1, 4, "one"), Mark(3, 6, "two"), Mark(20, 30, "far")])
    assert str(html) == 'a<mark title="Screening: one, two">bcdef</mark>gh'
    assert str(highlight("abc", [])) == "abc"


def test_times_are_shown_in_uk_time_and_windows_in_words() -> None:
    assert local_time(datetime(2026, 7, 1, 8, 30, tzinfo=UTC)) == "1 Jul 2026, 09:30"  # BST
    assert local_time(datetime(2026, 12, 1, 8, 30, tzinfo=UTC)) == "1 Dec 2026, 08:30"
    assert [duration(m) for m in (0, 1, 90, 60, 1440, 4320)] == [
        "0 minutes",
        "1 minute",
        "90 minutes",
        "1 hour",
        "24 hours",
        "3 days",
    ]


def test_names_sent_in_capitals_are_shown_as_people_write_them() -> None:
    assert person_name("DR SAM GREY") == "Dr Sam Grey"
    assert person_name("Dr Sam McGrey") == "Dr Sam McGrey"
