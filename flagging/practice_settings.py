"""How a practice receives its feed: the feed mode and the optional MLLP push endpoint."""

from __future__ import annotations

from sqlalchemy.orm import Session

from flagging.errors import InvalidInput
from flagging.models import (
    Practice,
)
from flagging.organisations import get_practice

FEED_MODES = ("immediate", "decided")


def configure_practice(
    session: Session,
    ods_code: str,
    *,
    feed_mode: str | None = None,
    push_host: str | None = None,
    push_port: int | None = None,
    push_from: int | None = None,
    push_tls: bool | None = None,
) -> Practice:
    """Change how a practice receives its feed: the mode, and the optional MLLP push endpoint.

    `push_from` sets the last event counted as delivered (to start a push after events the
    practice already polled); it can only move forward, so an event is never skipped by mistake
    below what was delivered.
    """
    practice = get_practice(session, ods_code)
    if feed_mode is not None:
        if feed_mode not in FEED_MODES:
            raise InvalidInput(f"feed mode must be one of {', '.join(FEED_MODES)}")
        practice.feed_mode = feed_mode
    if push_host is not None:
        practice.push_host = push_host.strip()[:200]
    if push_port is not None:
        if not 0 <= push_port <= 65535:
            raise InvalidInput("push port must be between 1 and 65535 (0 turns push off)")
        practice.push_port = push_port
    if practice.push_host and not practice.push_port:
        raise InvalidInput("a push host needs a push port")
    if push_tls is not None:
        practice.push_tls = push_tls
    if push_from is not None:
        if not 0 <= push_from <= practice.feed_seq:
            raise InvalidInput(f"push-from must be between 0 and {practice.feed_seq}")
        practice.push_seq = max(practice.push_seq, push_from)
    if push_host is not None or push_port is not None or push_tls is not None:
        # A new endpoint starts with a clean slate of errors.
        practice.push_failures, practice.push_error, practice.push_retry_at = 0, "", None
    session.flush()
    return practice
