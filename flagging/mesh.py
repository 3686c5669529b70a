"""Delivery of a practice's feed over MESH: what to send, in what order, and what came back.

Each feed event of a practice on MESH becomes one MESH message, sent strictly in feed order:
`sent_seq` (the last event MESH accepted) moves forward one event at a time, only after MESH
has given the message its id, and never past an event that failed. A send that fails for a
reason that may pass (no connection, a 5xx, throttling) is retried with the push channel's
backoff for as long as it takes; a message that MESH refuses for the practice (an unknown
mailbox, a workflow the mailbox may not receive) stops the practice's channel with the error
shown to operators, until they fix the cause and resume it.

The claim works as for the MLLP push (flagging.push_queue): a lease in `retry_at`, taken in a short
transaction of its own so that no row lock is held while talking to MESH, and each send is
recorded only if `sent_seq` is still what the claimant read.

Afterwards MESH tracking (accepted, acknowledged, errors) is polled per message, and the ITK3
responses the practice's system sends to our own mailbox are matched to the message they
answer, so that operators see, per document, that the practice filed it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from flagging.errors import InvalidInput
from flagging.gp_reads import DocumentView, practice_document
from flagging.gp_tokens import PracticeAccess
from flagging.models import (
    DocumentStatus,
    DocumentVersion,
    EventType,
    FeedEvent,
    MeshChannel,
    MeshInbound,
    MeshMessage,
    Practice,
    Visibility,
)
from flagging.organisations import get_practice
from flagging.push_queue import ERROR_LENGTH, LEASE, control_id, retry_delay

# GP Connect Send Document's MESH workflow, which GP system suppliers already collect from
# practices' mailboxes; a practice can be given another (e.g. TOC_FHIR_IP_DISCH).
DEFAULT_WORKFLOW = "GPFED_CONSULT_REPORT"
# MESH mailbox ids are short upper-case codes (e.g. A81001OT01); workflow ids likewise with _.
MAILBOX = re.compile(r"^[A-Z0-9]{1,20}$")
WORKFLOW = re.compile(r"^[A-Z0-9_]{1,40}$")
# Tracking statuses after which MESH has nothing more to say about a message.
FINAL_TRACKING = ("acknowledged", "error", "expired", "undeliverable", "not-found")
# Names the MessageHeader ids of our messages: the same event always gets the same id.
HEADER_NAMESPACE = uuid.UUID("0b6f0c57-59a4-4f0e-9d0c-6e0d7c1c3a52")


# Practices' MESH settings -------------------------------------------------------------------


def configure_channel(
    session: Session,
    ods_code: str,
    mailbox: str,
    *,
    workflow: str | None = None,
    send_from: int | None = None,
) -> MeshChannel | None:
    """Put a practice on MESH (or change its mailbox or workflow); an empty mailbox takes it
    off. Setting the channel again resumes one that a rejection stopped.

    `send_from` counts the events up to N as already sent (for a practice that polled them);
    it only moves forward, so no event is skipped below what was sent.
    """
    practice = get_practice(session, ods_code)
    channel = session.get(MeshChannel, practice.id)
    mailbox = mailbox.strip().upper()
    if not mailbox:
        if channel is not None:
            session.delete(channel)
            session.flush()
        return None
    if not MAILBOX.match(mailbox):
        raise InvalidInput("a MESH mailbox id is 1 to 20 letters and digits")
    workflow = (workflow or (channel.workflow if channel else DEFAULT_WORKFLOW)).strip().upper()
    if not WORKFLOW.match(workflow):
        raise InvalidInput("a MESH workflow id is 1 to 40 letters, digits and _")
    if channel is None:
        channel = MeshChannel(practice_id=practice.id, mailbox=mailbox, workflow=workflow)
        channel.sent_seq = 0
        session.add(channel)
    channel.mailbox, channel.workflow = mailbox, workflow
    if send_from is not None:
        if not 0 <= send_from <= practice.feed_seq:
            raise InvalidInput(f"mesh-from must be between 0 and {practice.feed_seq}")
        channel.sent_seq = max(channel.sent_seq or 0, send_from)
    # A changed (or confirmed) setting starts with a clean slate: the operator has acted.
    channel.failures, channel.error, channel.retry_at, channel.stopped_at = 0, "", None, None
    session.flush()
    return channel


def channel_of(session: Session, ods_code: str) -> MeshChannel | None:
    return session.get(MeshChannel, get_practice(session, ods_code).id)


# Sending --------------------------------------------------------------------------------------


def due_channels(session: Session, now: datetime) -> list[int]:
    """Practices on MESH with events not yet sent, not stopped, and no retry or claim pending."""
    return list(
        session.scalars(
            select(MeshChannel.practice_id)
            .join(Practice, Practice.id == MeshChannel.practice_id)
            .where(
                MeshChannel.stopped_at.is_(None),
                MeshChannel.sent_seq < Practice.feed_seq,
                or_(MeshChannel.retry_at.is_(None), MeshChannel.retry_at <= now),
            )
            .order_by(MeshChannel.retry_at.is_not(None), MeshChannel.practice_id)
        )
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
            or_(MeshChannel.retry_at.is_(None), MeshChannel.retry_at <= now),
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
    event = session.scalars(
        select(FeedEvent)
        .where(FeedEvent.practice_id == target.practice_id, FeedEvent.seq > after)
        .order_by(FeedEvent.seq)
        .limit(1)
    ).first()
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


# Tracking and responses --------------------------------------------------------------------


@dataclass(frozen=True)
class Tracked:
    id: int
    message_id: str


def to_track(session: Session, limit: int = 200) -> list[Tracked]:
    """Messages whose MESH tracking may still change, oldest first."""
    rows = session.execute(
        select(MeshMessage.id, MeshMessage.message_id)
        .where(MeshMessage.tracking.not_in(FINAL_TRACKING))
        .order_by(MeshMessage.id)
        .limit(limit)
    )
    return [Tracked(int(r[0]), r[1]) for r in rows]


def tracked(session: Session, message_id: int, status: str, now: datetime) -> None:
    """Record MESH's tracking status of one message."""
    session.execute(
        update(MeshMessage)
        .where(MeshMessage.id == message_id)
        .values(tracking=status.strip().lower()[:30], tracked_at=now)
    )


@dataclass(frozen=True)
class ItkResponse:
    """An ITK3 response as read from its Bundle: the MessageHeader it answers, the
    MessageHeader.response.code and the first issue's ITK response code and display."""

    answers: str
    code: str  # ok, transient-error, fatal-error
    itk_code: str  # e.g. 30001, 20013, 10001
    display: str

    @property
    def kind(self) -> str:
        # ITK3 business response codes are 3xxxx; 1xxxx and 2xxxx are infrastructure ones.
        return "business" if self.itk_code.startswith("3") else "infrastructure"


def record_inbound(
    session: Session,
    *,
    message_id: str,
    sender: str,
    workflow: str,
    local_id: str,
    body: bytes,
    response: ItkResponse | None,
    problem: str,
    now: datetime,
) -> str:
    """Keep a message collected from our inbox and match an ITK3 response to the message it
    answers. Returns the outcome: matched, unmatched, unreadable, or duplicate (collected
    before: MESH hands a message out again until it is acknowledged)."""
    if session.scalar(select(MeshInbound.id).where(MeshInbound.message_id == message_id)):
        return "duplicate"
    matched = None
    if response is not None:
        matched = session.scalars(
            select(MeshMessage).where(MeshMessage.header_id == response.answers).limit(1)
        ).first()
    if response is None:
        outcome, detail = "unreadable", problem
    elif matched is None:
        outcome, detail = "unmatched", f"answers MessageHeader {response.answers}"
    else:
        outcome, detail = "matched", ""
        # A business response says more than an infrastructure one: never overwrite it
        # with an infrastructure answer that arrives late.
        if not (matched.ack_kind == "business" and response.kind != "business"):
            matched.ack_kind = response.kind
            matched.ack_code = response.code[:20]
            matched.ack_detail = f"{response.itk_code} {response.display}".strip()[:300]
            matched.ack_at = now
    session.add(
        MeshInbound(
            message_id=message_id[:64],
            sender=sender[:20],
            workflow=workflow[:40],
            local_id=local_id[:100],
            body=body,
            outcome=outcome,
            detail=detail[:300],
            mesh_message_id=matched.id if matched is not None else None,
            received_at=now,
        )
    )
    session.flush()
    return outcome


# What operators see ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshStatus:
    """A practice's MESH channel, as operators see it."""

    ods_code: str
    mailbox: str
    workflow: str
    feed_seq: int
    sent_seq: int
    backlog: int
    failures: int
    error: str
    retry_at: datetime | None
    stopped: bool
    accepted: int  # waiting in the practice's mailbox
    downloaded: int  # acknowledged to MESH by the practice's system
    tracking_errors: int
    filed: int  # business response ok
    refused: int  # a response that is an error


def channel_status(session: Session) -> list[MeshStatus]:
    """Every practice on MESH, stopped and failing ones first."""
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(
            MeshMessage.practice_id,
            MeshMessage.tracking,
            MeshMessage.ack_kind,
            MeshMessage.ack_code,
            func.count(),
        ).group_by(
            MeshMessage.practice_id,
            MeshMessage.tracking,
            MeshMessage.ack_kind,
            MeshMessage.ack_code,
        )
    )
    for practice_id, tracking, ack_kind, ack_code, n in rows:
        c = counts.setdefault(
            practice_id, {"accepted": 0, "downloaded": 0, "errors": 0, "filed": 0, "refused": 0}
        )
        if tracking == "accepted":
            c["accepted"] += n
        elif tracking == "acknowledged":
            c["downloaded"] += n
        elif tracking in FINAL_TRACKING:
            c["errors"] += n
        if ack_code == "ok" and ack_kind == "business":
            c["filed"] += n
        elif ack_code and ack_code != "ok":
            c["refused"] += n
    channels = session.execute(
        select(MeshChannel, Practice)
        .join(Practice, Practice.id == MeshChannel.practice_id)
        .order_by(MeshChannel.stopped_at.is_(None), MeshChannel.failures.desc(), Practice.ods_code)
    )
    out = []
    for channel, practice in channels:
        c = counts.get(practice.id, {})
        out.append(
            MeshStatus(
                ods_code=practice.ods_code,
                mailbox=channel.mailbox,
                workflow=channel.workflow,
                feed_seq=practice.feed_seq,
                sent_seq=channel.sent_seq,
                backlog=practice.feed_seq - channel.sent_seq,
                failures=channel.failures,
                error=channel.error,
                retry_at=channel.retry_at,
                stopped=channel.stopped_at is not None,
                accepted=c.get("accepted", 0),
                downloaded=c.get("downloaded", 0),
                tracking_errors=c.get("errors", 0),
                filed=c.get("filed", 0),
                refused=c.get("refused", 0),
            )
        )
    return out


@dataclass(frozen=True)
class SentMessage:
    """One message sent to a practice, for the per-document view."""

    seq: int
    event_type: str
    document_id: int
    local_id: str
    message_id: str
    sent_at: datetime
    tracking: str
    ack_kind: str
    ack_code: str
    ack_detail: str

    @property
    def answer(self) -> str:
        """The practice's answer in words."""
        if not self.ack_code:
            return ""
        if self.ack_code == "ok":
            return "filed by the practice" if self.ack_kind == "business" else "received"
        return f"{self.ack_code}: {self.ack_detail}"


def sent_messages(
    session: Session, ods_code: str, *, after: int = 0, limit: int = 100
) -> list[SentMessage]:
    """The messages sent to a practice after event `after`, in feed order."""
    practice = get_practice(session, ods_code)
    rows = session.execute(
        select(MeshMessage, FeedEvent.type, FeedEvent.document_id)
        .join(FeedEvent, FeedEvent.id == MeshMessage.event_id)
        .where(MeshMessage.practice_id == practice.id, MeshMessage.seq > after)
        .order_by(MeshMessage.seq)
        .limit(limit)
    )
    return [
        SentMessage(
            m.seq,
            event_type,
            document_id,
            m.local_id,
            m.message_id,
            m.sent_at,
            m.tracking,
            m.ack_kind,
            m.ack_code,
            m.ack_detail,
        )
        for m, event_type, document_id in rows
    ]
