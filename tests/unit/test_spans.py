"""A document's text kept as spans of its message: found only where exact, read back exactly."""

from __future__ import annotations

from flagging.spans import find_spans, join_spans
from tests import samples


def test_text_made_of_the_message_lines_is_found_and_read_back_exactly() -> None:
    lines = ("Discharged home on aspirin.", "", "Follow up in clinic in six weeks.")
    message = samples.mdm(lines=lines)
    text = "\n".join(lines).encode()
    spans = find_spans(message, text)
    assert spans is not None
    assert len(spans) < len(text)
    assert join_spans(message, spans) == text


def test_text_that_is_not_in_the_message_as_it_stands_is_not_found() -> None:
    # What the parser unescaped (\T\ is "&"), or decoded, is not in the message's bytes.
    message = samples.mdm(lines=("Tea \\T\\ toast for breakfast, then home.",))
    assert find_spans(message, b"Tea & toast for breakfast, then home.") is None
    assert find_spans(message, "Café au lait, then home.".encode()) is None


def test_text_shorter_than_its_spans_is_kept_as_it_is() -> None:
    message = samples.mdm(lines=("Home.",))
    assert find_spans(message, b"Home.") is None


def test_lines_whose_gaps_change_and_repeat_are_each_found_where_they_stand() -> None:
    # OBX-1 goes from 9 to 10 (the gap before a line grows by one) and a line repeats: the
    # position guessed from the gap before misses, and the search finds each line again.
    lines = tuple(f"Line {i % 4} of the letter, repeated now and then." for i in range(14))
    message = samples.mdm(lines=lines)
    text = "\n".join(lines).encode()
    spans = find_spans(message, text)
    assert spans is not None
    assert join_spans(message, spans) == text
    assert len(set(spans.split(","))) > 1  # not one gap for every line
