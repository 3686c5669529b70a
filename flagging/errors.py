"""The domain's exceptions, turned into ACK codes or HTTP problems only at the edges."""

from __future__ import annotations


class FlaggingError(Exception):
    """Base of every error the domain raises on purpose."""


class NotFound(FlaggingError):
    """A named sender, practice, message or document does not exist."""


class Conflict(FlaggingError):
    """The request clashes with what is stored (a duplicate registration, a wrong state)."""


class InvalidInput(FlaggingError):
    """A value given to a use case is not acceptable; the message says which and why."""
