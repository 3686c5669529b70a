"""Typed SQLAlchemy models, one module per concept, all on one MetaData."""

from flagging.models.base import Base, metadata
from flagging.models.documents import Document, DocumentStatus, DocumentVersion, VersionChange
from flagging.models.feed import EventType, FeedEvent, GPToken, GPTokenPractice
from flagging.models.messages import InboundMessage, MessageOutcome, MessageResolution
from flagging.models.organisations import Practice, ReviewWindow, Sender
from flagging.models.users import Role, User
from flagging.models.visibility import (
    REASON_LABELS,
    Decision,
    Reason,
    ScreeningHit,
    ScreeningRule,
    Source,
    Visibility,
)

__all__ = [
    "REASON_LABELS",
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
    "MessageOutcome",
    "MessageResolution",
    "Practice",
    "Reason",
    "ReviewWindow",
    "Role",
    "ScreeningHit",
    "ScreeningRule",
    "Sender",
    "Source",
    "User",
    "VersionChange",
    "Visibility",
    "metadata",
]
