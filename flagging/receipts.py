"""Recording every frame received: its entry among the inbound messages, and resends.

Part of the receive use case (flagging/receive.py), on its hot path: plain SQL on the
transaction's connection (storage/rawsql.py says why), lengths from the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flagging import store
from flagging.models import InboundMessage, MessageOutcome
from flagging.received import Problem, Receipt
from flagging.storage.rawsql import Raw
from flagging.store import bounded_key


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class AcceptedMessage:
    """What a resend is compared with: the first accepted message for a sender and MSH-10."""

    id: int
    content_hash: str
    ack: bytes | None


_FIND_ACCEPTED = (
    "SELECT id, content_hash, ack FROM inbound_messages"
    " WHERE sender_id = :sender AND control_key = :control"
)


_message_cut = store.Cut(InboundMessage)
# ERR-8 is Text in the model (no length): beyond this it is noise an operator cannot use.
ERROR_TEXT_LIMIT = 2000


def _column(value: str, column: str) -> str:
    """A display column's value: bounded as the model says, and without NUL, which
    PostgreSQL text refuses (the raw bytes keep what was sent)."""
    return _message_cut(value.replace("\x00", ""), column)


def find_accepted(raw: Raw, sender_id: int, control_id: str) -> AcceptedMessage | None:
    row = raw.one(_FIND_ACCEPTED, {"sender": sender_id, "control": bounded_key(control_id)})
    if row is None:
        return None
    return AcceptedMessage(row[0], row[1], bytes(row[2]) if row[2] is not None else None)


_INSERT_MESSAGE = (
    "INSERT INTO inbound_messages (received_at, transport, peer, raw, size, content_hash,"
    " sender_id, sending_facility, sending_application, control_id, control_key, message_type,"
    " version, outcome, ack_code, ack, error_code, error_location, error_text, duplicate_of_id)"
    " VALUES (:received_at, :transport, :peer, :raw, :size, :content_hash, :sender_id,"
    " :sending_facility, :sending_application, :control_id, :control_key, :message_type,"
    " :version, :outcome, :ack_code, :ack, :error_code, :error_location, :error_text,"
    " :duplicate_of_id)"
)


def record_message(
    raw: Raw,
    receipt: Receipt,
    outcome: MessageOutcome,
    *,
    ack_code: str,
    ack: bytes | None,
    sender_id: int | None = None,
    problem: Problem | None = None,
    duplicate_of: AcceptedMessage | None = None,
    size: int | None = None,
) -> int:
    """Store a receipt with its outcome and the ACK that answers it; return its id.

    `size` is given for an oversize message, of which only the first bytes are kept.
    """
    accepted = outcome is MessageOutcome.ACCEPTED
    params = {
        "received_at": raw.timestamp(receipt.received_at),
        "transport": receipt.transport,
        "peer": _column(receipt.peer, "peer"),
        # A resend's bytes are those of the message it repeats: keep one copy.
        "raw": None if duplicate_of else receipt.raw,
        "size": len(receipt.raw) if size is None else size,
        "content_hash": duplicate_of.content_hash if duplicate_of else content_hash(receipt.raw),
        "sender_id": sender_id,
        "sending_facility": _column(receipt.sending_facility, "sending_facility"),
        "sending_application": _column(receipt.sending_application, "sending_application"),
        "control_id": _column(receipt.control_id, "control_id"),
        # The first accepted message for a sender and MSH-10 claims the key (unique index).
        "control_key": bounded_key(receipt.control_id) if accepted and receipt.control_id else None,
        "message_type": _column(receipt.message_type, "message_type"),
        "version": _column(receipt.version, "version"),
        "outcome": outcome.value,
        "ack_code": ack_code,
        "ack": ack,
        "error_code": problem.code if problem else "",
        "error_location": _column(problem.location, "error_location") if problem else "",
        "error_text": problem.text.replace("\x00", "")[:ERROR_TEXT_LIMIT] if problem else "",
        "duplicate_of_id": duplicate_of.id if duplicate_of else None,
    }
    return raw.insert(_INSERT_MESSAGE, params)
