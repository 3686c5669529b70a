"""After sending: MESH tracking (accepted, acknowledged, errors), polled per message, and the ITK3
responses the practice's system sends to our own mailbox, matched to the message they answer,
so that operators see, per document, that the practice filed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flagging.models import (
    MeshInbound,
    MeshMessage,
)

# Tracking statuses after which MESH has nothing more to say about a message.
FINAL_TRACKING = ("acknowledged", "error", "expired", "undeliverable", "not-found")


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
