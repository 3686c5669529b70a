"""Recording every frame received: its entry among the inbound messages, and resends.

Part of the receive use case (flagging/receive.py), on its hot path: plain SQL on the
transaction's connection (storage/rawsql.py says why), lengths from the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Required, TypedDict, Unpack

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


# The first accepted message for a sender and MSH-10 claims the key; a second one claims
# nothing (and is then a resend or AE 205, flagging/receive.py).
_CLAIM = _INSERT_MESSAGE + " ON CONFLICT (sender_id, control_key) DO NOTHING"


class Answer(TypedDict, total=False):
    """How a receipt was answered, as `record_message` stores it (ack_code, ack required)."""

    ack_code: Required[str]
    ack: Required[bytes | None]
    sender_id: int | None
    problem: Problem | None
    duplicate_of: AcceptedMessage | None
    # Given for an oversize message, of which only the first bytes are kept.
    size: int | None


def claim_message(raw: Raw, receipt: Receipt, *, ack: bytes | None, sender_id: int) -> int | None:
    """Store an accepted receipt and return its id, unless the sender's MSH-10 was already
    accepted (then None, and nothing stored): one statement where looking the MSH-10 up
    first and then inserting took two round trips for every new message."""
    answer: Answer = {"ack_code": "AA", "ack": ack, "sender_id": sender_id}
    params = _params(raw, receipt, MessageOutcome.ACCEPTED, answer)
    if raw.postgres:
        row = raw.one(_CLAIM + " RETURNING id", params)
        return int(row[0]) if row is not None else None
    cursor = raw.execute(_CLAIM, params)
    return int(cursor.lastrowid) if cursor.rowcount == 1 else None


def record_message(
    raw: Raw, receipt: Receipt, outcome: MessageOutcome, **answer: Unpack[Answer]
) -> int:
    """Store a receipt with its outcome and the ACK that answers it; return its id."""
    return raw.insert(_INSERT_MESSAGE, _params(raw, receipt, outcome, answer))


def _params(raw: Raw, receipt: Receipt, outcome: MessageOutcome, answer: Answer) -> dict[str, Any]:
    ack_code, ack = answer["ack_code"], answer["ack"]
    sender_id, problem = answer.get("sender_id"), answer.get("problem")
    duplicate_of, size = answer.get("duplicate_of"), answer.get("size")
    accepted = outcome is MessageOutcome.ACCEPTED
    return {
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
