"""Typed SQLAlchemy models, one module per concept, all on one MetaData."""

from flagging.models.base import Base, metadata
from flagging.models.documents import Document, DocumentVersion
from flagging.models.messages import InboundMessage, MessageOutcome
from flagging.models.organisations import Practice, Sender

__all__ = [
    "Base",
    "Document",
    "DocumentVersion",
    "InboundMessage",
    "MessageOutcome",
    "Practice",
    "Sender",
    "metadata",
]
