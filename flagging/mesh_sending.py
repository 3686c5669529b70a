"""Sending a practice's feed over MESH: what to send, in what order, and recording what MESH said.

Each feed event of a practice on MESH becomes one MESH message, sent strictly in feed order:
`sent_seq` (the last event MESH accepted) moves forward one event at a time, only after MESH
has given the message its id, and never past an event that failed. A send that fails for a
reason that may pass (no connection, a 5xx, throttling) is retried with the push channel's
backoff for as long as it takes; a message that MESH refuses for the practice (an unknown
mailbox, a workflow the mailbox may not receive) stops the practice's channel with the error
shown to operators, until they fix the cause and resume it.

The claim works as for the MLLP push (flagging.push_queue): a lease in `retry_at`, taken in a
short transaction of its own so that no row lock is held while talking to MESH, and each send
is recorded only if `sent_seq` is still what the claimant read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flagging.feed import next_event
from flagging.gp_reads import DocumentView, practice_document
from flagging.gp_tokens import PracticeAccess
from flagging.models import (
    DocumentStatus,
    DocumentVersion,
    EventType,
    MeshChannel,
    MeshMessage,
    Practice,
    Visibility,
)
from flagging.push_queue import ERROR_LENGTH, LEASE, control_id, due, retry_delay, retry_due

# Names the MessageHeader ids of our messages: the same event always gets the same id.
HEADER_NAMESPACE = uuid.UUID("0b6f0c57-59a4-4f0e-9d0c-6e0d7c1c3a52")


# Sending --------------------------------------------------------------------------------------


def due_channels(session: Session, now: datetime) -> list[int]:
    """Practices on MESH with events not yet sent, not stopped, and no retry or claim pending."""
    return due(
        session,
        MeshChannel.practice_id,
        MeshChannel.retry_at,
        now,
        MeshChannel.practice_id == Practice.id,
        MeshChannel.stopped_at.is_(None),
        MeshChannel.sent_seq < Practice.feed_seq,
    )


@dataclass(frozen=True)
class MeshTarget:
    practice_id: int
    ods_code: str
    practice_name: str
    mailbox: str
    workflow: str
    sent_seq: int  # the last event sent


def claim(session: Session, practice_id: int, now: datetime) -> MeshTarget | None:
    """Take the practice's channel for one run of sends, or None when another scheduler has it,
    its retry time has not come, or it is stopped."""
    claimed = session.execute(
        update(MeshChannel)
        .where(
            MeshChannel.practice_id == practice_id,
            MeshChannel.stopped_at.is_(None),
            retry_due(MeshChannel.retry_at, now),
        )
        .values(retry_at=now + LEASE)
        .returning(MeshChannel.mailbox, MeshChannel.workflow, MeshChannel.sent_seq)
    ).first()
    if claimed is None:
        return None
    practice = session.get(Practice, practice_id)
    assert practice is not None
    return MeshTarget(
        practice_id, practice.ods_code, practice.name, claimed[0], claimed[1], int(claimed[2])
    )


def local_id(ods_code: str, seq: int) -> str:
    """Mex-LocalID of the message for an event: the event's id as the practice knows it (the
    MSH-10 the MLLP push gives it too), the same on every resend."""
    return control_id(ods_code, seq)


def header_id(ods_code: str, seq: int) -> str:
    """The MessageHeader id of the message for an event, the same on every resend, so that the
    practice's system can recognise a resend (ITK3 20007, duplicate message)."""
    return str(uuid.uuid5(HEADER_NAMESPACE, f"{ods_code}|{seq}"))


@dataclass(frozen=True)
class Outbound:
    """One feed event to send: which event, the document as the practice sees it, and whether
    the event itself said "do not show"."""

    seq: int
    event_id: int
    event_type: str
    event_visibility: str
    created_at: datetime
    local_id: str
    header_id: str
    view: DocumentView

    @property
    def nopat(self) -> bool:
        """Whether the message must carry R + NOPAT: the event's visibility, the document's
        visibility when we send, or a withdrawal says the patient must not see it. The more
        restrictive wins, so that a backlog never shows what has since been withheld."""
        document = self.view.document
        return (
            self.event_visibility != Visibility.VISIBLE
            or self.view.version.visibility != Visibility.VISIBLE
            or self.event_type == EventType.WITHDRAWN
            or document.status == DocumentStatus.WITHDRAWN
        )


def next_outbound(session: Session, target: MeshTarget, after: int) -> Outbound | None:
    """The event after `after` in the practice's feed, with its document, or None at the end."""
    event = next_event(session, target.practice_id, after)
    if event is None:
        return None
    # The version the event is about, as the practice's own reads show it (no token: the
    # channel itself is the practice's right to its documents).
    access = PracticeAccess(0, target.practice_id, target.ods_code)
    version = session.get(DocumentVersion, event.version_id)
    assert version is not None
    view = practice_document(session, access, event.document_id, version.version)
    return Outbound(
        seq=event.seq,
        event_id=event.id,
        event_type=event.type,
        event_visibility=event.visibility,
        created_at=event.created_at,
        local_id=local_id(target.ods_code, event.seq),
        header_id=header_id(target.ods_code, event.seq),
        view=view,
    )


def sent(
    session: Session, target: MeshTarget, outbound: Outbound, message_id: str, now: datetime
) -> bool:
    """Record a message MESH accepted and extend the claim; False if the claim was lost (the
    lease ran out and another scheduler took over), in which case the caller stops."""
    moved = session.execute(
        update(MeshChannel)
        .where(
            MeshChannel.practice_id == target.practice_id,
            MeshChannel.sent_seq == outbound.seq - 1,
        )
        .values(sent_seq=outbound.seq, failures=0, error="", retry_at=now + LEASE)
        .returning(MeshChannel.practice_id)
    ).first()
    if moved is None:
        return False
    session.add(
        MeshMessage(
            practice_id=target.practice_id,
            seq=outbound.seq,
            event_id=outbound.event_id,
            local_id=outbound.local_id,
            header_id=outbound.header_id,
            message_id=message_id,
            sent_at=now,
            tracking="",
            ack_kind="",
            ack_code="",
            ack_detail="",
        )
    )
    session.flush()
    return True


def release(session: Session, target: MeshTarget, seq: int) -> None:
    """End a run that sent everything it tried: the channel is due again at once."""
    session.execute(
        update(MeshChannel)
        .where(MeshChannel.practice_id == target.practice_id, MeshChannel.sent_seq == seq)
        .values(retry_at=None)
    )


def failed(session: Session, target: MeshTarget, seq: int, error: str, now: datetime) -> datetime:
    """Record a send of event `seq` that failed for a reason that may pass: it is retried
    later, never skipped. Returns the time of the next attempt."""
    failures = session.execute(
        select(MeshChannel.failures).where(MeshChannel.practice_id == target.practice_id)
    ).scalar_one()
    retry_at = now + retry_delay(failures + 1)
    session.execute(
        update(MeshChannel)
        .where(MeshChannel.practice_id == target.practice_id)
        .values(
            failures=MeshChannel.failures + 1,
            error=f"event {seq}: {error}"[:ERROR_LENGTH],
            retry_at=retry_at,
        )
    )
    return retry_at


def rejected(session: Session, target: MeshTarget, seq: int, error: str, now: datetime) -> None:
    """MESH refused the message of event `seq` for this practice: stop the channel (nothing
    after it may overtake it) and say why, until an operator resumes it."""
    session.execute(
        update(MeshChannel)
        .where(MeshChannel.practice_id == target.practice_id)
        .values(
            failures=MeshChannel.failures + 1,
            error=f"stopped at event {seq}: MESH rejected the message: {error}"[:ERROR_LENGTH],
            retry_at=None,
            stopped_at=now,
        )
    )
