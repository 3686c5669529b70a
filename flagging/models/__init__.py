"""Typed SQLAlchemy models, one module per concept, all on one MetaData."""

from flagging.models.audit import AuditEntry, AuditHead
from flagging.models.base import Base, max_length, metadata
from flagging.models.documents import Document, DocumentStatus, DocumentVersion, VersionChange
from flagging.models.feed import EventType, FeedEvent, GPToken, GPTokenPractice
from flagging.models.mesh import MeshChannel, MeshInbound, MeshMessage
from flagging.models.messages import InboundMessage, MessageOutcome, MessageResolution
from flagging.models.organisations import (
    Practice,
    ReviewWindow,
    Sender,
    SenderBinding,
    SenderToken,
)
from flagging.models.users import Role, SignInAddress, User
from flagging.models.visibility import (
    REASON_LABELS,
    WITHDRAWN,
    Decision,
    Reason,
    ScreeningHit,
    ScreeningRule,
    Source,
    Visibility,
    reason_text,
)

__all__ = [
    "REASON_LABELS",
    "WITHDRAWN",
    "AuditEntry",
    "AuditHead",
    "Base",
    "Decision",
    "Document",
    "DocumentStatus",
    "DocumentVersion",
    "EventType",
    "FeedEvent",
    "GPToken",
    "GPTokenPractice",
    "InboundMessage",
    "MeshChannel",
    "MeshInbound",
    "MeshMessage",
    "MessageOutcome",
    "MessageResolution",
    "Practice",
    "Reason",
    "ReviewWindow",
    "Role",
    "ScreeningHit",
    "ScreeningRule",
    "Sender",
    "SenderBinding",
    "SenderToken",
    "SignInAddress",
    "Source",
    "User",
    "VersionChange",
    "Visibility",
    "max_length",
    "metadata",
    "reason_text",
]
