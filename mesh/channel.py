"""The MESH jobs: send each practice's feed in order, poll tracking, collect responses.

Sending takes each due practice (see flagging.mesh_sending for the claim) and sends the message of
each event after the last one sent, one at a time: an event counts as sent once MESH has given
its message an id. MESH unavailable (no connection, a timeout, 5xx, 429) stops that practice's
run and the same event is tried again after a backoff; MESH refusing the message stops the
practice's channel until an operator resumes it. Nothing after a failed event is ever sent
before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import requests
from mesh_client import MeshClient

from flagging import mesh_sending, mesh_tracking
from flagging.errors import FlaggingError
from flagging.transactions import Transactions
from mesh.client import MeshConfig, MeshRejected, MeshUnavailable, send
from mesh.client import connect as _connect
from mesh.responses import NotAResponse, parse_response

log = logging.getLogger(__name__)

BATCH = 200  # events per practice per run, so one busy practice does not starve the others

# Builds a message's bytes (api/itk.py render) and its Mex-Subject (api/itk.py subject).
Render = Callable[[mesh_sending.MeshTarget, mesh_sending.Outbound, str, datetime], bytes]
Subject = Callable[[mesh_sending.Outbound], str]
Connect = Callable[[MeshConfig], MeshClient]
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def send_practice(
    db: Transactions,
    practice_id: int,
    config: MeshConfig,
    render: Render,
    subject: Subject,
    *,
    connect: Connect = _connect,
    clock: Clock = _now,
    batch: int = BATCH,
) -> int:
    """Send a practice's waiting events in order; returns how many MESH accepted."""
    with db.transaction() as session:
        target = mesh_sending.claim(session, practice_id, clock())
    if target is None:
        return 0
    seq, count = target.sent_seq, 0
    try:
        client = connect(config)
    except MeshUnavailable as exc:
        _failed(db, target, seq + 1, str(exc), clock)
        return 0
    try:
        for _ in range(batch):
            try:
                with db.reading() as session:
                    outbound = mesh_sending.next_outbound(session, target, seq)
                    if outbound is None:
                        break
                    body = render(target, outbound, config.mailbox, clock())
            except (FlaggingError, ValueError) as exc:
                # A message we cannot build is an error for the operator, shown and retried
                # like a failed send: never skipped, never silent.
                _failed(db, target, seq + 1, f"cannot build the message: {exc}", clock)
                return count
            try:
                message_id = send(
                    client,
                    target.mailbox,
                    target.workflow,
                    body,
                    outbound.local_id,
                    subject(outbound),
                )
            except MeshRejected as exc:
                with db.transaction() as session:
                    mesh_sending.rejected(session, target, outbound.seq, str(exc), clock())
                log.error(
                    "MESH channel of %s stopped at event %d: %s", target.ods_code, outbound.seq, exc
                )
                return count
            except MeshUnavailable as exc:
                _failed(db, target, outbound.seq, str(exc), clock)
                return count
            with db.transaction() as session:
                if not mesh_sending.sent(session, target, outbound, message_id, clock()):
                    log.warning(
                        "MESH to %s: claim lost, another scheduler goes on", target.ods_code
                    )
                    return count
            seq, count = outbound.seq, count + 1
    finally:
        client.close()
    with db.transaction() as session:
        mesh_sending.release(session, target, seq)
    return count


def _failed(
    db: Transactions, target: mesh_sending.MeshTarget, seq: int, error: str, clock: Clock
) -> None:
    with db.transaction() as session:
        retry_at = mesh_sending.failed(session, target, seq, error, clock())
    # No patient data here: the error text comes from the network or MESH.
    log.warning(
        "MESH to %s failed at event %d, retry at %s: %s",
        target.ods_code,
        seq,
        retry_at.isoformat(timespec="seconds"),
        error,
    )


def send_due(
    db: Transactions,
    config: MeshConfig,
    render: Render,
    subject: Subject,
    *,
    connect: Connect = _connect,
    clock: Clock = _now,
    time_budget: float = 50.0,
) -> int:
    """One run of the send job: every due practice in turn, within a time budget."""
    with db.reading() as session:
        due = mesh_sending.due_channels(session, clock())
    deadline = time.monotonic() + time_budget
    total = 0
    for practice_id in due:
        if time.monotonic() > deadline:
            break
        total += send_practice(
            db, practice_id, config, render, subject, connect=connect, clock=clock
        )
    return total


def track(
    db: Transactions, config: MeshConfig, *, connect: Connect = _connect, clock: Clock = _now
) -> int:
    """Poll MESH tracking of the messages whose status may still change; returns how many
    were updated. MESH being unavailable ends the run: the next one asks again."""
    with db.reading() as session:
        pending = mesh_tracking.to_track(session)
    if not pending:
        return 0
    updated = 0
    try:
        client = connect(config)
    except MeshUnavailable as exc:
        log.warning("MESH tracking: %s", exc)
        return 0
    try:
        for message in pending:
            try:
                status = str(client.track_message(message.message_id).get("status") or "")
            except requests.HTTPError as exc:
                if exc.response is None or exc.response.status_code not in (404, 410):
                    log.warning("MESH tracking of %s: %s", message.message_id, exc)
                    break
                # MESH keeps tracking for a limited time: past it, stop asking.
                status = "not-found"
            except (requests.RequestException, OSError) as exc:
                log.warning("MESH tracking of %s: %s", message.message_id, exc)
                break
            if status:
                with db.transaction() as session:
                    mesh_tracking.tracked(session, message.id, status, clock())
                updated += 1
    finally:
        client.close()
    return updated


def collect(
    db: Transactions, config: MeshConfig, *, connect: Connect = _connect, clock: Clock = _now
) -> int:
    """Collect our inbox: each message is kept and matched (one transaction), and only then
    acknowledged to MESH, so that a crash in between collects it again rather than losing it.
    Returns how many messages were collected."""
    try:
        client = connect(config)
    except MeshUnavailable as exc:
        log.warning("MESH inbox: %s", exc)
        return 0
    collected = 0
    try:
        for message_id in client.list_messages():
            # Not `with`: leaving that block acknowledges the message to MESH, which must wait
            # until the message is committed here.
            message = client.retrieve_message(message_id)
            try:
                body = message.read()
                headers = dict(message.mex_headers())
            finally:
                message.close()
            try:
                response, problem = parse_response(body), ""
            except NotAResponse as exc:
                response, problem = None, str(exc)
            with db.transaction() as session:
                outcome = mesh_tracking.record_inbound(
                    session,
                    message_id=message_id,
                    sender=str(headers.get("from") or ""),
                    workflow=str(headers.get("workflowid") or ""),
                    local_id=str(headers.get("localid") or ""),
                    body=body,
                    response=response,
                    problem=problem,
                    now=clock(),
                )
            client.acknowledge_message(message_id)
            if outcome not in ("matched", "duplicate"):
                log.warning("MESH inbox message %s: %s %s", message_id, outcome, problem)
            collected += 1
    except (requests.RequestException, OSError) as exc:
        log.warning("MESH inbox: %s", exc)
    finally:
        client.close()
    return collected
