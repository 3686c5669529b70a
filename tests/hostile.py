"""Inputs that once broke the inbound edge (issue 10), each as it was reproduced."""

from __future__ import annotations

from tests import samples

# A first line that is just "MSH": there is no field separator to split the header on.
BARE_MSH = b"MSH\rPID|1\r"
# TXA-6 with an offset of 25 hours: there is no such time zone.
OFFSET_2500 = samples.mdm(control_id="TZ2500").replace(
    b"|20261124092500|||C1234567", b"|20261124092500+2500|||C1234567", 1
)
# Byte 0x85 in MSH-9, no MSH-18: latin-1 reads a control character (stripped as whitespace),
# windows-1252 an ellipsis.
BYTE_85_IN_MSH_9 = samples.mdm(control_id="NEL85").replace(b"MDM^T02^", b"MDM^T02\x85^", 1)
# NUL in MSH-4, which PostgreSQL cannot keep in a text column.
NUL_IN_MSH_4 = samples.mdm(control_id="NUL1").replace(b"|RXX|", b"|R\x00XX|", 1)
# \X00\ in a field read as text: an escaped NUL.
ESCAPED_NUL_IN_TITLE = samples.mdm(control_id="NUL2").replace(
    b"|AU|U|AV|", b"|AU|U|AV||||||A \\X00\\ title|", 1
)


def long_control_id(tail: str = "") -> str:
    """An MSH-10 of 250 characters; `tail` differs after the first 199."""
    return ("C" * 199 + tail).ljust(250, "0")
