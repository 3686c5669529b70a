"""The inbound pipeline: one message in, its savepoint in a commit, then its acknowledgement.

Used by the MLLP listener and (through the composition root) by HTTP ingest. Messages that
arrive together on different connections share one commit (flagging.storage.batches.GroupCommit, or
on SQLite listeners flagging.storage.writer's process), each in its own savepoint, so one message's
failure never touches another's. The rules:
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from flagging import audit, memory, telemetry
from flagging.bindings import Peer, is_refusal, known_verdict, may_send, refusal
from flagging.errors import Conflict, NotFound
from flagging.ingest import (
    Screened,
    content_hash,
    find_accepted,
    record_message,
    screen_ahead,
    store_document,
)
from flagging.logs import Throttle
from flagging.models import InboundMessage, MessageOutcome
from flagging.organisations import sender_policy
from flagging.received import DocumentInput, Receipt
from flagging.screening import active_rules
from flagging.storage.batches import GroupCommit
from flagging.storage.engine import Database, write_probe
from flagging.storage.rawsql import Raw
from flagging.storage.writer import WriterProcess
from hl7 import er7
from hl7.ack import build_ack
from hl7.errors import MessageRejected, content_error, rejected
from hl7.parsing import Header, check_supported, read_documents, read_header

log = logging.getLogger(__name__)

REPROCESSABLE = (MessageOutcome.QUARANTINED, MessageOutcome.REJECTED)
PROBE_AFTER = 5.0  # seconds without a failed message before readiness tries a probe write
_MARK_REPROCESSED = (
    "UPDATE inbound_messages SET outcome = :outcome, reprocessed_as_id = :as WHERE id = :id"
)


@dataclass(frozen=True)
class Reply:
    """The answer to one message: the outcome (AA, AE or AR) and the ACK bytes to send."""

    code: str
    ack: bytes
    message_id: int | None = None
    # For the metrics: what was recorded, and the registered sender's MSH-4 ('' if none).
    outcome: str = ""
    sender: str = ""


@dataclass(frozen=True)
class Identity:
    """Who we are in ACKs when a sender left MSH-5/6 empty."""

    application: str
    facility: str

    def reply(
        self,
        header: Header | None,
        code: str,
        exc: MessageRejected | None,
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


@dataclass
class _Reading:
    header: Header | None = None
    header_line: tuple[str, er7.Separators] | None = None
    documents: list[DocumentInput] | None = None
    rejection: MessageRejected | None = None
    charset: str = "latin-1"
    # Work done before the writer lock for a message that will most likely be accepted.
    accept_ack: bytes = b""
    screened: list[Screened | None] = field(default_factory=list)


class MessageHandler:
    """Turns one received message into a stored receipt, documents and an ACK."""

    def __init__(self, db: Database, settings: Settings, *, writer_process: bool = False) -> None:
        """`writer_process`: run the transactions in a process of their own (SQLite listeners,
        see flagging/storage/writer.py); `close()` stops it."""
        self.db = db
        self.settings = settings
        memory.tune()
        self._identity = Identity(settings.application_name, settings.facility_name)
        self._group: GroupCommit[Reply] | WriterProcess[Reply]
        if writer_process:
            self._group = WriterProcess(settings)
            self._group.start()
        else:
            self._group = GroupCommit(db)
        # When this process's copy of the screening rules is next refreshed: only with a
        # writer process (otherwise every transaction refreshes it, flagging.screening).
        self._rules_due: float | None = 0.0 if writer_process else None
        self._dbapi_error: type[Exception] = db.engine.dialect.loaded_dbapi.Error
        # A failure that repeats (the database down, the disk full) is one log line a second.
        self._throttle = Throttle(log)
        self._failing_since: float | None = None  # since when writes have failed
        self._probe_due = 0.0
        self._last_failure = 0.0

    def close(self) -> None:
        if isinstance(self._group, WriterProcess):
            self._group.close()

    def write_problem(self) -> str | None:
        """Why messages cannot be stored now (for readiness), or None when they can. While
        writes fail, a probe write is tried at most once a second, so that readiness comes
        back without waiting for a message."""
        since = self._failing_since
        if since is None:
            return None
        now = time.monotonic()
        low = self.db.low_on_space()
        if low:
            return low
        # Messages still arriving say best whether they can be stored; the probe (a write of
        # a few bytes) speaks only when they have stopped for a while.
        if now >= self._probe_due and now - self._last_failure >= PROBE_AFTER:
            self._probe_due = now + 1.0
            try:
                self._group.run(_Probe())
            except Exception:  # noqa: S110 (still failing: said below)
                pass
            else:
                self._writes_succeed()
                return None
        return f"database writes have failed for {now - since:.0f} s"

    def _writes_fail(self) -> None:
        self._last_failure = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._last_failure

    def _writes_succeed(self) -> None:
        if self._failing_since is not None:
            self._failing_since = None
            left_out = self._throttle.reset()
            log.warning("database writes succeed again (%d failures were not logged)", left_out)

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
            reading = _read(raw, self.settings)
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
            reading = _read_header_only(head)
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
            header = _best_effort_header(head)
            receipt = _receipt(head, header, transport, peer)
            with self.db.writer() as raw:
                record_message(
                    raw,
                    receipt,
                    MessageOutcome.TRUNCATED,
                    ack_code="",
                    ack=None,
                    problem=rejected(
                        "100",
                        f"the frame was cut short by a new start block after {size} bytes",
                    ).problem,
                    size=size,
                )
        except Exception as exc:
            log.error("truncated frame %s not recorded: %s", _fingerprint(head), type(exc).__name__)

    def reprocess(self, message_id: int, actor: str = audit.CLI) -> Reply:
        """Run a quarantined or rejected message again, after its registration was fixed.

        `actor` is who asked, for the audit trail (flagging.audit)."""
        with self.db.transaction() as session:
            row = session.get(InboundMessage, message_id)
            if row is None:
                raise NotFound(f"no message {message_id}")
            if row.outcome not in REPROCESSABLE or row.raw is None:
                raise Conflict(
                    f"message {message_id} is {row.outcome}: only quarantined or rejected "
                    "messages can be reprocessed"
                )
            if row.reprocessed_as_id is not None:
                raise Conflict(f"message {message_id} was already reprocessed")
            if is_refusal(row.error_text):
                # Its sender never proved who it was: running it would process a forgery.
                raise Conflict(
                    f"message {message_id} came on a connection its sender is not bound to: "
                    "it cannot be reprocessed; the sender must send it again"
                )
            raw = row.raw
        peer = f"message {message_id}"
        return self._handle(
            raw,
            _read(raw, self.settings),
            "reprocess",
            peer,
            replaces=message_id,
            reprocessed_by=actor,
        )

    # Internals ----------------------------------------------------------------------------

    def _check_binding(self, reading: _Reading, connection: Peer) -> None:
        """Reject a message whose MSH-4 names a sender not bound to its connection; it is
        still recorded, with that reason, and never processed. Looked up once per connection
        and sender (cached on `connection`), outside the writer's transaction."""
        header = reading.header
        if reading.rejection is not None or header is None:
            return
        allowed = known_verdict(connection, header.sending_facility, header.sending_application)
        if allowed is None:
            allowed = self._look_up_binding(header, connection)
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

    def _look_up_binding(self, header: Header, connection: Peer) -> bool | None:
        """`may_send` in a read transaction of its own; None if the database failed."""
        try:
            with self.db.reading() as session:
                return may_send(
                    Raw.on(session.connection()),
                    connection,
                    header.sending_facility,
                    header.sending_application,
                )
        except (SQLAlchemyError, self._dbapi_error) as exc:
            log.error("sender binding not checked: database error %s", type(exc).__name__)
            return None

    def _refresh_rules(self) -> None:
        """Refresh the rules that `screen_ahead` uses, at most once a second: the writer
        process checks their fingerprint, so a stale copy costs a second screening there,
        never a wrong result."""
        now = time.monotonic()
        if self._rules_due is None or now < self._rules_due:
            return
        self._rules_due = now + 1.0
        try:
            with self.db.reading() as session:
                active_rules(Raw.on(session.connection()))
        except (SQLAlchemyError, self._dbapi_error):
            pass  # the writer screens with the rules it reads itself, or answers AR

    def _handle(
        self,
        raw: bytes,
        reading: _Reading,
        transport: str,
        peer: str,
        *,
        size: int | None = None,
        replaces: int | None = None,
        sender_id: int | None = None,
        reprocessed_by: str = "",
    ) -> Reply:
        header = reading.header
        receipt = _receipt(raw, header, transport, peer)
        if reading.rejection is None and reading.documents is not None:
            # Outside the writer lock, which every connection's messages queue for.
            reading.accept_ack = self._identity.reply(header, "AA", None, reading.charset).ack
            self._refresh_rules()
            reading.screened = [screen_ahead(doc) for doc in reading.documents]
        try:
            reply = self._group.run(
                _Store(self._identity, receipt, reading, size, replaces, sender_id, reprocessed_by)
            )
        except Exception as exc:
            self._writes_fail()
            name = type(exc).__name__
            if isinstance(exc, SQLAlchemyError | self._dbapi_error):
                self._throttle.error(name, "message not stored: database error %s", name)
            else:  # where, not the error's text, which may quote the message
                self._throttle.error(
                    name, "message not processed: internal error %s at %s", name, _where(exc)
                )
            problem = rejected("207", "the message could not be processed now; resend it later")
            return self._record_failure(receipt, reading, problem)
        self._writes_succeed()
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
            header = _best_effort_header(raw)
        except Exception:
            header = None
        reading = _Reading(header=header)
        try:
            return self._record_failure(_receipt(raw, header, transport, peer), reading, problem)
        except Exception:
            return self._identity.reply(None, "AR", problem, "latin-1")

    def _record_failure(
        self, receipt: Receipt, reading: _Reading, problem: MessageRejected
    ) -> Reply:
        """Keep the bytes of a message that failed unexpectedly, so nothing is lost."""
        reply = self._identity.reply(reading.header, "AR", problem, reading.charset)
        try:
            with self.db.writer() as raw:
                message_id = record_message(
                    raw,
                    receipt,
                    MessageOutcome.REJECTED,
                    ack_code="AR",
                    ack=reply.ack,
                    problem=problem.problem,
                )
                audit.message_received(
                    raw,
                    receipt,
                    outcome="rejected",
                    ack_code="AR",
                    message_id=message_id,
                    registered=False,
                )
            return replace(reply, message_id=message_id, outcome=MessageOutcome.REJECTED.value)
        except (SQLAlchemyError, self._dbapi_error):
            self._throttle.error("record", "failed message could not be recorded either")
            return reply


@dataclass(frozen=True)
class _Probe:
    """A unit of work that only writes (storage.engine.write_probe): can messages be stored?"""

    def __call__(self, raw: Raw) -> Reply:
        write_probe(raw)
        return Reply("", b"")


@dataclass(frozen=True)
class _Store:
    """Record one message and its documents, inside a group commit's transaction.

    A picklable unit of work (plain data, no connections), so the transaction may run in
    another process (flagging.storage.writer)."""

    identity: Identity
    receipt: Receipt
    reading: _Reading
    size: int | None
    replaces: int | None
    authenticated_sender: int | None
    reprocessed_by: str = ""  # who asked for a reprocess (the audit trail's actor)

    @property
    def practice_codes(self) -> set[str]:
        """The practices whose feeds this message may add to (storage.batches._lock_practices)."""
        if self.reading.rejection is not None or not self.reading.documents:
            return set()
        return {doc.practice_ods_code for doc in self.reading.documents if doc.practice_ods_code}

    def __call__(self, raw: Raw) -> Reply:
        receipt, reading, size, replaces = self.receipt, self.reading, self.size, self.replaces
        authenticated_sender, identity = self.authenticated_sender, self.identity
        header, rejection = reading.header, reading.rejection
        sender = None
        if header is not None:
            sender = sender_policy(raw, header.sending_facility, header.sending_application)
        if rejection is None and sender is None:
            assert header is not None
            rejection = rejected(
                "204",
                f"sender {header.sending_facility or '(empty MSH-4)'} is not registered "
                "with this service",
                "MSH^1^4",
            )
        if (
            rejection is None
            and authenticated_sender is not None
            and sender is not None
            and sender.id != authenticated_sender
        ):
            rejection = rejected(
                "204",
                "MSH-4 names a sender other than the one this token belongs to",
                "MSH^1^4",
            )
        previous = None
        if rejection is None:
            assert sender is not None
            assert header is not None
            previous = find_accepted(raw, sender.id, header.control_id)
            if previous is not None and previous.content_hash != content_hash(receipt.raw):
                rejection = content_error(
                    "205",
                    f"MSH-10 {header.control_id} was already used by this sender for a "
                    "different message",
                    "MSH^1^10",
                )
        sender_id = sender.id if sender else None
        label = header.sending_facility.upper() if sender and header else ""
        if rejection is not None:
            code = rejection.ack_code
            reply = identity.reply(header, code, rejection, reading.charset)
            outcome = MessageOutcome.QUARANTINED if code == "AE" else MessageOutcome.REJECTED
            if replaces is not None:
                # A reprocess that failed again: the entry it came from says why, now; no
                # second entry for the same bytes.
                _record_refusal_again(raw, replaces, outcome, reply, rejection, sender_id)
                _audit_reprocess(raw, replaces, replaces, self.reprocessed_by, code)
                return replace(reply, message_id=replaces, outcome=outcome.value, sender=label)
            message_id = record_message(
                raw,
                receipt,
                outcome,
                ack_code=code,
                ack=reply.ack,
                sender_id=sender_id,
                problem=rejection.problem,
                size=size,
            )
            audit.message_received(
                raw,
                receipt,
                outcome=outcome,
                ack_code=code,
                message_id=message_id,
                registered=sender is not None,
            )
            return replace(reply, message_id=message_id, outcome=outcome.value, sender=label)
        if previous is not None:
            # A resend: the same answer as the first time, nothing processed again.
            ack = previous.ack or identity.reply(header, "AA", None, reading.charset).ack
            message_id = record_message(
                raw,
                receipt,
                MessageOutcome.DUPLICATE,
                ack_code="AA",
                ack=ack,
                sender_id=sender_id,
                duplicate_of=previous,
            )
            _mark_reprocessed(raw, replaces, message_id, self.reprocessed_by, "AA")
            audit.message_received(
                raw,
                receipt,
                outcome=MessageOutcome.DUPLICATE,
                ack_code="AA",
                message_id=message_id,
                registered=True,
            )
            return Reply("AA", ack, message_id, MessageOutcome.DUPLICATE.value, label)
        assert reading.documents is not None
        message_id = record_message(
            raw,
            receipt,
            MessageOutcome.ACCEPTED,
            ack_code="AA",
            ack=reading.accept_ack,
            sender_id=sender_id,
        )
        assert sender is not None
        document_ids = [
            store_document(
                raw,
                sender=sender,
                message_id=message_id,
                doc=doc,
                now=receipt.received_at,
                screened=screened,
            )
            for doc, screened in zip(reading.documents, reading.screened, strict=True)
        ]
        _mark_reprocessed(raw, replaces, message_id, self.reprocessed_by, "AA")
        audit.message_received(
            raw,
            receipt,
            outcome=MessageOutcome.ACCEPTED,
            ack_code="AA",
            message_id=message_id,
            registered=True,
            documents=reading.documents,
            document_ids=document_ids,
        )
        if replaces is None:
            _supersede(raw, sender_id, receipt.control_id, message_id)
        return Reply("AA", reading.accept_ack, message_id, MessageOutcome.ACCEPTED.value, label)


def _count(reply: Reply, transport: str, started: float) -> None:
    """Count the answer for /metrics; never a reason for a message to fail."""
    try:
        telemetry.message_answered(
            reply.sender, reply.outcome, transport, time.perf_counter() - started
        )
    except Exception:  # a full disk under the metrics folder must not cost an ACK
        log.warning("metrics not updated", exc_info=True)


_RECORD_AGAIN = (
    "UPDATE inbound_messages SET outcome = :outcome, ack_code = :ack_code, ack = :ack,"
    " error_code = :error_code, error_location = :error_location, error_text = :error_text,"
    " sender_id = COALESCE(:sender_id, sender_id) WHERE id = :id"
)
# The quarantined entries a corrected message replaces: the same sender and MSH-10, still open.
# Only quarantined rows are in the partial index this reads, so accepted messages pay one
# lookup in a small index, never a scan.
_SUPERSEDE = (
    "UPDATE inbound_messages SET resolution = 'superseded', superseded_by_id = :by"
    " WHERE sender_id = :sender AND control_id = :control AND outcome = 'quarantined'"
    " AND resolution = ''"
)


def _record_refusal_again(
    raw: Raw,
    message_id: int,
    outcome: MessageOutcome,
    reply: Reply,
    rejection: MessageRejected,
    sender_id: int | None,
) -> None:
    problem = rejection.problem
    raw.execute(
        _RECORD_AGAIN,
        {
            "id": message_id,
            "outcome": outcome.value,
            "ack_code": reply.code,
            "ack": reply.ack,
            "error_code": problem.code,
            "error_location": problem.location[:40],
            "error_text": problem.text,
            "sender_id": sender_id,
        },
    )


def _supersede(raw: Raw, sender_id: int | None, control_id: str, message_id: int) -> None:
    """A corrected resend (an accepted message with the MSH-10 of a quarantined one) closes
    the quarantined entry as superseded by it."""
    if sender_id is not None and control_id:
        raw.execute(_SUPERSEDE, {"by": message_id, "sender": sender_id, "control": control_id})


def _receipt(raw: bytes, header: Header | None, transport: str, peer: str) -> Receipt:
    return Receipt(
        raw=raw,
        received_at=datetime.now(UTC),
        transport=transport,
        peer=peer,
        sending_facility=header.sending_facility if header else "",
        sending_application=header.sending_application if header else "",
        control_id=header.control_id if header else "",
        message_type=header.type_label if header else "",
        version=header.version if header else "",
    )


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


def _mark_reprocessed(
    raw: Raw, replaces: int | None, message_id: int, actor: str, ack_code: str
) -> None:
    if replaces is not None:
        raw.execute(
            _MARK_REPROCESSED,
            {"id": replaces, "as": message_id, "outcome": MessageOutcome.REPROCESSED.value},
        )
        _audit_reprocess(raw, replaces, message_id, actor, ack_code)


def _audit_reprocess(raw: Raw, replaces: int, message_id: int, actor: str, ack_code: str) -> None:
    audit.defer(
        raw,
        actor=actor or audit.CLI,
        action=audit.Action.MESSAGE_REPROCESSED,
        outcome=ack_code,
        message_id=replaces,
        detail={"as": message_id},
    )


def _read_header_only(raw: bytes) -> _Reading:
    try:
        line, separators = er7.read_header_line(raw)
    except MessageRejected as exc:
        return _Reading(header=_best_effort_header(raw), rejection=_detached(exc))
    if "\x00" in line:
        return _Reading(header=_best_effort_header(raw), rejection=_nul_rejection(raw))
    msh = er7.Segment(line.split(separators.field))
    header = read_header(er7.Message(separators, [msh], "latin-1"))
    return _Reading(header=header, header_line=(line, separators))


def _detached(exc: MessageRejected) -> MessageRejected:
    """The rejection without its traceback and context: kept in the reading, they would make
    a cycle through this frame (reading -> exception -> frame -> reading) that holds the
    message's bytes until the cyclic collector's next full pass, which on a busy listener is
    rare: its memory grew by tens of MiB in a fuzz run."""
    exc.__traceback__ = None
    exc.__context__ = None
    exc.__cause__ = None
    return exc


def _nul_rejection(raw: bytes) -> MessageRejected:
    offset = raw.find(b"\x00")
    return rejected("100", f"byte 0x00 at offset {offset}: not an HL7 v2 text message", "MSH^1")


def _best_effort_header(raw: bytes) -> Header | None:
    """The header of a message whose MSH-2 is unusable, read with the standard separators,
    so that its rejection still echoes MSH-10 and reaches the right sender."""
    data = raw.removeprefix(er7.UTF8_BOM).lstrip(b" \t\r\n")
    if not data.startswith(b"MSH"):
        return None
    # NUL never belongs in HL7 text, and PostgreSQL cannot store it in a text column.
    line = data.replace(b"\n", b"\r").split(b"\r", 1)[0].replace(b"\x00", b"").decode("latin-1")
    if len(line) < 8:  # a bare "MSH" line has no separator to split on
        return None
    # Read with the standard separators, so a "|" left inside a field would break the ACK.
    fields = [f.replace("|", "") for f in line.split(line[3])]
    msh = er7.Segment(["MSH", er7.DEFAULT_ENCODING_CHARACTERS, *fields[2:]])
    return read_header(er7.Message(er7.DEFAULT_SEPARATORS, [msh], "latin-1"))


def _read(raw: bytes, settings: Settings) -> _Reading:
    """Decode, check and parse a message without touching the database."""
    reading = _read_header_only(raw)
    if reading.rejection is not None:
        return reading
    assert reading.header is not None
    try:
        check_supported(reading.header, settings.processing_ids)
        if b"\x00" in raw:
            raise _nul_rejection(raw)
        message = er7.parse(raw, settings.fallback_charset, reading.header_line)
        reading.charset = message.charset
        assert reading.header_line is not None
        if message.msh.fields != reading.header_line[0].split(message.separators.field):
            # Decoding per MSH-18 changed the header line (non-ASCII in MSH): read it again,
            # and check it again: windows-1252 reads 0x85 as an ellipsis where latin-1 read
            # a control character that the first check stripped as whitespace.
            reading.header = read_header(message)
            check_supported(reading.header, settings.processing_ids)
        header = reading.header
        if not header.control_id:
            raise content_error("101", "MSH-10 message control id is missing", "MSH^1^10")
        reading.documents = read_documents(message, header)
    except MessageRejected as exc:
        reading.rejection = _detached(exc)
    return reading
