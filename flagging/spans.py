"""A document's text kept as spans of the message it came in, instead of a second copy.

Nearly every text document is its message's OBX-5 lines joined by line breaks: bytes already in
`inbound_messages.raw`. A version then stores where they are (`document_versions.content_spans`)
and its text is read back from the message (flagging/models/documents.py); the retention job
copies the text into the version before it deletes the message's bytes. Anything else (escape
sequences, another character set, a decoded rendition) is not found and is stored as before.

The spans are found by looking the lines up in the message, and the text they give is compared
with the text itself, so a version reads back exactly what was parsed, or is stored as a copy.
"""

from __future__ import annotations

LINE = b"\n"


def find_spans(message: bytes, content: bytes) -> str | None:
    """`content` as spans of `message` (its lines in order), or None if it is not made of them
    or the spans would be no shorter than the text.

    The spans are "skip+length" pairs, comma-separated: each skips that many bytes from where
    the one before ended (the start of the message, for the first). Each line is found as
    it stands, so `join_spans` gives back `content` exactly (tests/unit/test_spans.py)."""
    find, at = message.find, message.startswith
    skips: list[int] = []
    lengths: list[int] = []
    end = skip = 0
    for line in content.split(LINE):
        # Lines are OBX-5s, so the gap before a line is nearly always the one before the line
        # before: check there first (a compare), and search only when it is not (a search
        # prepares its pattern first, which cost most of a message's spans).
        start = end + skip
        if not at(line, start):
            start = find(line, end)
            if start < 0:
                return None
        skip = start - end
        skips.append(skip)
        lengths.append(len(line))
        end = start + len(line)
    found = ",".join(map(_SPAN, skips, lengths))
    return found if len(found) < len(content) else None


_SPAN = "{}+{}".format


def join_spans(message: bytes, spans: str) -> bytes:
    """The text that `find_spans` found in `message`."""
    lines = []
    end = 0
    for span in spans.split(","):
        skip, length = span.split("+")
        start = end + int(skip)
        end = start + int(length)
        lines.append(message[start:end])
    return LINE.join(lines)
