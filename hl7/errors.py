"""The HL7 edge's exceptions; each knows the acknowledgement it turns into."""

from __future__ import annotations

from flagging.received import Problem


class HL7Error(Exception):
    """Base of the errors raised by the HL7 edge."""


class FramingError(HL7Error):
    """Bytes on an MLLP stream that do not form a frame."""


class MessageRejected(HL7Error):
    """A message that cannot be accepted: AR (not processable here) or AE (content to fix).

    `code` is from HL7 table 0357, `location` is ERR-2 (SEG^sequence^field), `text` is ERR-8.
    """

    def __init__(self, ack_code: str, code: str, text: str, location: str = "") -> None:
        super().__init__(text)
        self.ack_code = ack_code
        self.problem = Problem(code=code, text=text, location=location)

    def __reduce__(self) -> tuple[type[MessageRejected], tuple[str, str, str, str]]:
        problem = self.problem
        return type(self), (self.ack_code, problem.code, problem.text, problem.location)


def rejected(code: str, text: str, location: str = "") -> MessageRejected:
    """AR: unsupported, unregistered or unreadable; the sender may resend later."""
    return MessageRejected("AR", code, text, location)


def content_error(code: str, text: str, location: str = "") -> MessageRejected:
    """AE: something in the content is wrong and must be fixed before resending."""
    return MessageRejected("AE", code, text, location)
