"""The HL7 edge of receiving: one frame in, read, handed to the domain, then its ACK.

Used by the MLLP listener and (through the composition root) by HTTP ingest. This module reads
a frame into a `flagging.receive.Arrival` (decoded, checked and parsed, with the ACK it would
send) and never touches the database: flagging/receiver.py runs the use case in a group
commit and returns after the commit. The rules:
- AA is built only for a message whose receipt and documents are in the transaction, and is
  handed back only after that transaction committed;
- every frame is recorded with its outcome, except when the database itself is unreachable,
  which is answered AR so the sender resends later;
- a resend (same sender, MSH-10 and bytes) is answered with the original ACK and stored once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace

from config import Settings
from flagging import audit, memory, telemetry
from flagging.bindings import Peer, known_verdict, refusal
from flagging.ingest import screen_ahead
from flagging.receive import Arrival, Refusal, Verdict
from flagging.received import Receipt
from flagging.receiver import Receiver
from hl7.ack import build_ack
from hl7.errors import MessageRejected, rejected
from hl7.parsing import Header
from hl7.reading import Reading, best_effort_header, read, read_header_only, receipt_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """The answer to one message: the outcome (AA, AE or AR) and the ACK bytes to send."""

    code: str
    ack: bytes
    message_id: int | None = None
    # For the metrics: what was recorded, and the registered sender's MSH-4 ('' if none).
    outcome: str = ""
    sender: str = ""

    @classmethod
    def of(cls, verdict: Verdict) -> Reply:
        return cls(verdict.code, verdict.ack, verdict.message_id, verdict.outcome, verdict.sender)


@dataclass(frozen=True)
class Identity:
    """Who we are in ACKs when a sender left MSH-5/6 empty."""

    application: str
    facility: str

    def reply(
        self,
        header: Header | None,
        code: str,
        exc: MessageRejected | Refusal | None,
        charset: str,
        message_id: int | None = None,
    ) -> Reply:
        text = build_ack(
            header,
            code,
            problem=exc.problem if exc else None,
            application=self.application,
            facility=self.facility,
        )
        return Reply(code, text.encode(charset, errors="replace"), message_id)


class MessageHandler:
    """Reads one received message, has the domain receive it, and answers with an ACK."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.settings: Settings = receiver.settings
        memory.tune()
        self._identity = Identity(self.settings.application_name, self.settings.facility_name)
        self._throttle = receiver.throttle

    def close(self) -> None:
        self.receiver.close()

    def write_problem(self) -> str | None:
        """Why messages cannot be stored now (for readiness), or None when they can."""
        return self.receiver.write_problem()

    # Entry points -------------------------------------------------------------------------

    def handle(
        self,
        raw: bytes,
        *,
        transport: str,
        peer: str = "",
        sender_id: int | None = None,
        connection: Peer | None = None,
    ) -> Reply:
        """Process one message and return the ACK to send (after the commit).

        `sender_id` is the sender an HTTP bearer token proved; MSH-4 must then name it.
        `connection` is the MLLP connection it came on: MSH-4 must name a sender bound to it
        (flagging/bindings.py).
        """
        started = time.perf_counter()
        try:
            reading = read(raw, self.settings)
            if connection is not None:
                self._check_binding(reading, connection)
            reply = self._handle(raw, reading, transport, peer, sender_id=sender_id)
        except Exception as exc:  # the last line of defence: answer, never drop
            return self._unexpected(raw, exc, transport, peer)
        _count(reply, transport, started)
        return reply

    def handle_oversize(self, head: bytes, size: int, *, transport: str, peer: str = "") -> Reply:
        """Answer AR to a message over the size limit; its first bytes are kept as evidence."""
        started = time.perf_counter()
        try:
            reading = read_header_only(head)
            reading.rejection = rejected(
                "207",
                f"the message is {size} bytes, over this service's limit of "
                f"{self.settings.max_message_bytes} bytes; only its first {len(head)} bytes "
                "were kept",
            )
            reply = self._handle(head, reading, transport, peer, size=size)
        except Exception as exc:
            return self._unexpected(head, exc, transport, peer)
        _count(reply, transport, started)
        return reply

    def record_truncated(self, head: bytes, size: int, *, transport: str, peer: str = "") -> None:
        """Keep a frame the sender abandoned by starting another: it gets no answer (the
        sender no longer waits for one), but it is not lost either."""
        try:
            header = best_effort_header(head)
            problem = rejected(
                "100", f"the frame was cut short by a new start block after {size} bytes"
            ).problem
            self.receiver.record_unanswered(
                receipt_of(head, header, transport, peer), problem, ack=None, size=size
            )
        except Exception as exc:
            log.error("truncated frame %s not recorded: %s", _fingerprint(head), type(exc).__name__)

    def reprocess(self, message_id: int, actor: str = audit.CLI) -> Reply:
        """Run a quarantined or rejected message again, after its registration was fixed.

        `actor` is who asked, for the audit trail (flagging.audit)."""
        raw = self.receiver.to_reprocess(message_id)
        return self._handle(
            raw,
            read(raw, self.settings),
            "reprocess",
            f"message {message_id}",
            replaces=message_id,
            reprocessed_by=actor,
        )

    # Internals ----------------------------------------------------------------------------

    def _check_binding(self, reading: Reading, connection: Peer) -> None:
        """Reject a message whose MSH-4 names a sender not bound to its connection; it is
        still recorded, with that reason, and never processed. Looked up once per connection
        and sender (cached on `connection`), outside the writer's transaction."""
        header = reading.header
        if reading.rejection is not None or header is None:
            return
        allowed = known_verdict(connection, header.sending_facility, header.sending_application)
        if allowed is None:
            allowed = self.receiver.may_send(
                connection, header.sending_facility, header.sending_application
            )
            if allowed is None:
                reading.rejection = rejected(
                    "207", "the message could not be processed now; resend it later"
                )
                return
        if not allowed:
            log.warning(
                "MLLP message claiming sender %s refused: not bound to the connection from %s",
                header.sending_facility,
                connection.describe(),
            )
            reading.rejection = rejected("204", refusal(header.sending_facility), "MSH^1^4")

    def _handle(
        self,
        raw: bytes,
        reading: Reading,
        transport: str,
        peer: str,
        *,
        size: int | None = None,
        replaces: int | None = None,
        sender_id: int | None = None,
        reprocessed_by: str = "",
    ) -> Reply:
        header, rejection = reading.header, reading.rejection
        receipt = receipt_of(raw, header, transport, peer)
        if rejection is None and reading.documents is not None:
            # Outside the writer lock, which every connection's messages queue for.
            ack = self._identity.reply(header, "AA", None, reading.charset).ack
            self.receiver.refresh_rules()
            reading.screened = [screen_ahead(doc) for doc in reading.documents]
            refused = None
        else:
            assert rejection is not None
            ack = self._identity.reply(header, rejection.ack_code, rejection, reading.charset).ack
            refused = Refusal(rejection.ack_code, rejection.problem)
        arrival = Arrival(
            receipt,
            header_read=header is not None,
            documents=reading.documents,
            refusal=refused,
            ack=ack,
            screened=reading.screened,
            size=size,
            replaces=replaces,
            authenticated_sender=sender_id,
            reprocessed_by=reprocessed_by,
        )
        try:
            verdict = self.receiver.receive(arrival)
            if verdict.refusal is not None:
                # Refused by what the database says (sender, MSH-10): answer that, and have
                # it recorded with this answer.
                refused = verdict.refusal
                ack = self._identity.reply(header, refused.ack_code, refused, reading.charset).ack
                verdict = self.receiver.receive(replace(arrival, refusal=refused, ack=ack))
        except Exception as exc:
            name = type(exc).__name__
            if self.receiver.is_database_error(exc):
                self._throttle.error(name, "message not stored: database error %s", name)
            else:  # where, not the error's text, which may quote the message
                self._throttle.error(
                    name, "message not processed: internal error %s at %s", name, _where(exc)
                )
            problem = rejected("207", "the message could not be processed now; resend it later")
            return self._record_failure(receipt, reading, problem)
        reply = Reply.of(verdict)
        if reply.code != "AA":
            log.info(
                "message %s from %s answered %s",
                reply.message_id,
                receipt.sending_facility or "(unknown)",
                reply.code,
            )
        return reply

    def _unexpected(self, raw: bytes, exc: Exception, transport: str, peer: str) -> Reply:
        """AR 207 for an input that broke something unforeseen: recorded when the database
        allows, logged by its hash and where it failed, never by its text."""
        log.error(
            "input %s (%d bytes) failed unexpectedly: %s at %s",
            _fingerprint(raw),
            len(raw),
            type(exc).__name__,
            _where(exc),
        )
        problem = rejected("207", "the message could not be processed; resend it later")
        try:
            header = best_effort_header(raw)
        except Exception:
            header = None
        reading = Reading(header=header)
        try:
            return self._record_failure(receipt_of(raw, header, transport, peer), reading, problem)
        except Exception:
            return self._identity.reply(None, "AR", problem, "latin-1")

    def _record_failure(
        self, receipt: Receipt, reading: Reading, problem: MessageRejected
    ) -> Reply:
        """Keep the bytes of a message that failed unexpectedly, so nothing is lost."""
        reply = self._identity.reply(reading.header, "AR", problem, reading.charset)
        try:
            message_id = self.receiver.record_unanswered(receipt, problem.problem, ack=reply.ack)
        except Exception as exc:
            if not self.receiver.is_database_error(exc):
                raise
            self._throttle.error("record", "failed message could not be recorded either")
            return reply
        return replace(reply, message_id=message_id, outcome="rejected")


def _count(reply: Reply, transport: str, started: float) -> None:
    """Count the answer for /metrics; never a reason for a message to fail."""
    try:
        telemetry.message_answered(
            reply.sender, reply.outcome, transport, time.perf_counter() - started
        )
    except Exception:  # a full disk under the metrics folder must not cost an ACK
        log.warning("metrics not updated", exc_info=True)


def _fingerprint(raw: bytes) -> str:
    """What logs say about an input: enough to find it again, nothing of what it says."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def _where(exc: BaseException) -> str:
    """The innermost frame of a traceback, as file:line in function (no values, no text)."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}"
