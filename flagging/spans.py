"""A document's text kept as spans of the message it came in, instead of a second copy.

Nearly every text document is its message's OBX-5 lines joined by line breaks: bytes already in
`inbound_messages.raw`. A version then stores where they are (`document_versions.content_spans`)
and its text is read back from the message (flagging/models/documents.py); the retention job
copies the text into the version before it deletes the message's bytes. Anything else (escape
sequences, another character set, Base64 broken into lines, Hex) is not found and is stored as
parsed.

A rendition (an OBX-5 ED: a PDF, typically) whose Base64 is in one piece is kept as the span
of that Base64 in the message (`base64:start+length`), decoded when it is read: the parser
only checks it (hl7/parsing.py), the listener finds it here, and its message holds the only
copy, so a 200 KB ORU^R01 crosses to the SQLite writer and into the database once, not once as
the message and again as the 150 KB it decodes to.

The spans are found by looking the lines (or the rendition's Base64) up in the message, exactly
as they stand, so a version reads back exactly what was parsed, or is stored as a copy.
"""

from __future__ import annotations

import binascii

LINE = b"\n"
BASE64 = "base64:"


def locate(message: bytes, content: bytes, content_type: str) -> str | None:
    """Where text `content` is in `message`, as its lines' spans; None for anything else, or
    when it is not there as it stands (it is then stored as a copy)."""
    if content_type.startswith("text/"):
        return find_spans(message, content)
    return None


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


def find_base64(message: bytes, encoded: str) -> str | None:
    """The span of a rendition's Base64 `encoded` (as the parser read it) in `message`."""
    data = encoded.encode("ascii")
    head = data[:64]  # found first, then the rest compared: a 200 KB pattern costs to prepare
    start = message.find(head)
    while start >= 0:
        if message.startswith(data, start):
            return f"{BASE64}{start}+{len(data)}"
        start = message.find(head, start + 1)
    return None


def join_spans(message: bytes, spans: str) -> bytes:
    """The text (or the decoded rendition) that `locate` found in `message`."""
    if spans.startswith(BASE64):
        at, size = map(int, spans[len(BASE64) :].split("+"))
        return binascii.a2b_base64(message[at : at + size], strict_mode=True)
    lines = []
    end = 0
    for span in spans.split(","):
        skip, length = span.split("+")
        start = end + int(skip)
        end = start + int(length)
        lines.append(message[start:end])
    return LINE.join(lines)
