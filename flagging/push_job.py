"""The push job: deliver each practice's feed, in order, to the practice's own endpoint.

One run takes each due practice (flagging.push_queue claims it), opens one link and sends the
annotated message of each event after the last one delivered. A delivery the practice did not
take (no connection, a timeout, a refusal) stops that practice's run; the same event is tried
again after a backoff, and nothing after it is sent before it succeeds.

The domain owns the order, the claim and the transactions (each short: a run talks to the
network between them, and must hold no lock meanwhile); the edge owns the wire: hl7.push opens
an MLLP link and checks each acknowledgement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from flagging import push_queue, telemetry
from flagging.errors import FlaggingError
from flagging.push_queue import Delivery, PushTarget
from flagging.transactions import Transactions

log = logging.getLogger(__name__)

BATCH = 200  # events per practice per run, so one busy practice does not starve the others


class DeliveryFailed(FlaggingError):
    """The practice's endpoint could not be reached, or did not accept a delivery."""


class Link(Protocol):
    """One open connection to a practice's endpoint."""

    def send(self, delivery: Delivery) -> None:
        """Deliver one event and wait for the practice to accept it; raises DeliveryFailed."""

    def close(self) -> None: ...


# Opens a link to a practice's endpoint; raises DeliveryFailed when it cannot.
Opener = Callable[[PushTarget], Link]


def _now() -> datetime:
    return datetime.now(UTC)


def deliver_practice(
    db: Transactions,
    practice_id: int,
    open_link: Opener,
    *,
    batch: int = BATCH,
    clock: Callable[[], datetime] = _now,
) -> int:
    """Deliver a practice's waiting events in order; returns how many were accepted."""
    with db.transaction() as session:
        target = push_queue.claim(session, practice_id, clock())
    if target is None:
        return 0
    seq, sent = target.push_seq, 0
    try:
        link = open_link(target)
    except DeliveryFailed as exc:
        _failed(db, target, seq + 1, str(exc), clock)
        return 0
    try:
        for _ in range(batch):
            with db.reading() as session:
                delivery = push_queue.next_delivery(session, target, seq)
            if delivery is None:
                break
            try:
                link.send(delivery)
            except DeliveryFailed as exc:
                _failed(db, target, delivery.seq, str(exc), clock)
                return sent
            with db.transaction() as session:
                if not push_queue.delivered(session, target, delivery.seq, clock()):
                    log.warning(
                        "push to %s: claim lost, another scheduler goes on", target.ods_code
                    )
                    return sent
            seq, sent = delivery.seq, sent + 1
    finally:
        link.close()
    with db.transaction() as session:
        push_queue.release(session, target, seq)
    return sent


def _failed(
    db: Transactions, target: PushTarget, seq: int, error: str, clock: Callable[[], datetime]
) -> None:
    with db.transaction() as session:
        retry_at = push_queue.failed(session, target, seq, error, clock())
    telemetry.push_failed(target.ods_code)
    # No patient data here: the error text comes from the network or the receiver's ACK.
    log.warning(
        "push to %s failed at event %d, retry at %s: %s",
        target.ods_code,
        seq,
        retry_at.isoformat(timespec="seconds"),
        error,
    )


def push_due(
    db: Transactions, open_link: Opener, *, batch: int = BATCH, time_budget: float = 50.0
) -> int:
    """One run of the job: every due practice in turn, within a time budget."""
    with db.reading() as session:
        due = push_queue.due_practices(session, _now())
    deadline = time.monotonic() + time_budget
    delivered = 0
    for practice_id in due:
        if time.monotonic() > deadline:
            break
        delivered += deliver_practice(db, practice_id, open_link, batch=batch)
    return delivered
