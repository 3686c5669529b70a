"""A document's text kept as spans of its message: found only where exact, read back exactly."""

from __future__ import annotations

import base64
import os

from flagging.spans import find_base64, find_spans, join_spans, locate
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


def test_a_rendition_is_the_span_of_its_base64_and_reads_back_decoded() -> None:
    pdf = samples.TINY_PDF + os.urandom(3000)
    encoded = base64.b64encode(pdf).decode()
    message = samples.oru(observations=samples.obx_pdf(pdf))
    spans = find_base64(message, encoded)
    assert spans is not None
    assert spans.startswith("base64:")
    assert len(spans) < len(encoded)
    assert join_spans(message, spans) == pdf


def test_base64_not_in_the_message_as_it_stands_is_not_found() -> None:
    encoded = base64.b64encode(os.urandom(3000)).decode()
    assert find_base64(samples.oru(), encoded) is None
    lines = " ".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))  # MIME-style
    [obx] = samples.obx_pdf(base64.b64decode(encoded))
    assert find_base64(samples.oru(observations=[obx.replace(encoded, lines)]), encoded) is None


def test_only_text_is_looked_up_as_lines() -> None:
    lines = ("Discharged home on aspirin.", "Follow up in clinic in six weeks.")
    message = samples.mdm(lines=lines)
    text = "\n".join(lines).encode()
    assert locate(message, text, "text/plain; charset=utf-8") == find_spans(message, text)
    assert locate(message, text, "application/pdf") is None
