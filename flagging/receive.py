"""Receiving a message: who sent it, whether it is a resend, its outcome, what is stored.

The edge (hl7/handler.py) reads a frame into an `Arrival`: the receipt, the documents it
carries or the edge's own reason to refuse it, and the ACK it would send for that. `receive`
decides the rest inside the transaction its entry point owns (flagging/receiver.py runs it in
a group commit, or in the SQLite writer process, which is why `Arrival` is plain data):
- a sender must be registered, and be the one an HTTP token proved (else AR 204);
- the same sender and MSH-10 with the same bytes is a resend: the first answer again, nothing
  stored twice; with other bytes it is AE 205;
- an accepted message's documents are stored (flagging/ingest.py) and a quarantined entry with
  the same MSH-10 is closed as superseded by it; a reprocessed message's entry says what it
  became.
A refusal decided here comes back in `Verdict.refusal` with nothing written: the edge builds
its ACK (HL7 is the edge's business) and hands the arrival back with that refusal and ACK, and
`receive` then records it. Only refused messages pay that second transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flagging import audit
from flagging.ingest import Screened, ask_lookups, store_document
from flagging.models import InboundMessage, MessageOutcome, max_length
from flagging.organisations import SenderPolicy, ask_sender_policy, sender_policy
from flagging.receipts import (
    AcceptedMessage,
    claim_message,
    content_hash,
    find_accepted,
    record_message,
)
from flagging.received import DocumentInput, Problem, Receipt
from flagging.screening import ask_active_rules
from flagging.spans import find_base64, locate
from flagging.storage.rawsql import Raw

# The ERR-3 codes (HL7 table 0357) of the refusals decided here.
UNKNOWN_KEY = "204"
DUPLICATE_KEY = "205"

_MARK_REPROCESSED = (
    "UPDATE inbound_messages SET outcome = :outcome, reprocessed_as_id = :as WHERE id = :id"
)
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
_ERROR_LOCATION = max_length(InboundMessage, "error_location")


@dataclass(frozen=True)
class Refusal:
    """Why a message is not accepted: AR (resend later) or AE (fix the content), with ERR."""

    ack_code: str
    problem: Problem


@dataclass(frozen=True)
class Arrival:
    """One message as the edge read it: all that the transaction needs, and nothing else."""

    receipt: Receipt
    header_read: bool  # MSH could be read: the sender it names is looked up
    documents: list[DocumentInput] | None = None
    refusal: Refusal | None = None
    ack: bytes = b""  # the answer to `refusal`, or the AA when the message is accepted
    screened: list[Screened | None] = field(default_factory=list)  # per document
    size: int | None = None  # an oversize message's, of which only the first bytes are kept
    replaces: int | None = None  # the quarantined or rejected message this reprocesses
    authenticated_sender: int | None = None  # the sender an HTTP bearer token proved
    reprocessed_by: str = ""  # who asked for a reprocess (the audit trail's actor)

    def with_spans(self) -> Arrival:
        """The arrival with each document's text (or rendition) as spans of its message where it
        is made of them (flagging/spans.py): stored so, and half the bytes to the writer."""
        if self.refusal is not None or not self.documents:
            return self
        raw = self.receipt.raw
        documents = []
        for doc in self.documents:
            if doc.content_base64 is not None:
                spans = find_base64(raw, doc.content_base64)
                doc = doc.decoded() if spans is None else replace(doc, content_base64=None)
            else:
                spans = locate(raw, doc.content, doc.content_type) if doc.content else None
            documents.append(
                doc if spans is None else replace(doc, content=None, content_spans=spans)
            )
        return replace(self, documents=documents)


@dataclass(frozen=True)
class Verdict:
    """What became of a message: the ACK code and bytes, the entry it was recorded as."""

    code: str
    ack: bytes
    message_id: int | None = None
    outcome: str = ""
    sender: str = ""  # the registered sender's MSH-4 ('' if none), for the metrics
    refusal: Refusal | None = None  # decided here, not yet recorded: the edge answers it


def receive(raw: Raw, arrival: Arrival) -> Verdict:
    """Decide sender, resend and outcome for one message, and record it; never commits."""
    receipt, refusal = arrival.receipt, arrival.refusal
    sender = None
    if arrival.header_read:
        _ask_ahead(raw, arrival, None)
        sender = sender_policy(raw, receipt.sending_facility, receipt.sending_application)
    label = receipt.sending_facility.upper() if sender else ""
    if refusal is None:
        refusal = _check_sender(arrival, sender)
        if refusal is not None:
            return Verdict(refusal.ack_code, b"", refusal=refusal)
        assert sender is not None
        _ask_ahead(raw, arrival, sender)
        # Stored as accepted at once unless this sender's MSH-10 was accepted before: a new
        # message (nearly all of them) pays one statement, not a lookup and then an insert.
        message_id = claim_message(raw, receipt, ack=arrival.ack, sender_id=sender.id)
        if message_id is not None:
            return _accept(raw, arrival, sender, label, message_id)
        refusal, previous = _check_resend(raw, arrival, sender)
        if refusal is not None:
            return Verdict(refusal.ack_code, b"", refusal=refusal)
        if previous is not None:
            return _record_resend(raw, arrival, previous, sender.id, label)
        # The first went away between the two statements (retention): store this one.
        return _accept(raw, arrival, sender, label, None)
    return _record_refusal(raw, arrival, refusal, sender, label)


def _ask_ahead(raw: Raw, arrival: Arrival, sender: SenderPolicy | None) -> None:
    """On PostgreSQL, the reads an accepted message will need, sent ahead (Raw.ahead) so that
    they share round trips: before the sender is known, with its lookup (the sender, the
    rules' fingerprint, the practices); then with the receipt's claim (review windows, and
    the thread of a message's only document)."""
    if arrival.refusal is not None or not arrival.documents:
        return
    if sender is None:
        ask_active_rules(raw)
        ask_sender_policy(
            raw, arrival.receipt.sending_facility, arrival.receipt.sending_application
        )
    only = len(arrival.documents) == 1
    for doc in arrival.documents:
        ask_lookups(raw, doc, sender, thread=only)


def _check_sender(arrival: Arrival, sender: SenderPolicy | None) -> Refusal | None:
    """The refusals the sender's registration tells."""
    receipt = arrival.receipt
    if sender is None:
        return Refusal(
            "AR",
            Problem(
                UNKNOWN_KEY,
                f"sender {receipt.sending_facility or '(empty MSH-4)'} is not registered "
                "with this service",
                "MSH^1^4",
            ),
        )
    if arrival.authenticated_sender is not None and sender.id != arrival.authenticated_sender:
        return Refusal(
            "AR",
            Problem(
                UNKNOWN_KEY,
                "MSH-4 names a sender other than the one this token belongs to",
                "MSH^1^4",
            ),
        )
    return None


def _check_resend(
    raw: Raw, arrival: Arrival, sender: SenderPolicy
) -> tuple[Refusal | None, AcceptedMessage | None]:
    """For a message whose MSH-10 this sender used before: the message it resends, or AE 205
    if its bytes differ."""
    receipt = arrival.receipt
    previous = find_accepted(raw, sender.id, receipt.control_id)
    if previous is not None and previous.content_hash != content_hash(receipt.raw):
        return Refusal(
            "AE",
            Problem(
                DUPLICATE_KEY,
                f"MSH-10 {receipt.control_id} was already used by this sender for a "
                "different message",
                "MSH^1^10",
            ),
        ), None
    return None, previous


def _record_refusal(
    raw: Raw, arrival: Arrival, refusal: Refusal, sender: SenderPolicy | None, label: str
) -> Verdict:
    code, replaces = refusal.ack_code, arrival.replaces
    outcome = MessageOutcome.QUARANTINED if code == "AE" else MessageOutcome.REJECTED
    sender_id = sender.id if sender else None
    if replaces is not None:
        # A reprocess that failed again: the entry it came from says why, now; no second
        # entry for the same bytes.
        _record_again(raw, replaces, outcome, code, arrival.ack, refusal.problem, sender_id)
        _audit_reprocess(raw, replaces, replaces, arrival.reprocessed_by, code)
        return Verdict(code, arrival.ack, replaces, outcome.value, label)
    message_id = record_message(
        raw,
        arrival.receipt,
        outcome,
        ack_code=code,
        ack=arrival.ack,
        sender_id=sender_id,
        problem=refusal.problem,
        size=arrival.size,
    )
    audit.message_received(
        raw,
        arrival.receipt,
        outcome=outcome,
        ack_code=code,
        message_id=message_id,
        registered=sender is not None,
    )
    return Verdict(code, arrival.ack, message_id, outcome.value, label)


def _record_resend(
    raw: Raw, arrival: Arrival, previous: AcceptedMessage, sender_id: int, label: str
) -> Verdict:
    """A resend: the same answer as the first time, nothing processed again."""
    ack = previous.ack or arrival.ack
    message_id = record_message(
        raw,
        arrival.receipt,
        MessageOutcome.DUPLICATE,
        ack_code="AA",
        ack=ack,
        sender_id=sender_id,
        duplicate_of=previous,
    )
    _mark_reprocessed(raw, arrival, message_id)
    audit.message_received(
        raw,
        arrival.receipt,
        outcome=MessageOutcome.DUPLICATE,
        ack_code="AA",
        message_id=message_id,
        registered=True,
    )
    return Verdict("AA", ack, message_id, MessageOutcome.DUPLICATE.value, label)


def _accept(
    raw: Raw, arrival: Arrival, sender: SenderPolicy, label: str, message_id: int | None
) -> Verdict:
    """Store an accepted message's documents (`message_id`: its receipt, if stored yet)."""
    receipt, documents = arrival.receipt, arrival.documents
    assert documents is not None
    if message_id is None:
        message_id = record_message(
            raw,
            receipt,
            MessageOutcome.ACCEPTED,
            ack_code="AA",
            ack=arrival.ack,
            sender_id=sender.id,
        )
    if arrival.replaces is None and receipt.control_id:
        # A corrected resend (the MSH-10 of a quarantined message) closes that entry as
        # superseded by this one. Sent before the documents, so that on PostgreSQL its
        # answer comes with theirs (Raw.end_unit).
        raw.execute(
            _SUPERSEDE, {"by": message_id, "sender": sender.id, "control": receipt.control_id}
        )
    document_ids = [
        store_document(
            raw,
            sender=sender,
            message_id=message_id,
            doc=doc,
            message=receipt.raw,
            now=receipt.received_at,
            screened=screened,
        )
        for doc, screened in zip(documents, arrival.screened, strict=True)
    ]
    _mark_reprocessed(raw, arrival, message_id)
    audit.message_received(
        raw,
        receipt,
        outcome=MessageOutcome.ACCEPTED,
        ack_code="AA",
        message_id=message_id,
        registered=True,
        documents=documents,
        document_ids=document_ids,
    )
    return Verdict("AA", arrival.ack, message_id, MessageOutcome.ACCEPTED.value, label)


def record_unanswered(
    raw: Raw, receipt: Receipt, problem: Problem, *, ack: bytes | None, size: int | None = None
) -> int:
    """Keep a frame that was not processed: one that failed unexpectedly (answered AR with
    `ack`) or one the sender abandoned (`ack` None: it gets no answer), so nothing is lost."""
    outcome = MessageOutcome.REJECTED if ack is not None else MessageOutcome.TRUNCATED
    message_id = record_message(
        raw,
        receipt,
        outcome,
        ack_code="AR" if ack is not None else "",
        ack=ack,
        problem=problem,
        size=size,
    )
    if ack is not None:
        audit.message_received(
            raw, receipt, outcome="rejected", ack_code="AR", message_id=message_id, registered=False
        )
    return message_id


def _record_again(
    raw: Raw,
    message_id: int,
    outcome: MessageOutcome,
    ack_code: str,
    ack: bytes,
    problem: Problem,
    sender_id: int | None,
) -> None:
    raw.execute(
        _RECORD_AGAIN,
        {
            "id": message_id,
            "outcome": outcome.value,
            "ack_code": ack_code,
            "ack": ack,
            "error_code": problem.code,
            "error_location": problem.location[:_ERROR_LOCATION],
            "error_text": problem.text,
            "sender_id": sender_id,
        },
    )


def _mark_reprocessed(raw: Raw, arrival: Arrival, message_id: int) -> None:
    replaces = arrival.replaces
    if replaces is not None:
        raw.execute(
            _MARK_REPROCESSED,
            {"id": replaces, "as": message_id, "outcome": MessageOutcome.REPROCESSED.value},
        )
        _audit_reprocess(raw, replaces, message_id, arrival.reprocessed_by, "AA")


def _audit_reprocess(raw: Raw, replaces: int, message_id: int, actor: str, ack_code: str) -> None:
    audit.defer(
        raw,
        actor=actor or audit.CLI,
        action=audit.Action.MESSAGE_REPROCESSED,
        outcome=ack_code,
        message_id=replaces,
        detail={"as": message_id},
    )


@dataclass(frozen=True)
class Receive:
    """`receive` as a unit of work for a group commit; picklable, for the writer process."""

    arrival: Arrival

    def __call__(self, raw: Raw) -> Verdict:
        return receive(raw, self.arrival)
