"""A practice's MESH channel: its mailbox and workflow, set by operators, and what operators see
of its delivery (the channel's state, each message sent and what came back).

How delivery works is said in flagging/mesh_sending.py; tracking and responses in
flagging/mesh_tracking.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flagging.errors import InvalidInput
from flagging.mesh_tracking import FINAL_TRACKING
from flagging.models import (
    FeedEvent,
    MeshChannel,
    MeshMessage,
    Practice,
)
from flagging.organisations import get_practice

# GP Connect Send Document's MESH workflow, which GP system suppliers already collect from
# practices' mailboxes; a practice can be given another (e.g. TOC_FHIR_IP_DISCH).
DEFAULT_WORKFLOW = "GPFED_CONSULT_REPORT"
# MESH mailbox ids are short upper-case codes (e.g. A81001OT01); workflow ids likewise with _.
MAILBOX = re.compile(r"^[A-Z0-9]{1,20}$")
WORKFLOW = re.compile(r"^[A-Z0-9_]{1,40}$")


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
