"""The push job: deliver each practice's feed, in order, to its MLLP endpoint.

One run takes each due practice (see flagging.push_queue for the claim), opens one connection and
sends the annotated message of each event after the last one delivered, waiting for its ACK:
MSA-1 must be AA or CA and MSA-2 the MSH-10 sent. Anything else (no connection, a timeout, AE,
AR, a wrong MSA-2) stops that practice's run; the same event is tried again after a backoff,
and nothing after it is sent before it succeeds.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flagging import push_queue, telemetry
from flagging.transactions import Transactions
from hl7 import er7
from hl7.annotate import annotate
from hl7.client import MLLPClient
from hl7.errors import HL7Error

log = logging.getLogger(__name__)

ACCEPTED = ("AA", "CA")
BATCH = 200  # events per practice per run, so one busy practice does not starve the others


class PushRejected(HL7Error):
    """The practice's system did not accept a delivery."""


@dataclass(frozen=True)
class PushSettings:
    # Seconds to connect, and to wait for each acknowledgement.
    timeout: float = 30.0
    fallback_charset: str = "windows-1252"
    batch: int = BATCH
    # For practices pushed to over TLS: our CAs and client certificate (hl7.client.tls_context).
    # None: the system's CAs and no client certificate.
    ssl_context: ssl.SSLContext | None = None


def check_ack(ack: bytes, control_id: str, fallback_charset: str) -> str:
    """The MSA-1 code of an ACK that accepts the message `control_id`; raises PushRejected."""
    try:
        message = er7.parse(ack, fallback_charset)
    except HL7Error as exc:
        raise PushRejected(f"unreadable acknowledgement: {exc}") from None
    msa = message.first("MSA")
    if msa is None:
        raise PushRejected("the acknowledgement has no MSA segment")
    code = message.component(msa.field(1), 1).upper()
    acked = message.unescape(msa.field(2).strip())
    if code not in ACCEPTED:
        err = message.first("ERR")
        detail = message.unescape(msa.field(3).strip()) or (
            message.unescape(err.field(8).strip()) if err is not None else ""
        )
        raise PushRejected(f"answered {code or '(no MSA-1)'}" + (f": {detail}" if detail else ""))
    if acked != control_id:
        raise PushRejected(f"MSA-2 {acked!r} does not acknowledge MSH-10 {control_id!r}")
    return code


ClientFactory = Callable[[str, int, float, ssl.SSLContext | None], MLLPClient]


def _connect(host: str, port: int, timeout: float, context: ssl.SSLContext | None) -> MLLPClient:
    return MLLPClient(host, port, timeout=timeout, ssl_context=context)


def deliver_practice(
    db: Transactions,
    practice_id: int,
    settings: PushSettings,
    *,
    connect: ClientFactory = _connect,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Deliver a practice's waiting events in order; returns how many were acknowledged."""
    with db.transaction() as session:
        target = push_queue.claim(session, practice_id, clock())
    if target is None:
        return 0
    seq = target.push_seq
    sent = 0
    context = None
    if target.tls:
        context = settings.ssl_context or ssl.create_default_context()
    try:
        client = connect(target.host, target.port, settings.timeout, context)
    except OSError as exc:  # ssl.SSLError too: a failed handshake
        _failed(db, target, seq + 1, f"cannot connect to {target.host}:{target.port}: {exc}", clock)
        return 0
    with client:
        for _ in range(settings.batch):
            with db.reading() as session:
                delivery = push_queue.next_delivery(session, target, seq)
            if delivery is None:
                break
            message = annotate(
                delivery.raw, delivery.annotation, fallback_charset=settings.fallback_charset
            )
            try:
                ack = client.send(message)
                check_ack(ack, delivery.annotation.control_id, settings.fallback_charset)
            except (OSError, HL7Error) as exc:
                _failed(db, target, delivery.seq, str(exc) or type(exc).__name__, clock)
                return sent
            with db.transaction() as session:
                if not push_queue.delivered(session, target, delivery.seq, clock()):
                    log.warning(
                        "push to %s: claim lost, another scheduler goes on", target.ods_code
                    )
                    return sent
            seq, sent = delivery.seq, sent + 1
    with db.transaction() as session:
        push_queue.release(session, target, seq)
    return sent


def _failed(
    db: Transactions,
    target: push_queue.PushTarget,
    seq: int,
    error: str,
    clock: Callable[[], datetime],
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
    db: Transactions,
    settings: PushSettings,
    *,
    connect: ClientFactory = _connect,
    time_budget: float = 50.0,
) -> int:
    """One run of the job: every due practice in turn, within a time budget."""
    with db.reading() as session:
        due = push_queue.due_practices(session, datetime.now(UTC))
    deadline = time.monotonic() + time_budget
    delivered = 0
    for practice_id in due:
        if time.monotonic() > deadline:
            break
        delivered += deliver_practice(db, practice_id, settings, connect=connect)
    return delivered
