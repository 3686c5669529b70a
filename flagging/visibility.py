"""Visibility of document versions: set at ingest, decided by people, released by time.

The one use case that changes a visibility is `decide_visibility`; the web form, the hospital
API, the message path and the scheduled jobs all go through it, so every change leaves one
history entry and, for a routed document, one feed event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging import audit, feed, store
from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import (
    WITHDRAWN,
    Decision,
    Document,
    DocumentStatus,
    DocumentVersion,
    Reason,
    Source,
    Visibility,
)
from flagging.storage.rawsql import Raw


@dataclass(frozen=True)
class Actor:
    """Who decided: a signed-in user, a hospital system, or the service itself. A decision
    from a hospital's EPR names the clinician and also the sender and token that asserted it."""

    code: str = ""
    name: str = ""
    user_id: int | None = None
    sender_id: int | None = None
    sender_token_id: int | None = None


SYSTEM = Actor(code="", name="flagging service")
WITHDRAWN_NOTE = "withdrawn (cancelled) by the hospital: never to be shown to the patient"


@dataclass(frozen=True)
class SourceFlag:
    """A decision carried in the message itself (ZFL segment, or TXA-18 = V)."""

    visibility: Visibility
    reason: str = ""
    note: str = ""
    decided_by: Actor = SYSTEM
    decided_at: datetime | None = None
    withhold_until: datetime | None = None


def _apply(
    session: Session,
    document: Document,
    version: DocumentVersion,
    *,
    visibility: Visibility,
    source: Source,
    actor: Actor,
    now: datetime,
    reason: str = "",
    note: str = "",
    withhold_until: datetime | None = None,
    decided_at: datetime | None = None,
) -> int:
    """Record a decision (flagging.store) and make it the version's (and, if latest, the
    document's) state; return the decision's id."""
    decision_id = store.add_decision(
        Raw.on(session.connection()),
        document_id=document.id,
        version_id=version.id,
        visibility=visibility.value,
        source=source.value,
        actor=actor,
        decided_at=decided_at or now,
        reason=reason,
        note=note,
        withhold_until=withhold_until,
    )
    version.visibility = visibility.value
    version.visibility_source = source.value
    version.reason = reason
    version.withhold_until = withhold_until
    version.decided_at = decided_at or now
    version.decided_by = actor.name or actor.code
    if version.version == document.latest_version:
        document.visibility = visibility.value
        document.withhold_until = withhold_until
        if visibility != Visibility.PENDING:
            document.auto_release = False
    document.revision += 1
    document.updated_at = now
    session.flush()
    return decision_id


@dataclass(frozen=True)
class Previous:
    """What a new version inherits from the version before it."""

    version: int
    visibility: str
    source: str
    reason: str
    withhold_until: datetime | None
    held: bool  # pending and waiting for a person (not for the review window)
    # Withheld because a person decided so (web form, decision API), and no person or expiry
    # has released it since: a message cannot undo that (DESIGN.md, precedence).
    person_withheld: bool = False


@dataclass(frozen=True)
class Initial:
    """A new version's first visibility. `source` None means no decision is recorded."""

    visibility: Visibility
    source: Source | None = None
    reason: str = ""
    note: str = ""
    withhold_until: datetime | None = None
    decided_by: Actor = SYSTEM
    decided_at: datetime | None = None
    auto_release: bool = False
    review_due_at: datetime | None = None


def initial_visibility(
    *,
    cancel: bool,
    flag: SourceFlag | None,
    previous: Previous | None,
    screened: bool,
    window: timedelta,
    now: datetime,
) -> Initial:
    """DESIGN.md, "How a version gets its status": a flag at source wins; a new version of a
    withheld document starts withheld and of a held one starts held; a screening hit holds it
    for a person; otherwise it is pending until the review window lapses (0: visible at once).
    Screening never releases anything."""
    due = now + window
    if cancel:
        # DESIGN.md rule 8: a withdrawn document is never to be shown, whatever it was before,
        # so the cancel is a withhold by the message itself (reason `withdrawn`), recorded on
        # every version (flagging/ingest.py), never released by a window or a date.
        return Initial(
            Visibility.WITHHELD,
            Source.MESSAGE,
            reason=WITHDRAWN,
            note=WITHDRAWN_NOTE,
        )
    if (
        flag is not None
        and flag.visibility != Visibility.WITHHELD
        and previous is not None
        and previous.person_withheld
    ):
        # A message may withhold, never release (nor make pending, a step to release) what a
        # person withheld: an EPR resending its default, or a forged message, must not
        # undo a clinician. The new version stays withheld until a person decides again.
        return Initial(
            Visibility.WITHHELD,
            Source(previous.source or Source.CLINICIAN.value),
            reason=previous.reason,
            note=(
                f"carried over from version {previous.version}, which a person withheld; "
                f"the message asked for {flag.visibility.value}, which only a person's "
                "decision can give"
            ),
            withhold_until=previous.withhold_until,
        )
    if flag is not None:
        pending = flag.visibility == Visibility.PENDING
        return Initial(
            flag.visibility,
            Source.MESSAGE,
            reason=flag.reason,
            note=flag.note,
            withhold_until=flag.withhold_until,
            decided_by=flag.decided_by,
            decided_at=flag.decided_at,
            review_due_at=due if pending else None,
        )
    if previous is not None and previous.visibility == Visibility.WITHHELD:
        return Initial(
            Visibility.WITHHELD,
            Source(previous.source or Source.CLINICIAN.value),
            reason=previous.reason,
            note=f"carried over from version {previous.version}, which was withheld",
            withhold_until=previous.withhold_until,
        )
    held = screened or (
        previous is not None and previous.visibility == Visibility.PENDING and previous.held
    )
    if held:
        return Initial(Visibility.PENDING, review_due_at=due)
    if window <= timedelta(0):
        return Initial(Visibility.VISIBLE, Source.REVIEW_WINDOW)
    return Initial(Visibility.PENDING, auto_release=True, review_due_at=due)


def decide_visibility(
    session: Session,
    *,
    document_id: int,
    visibility: Visibility,
    actor: Actor,
    reason: str = "",
    note: str = "",
    withhold_until: datetime | None = None,
    source: Source = Source.CLINICIAN,
    expected_revision: int | None = None,
    now: datetime,
    audit_actor: str = "",
) -> Decision:
    """Withhold or release a document's latest version (a clinician, a hospital system).

    `audit_actor` names who in the audit trail when the actor is not a signed-in user nor
    the service (a hospital system: its sender)."""
    try:
        visibility = Visibility(visibility)
    except ValueError:
        raise InvalidInput(f"visibility must be withheld or visible, not {visibility!r}") from None
    document = session.execute(
        select(Document).where(Document.id == document_id).with_for_update()
    ).scalar_one_or_none()
    if document is None:
        raise NotFound(f"no document {document_id}")
    if document.status == DocumentStatus.WITHDRAWN:
        raise Conflict("this document was withdrawn by the hospital: there is nothing to decide")
    if expected_revision is not None and expected_revision != document.revision:
        raise Conflict(
            "this document changed since the page was opened (a new version arrived or "
            "someone else decided): review it again before deciding"
        )
    if visibility == Visibility.PENDING:
        raise InvalidInput("a decision withholds or releases; it cannot make a document pending")
    if visibility == Visibility.WITHHELD:
        try:
            Reason(reason)
        except ValueError:
            raise InvalidInput(
                f"a reason is required to withhold: one of {', '.join(r.value for r in Reason)}"
            ) from None
        if reason == Reason.OTHER and not note.strip():
            raise InvalidInput("withholding for 'other' reasons needs a note saying why")
        if withhold_until is not None and withhold_until <= now:
            raise InvalidInput("'withhold until' must be in the future")
    else:
        reason, withhold_until = "", None
    versions = list(
        session.scalars(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document.id)
            .order_by(DocumentVersion.version)
        )
    )
    *earlier, version = versions
    before = document.visibility
    note = note.strip()
    # A decision is about the document: made on its latest version, it is recorded on every
    # earlier version whose state differs, so that after any decision all versions agree and
    # none is left "needing a decision" or showing what the latest withholds (DESIGN terms in
    # README, "Versions and decisions"). Earlier versions go first in the feed, the latest
    # last, so a GP system's current state is the latest version's.
    for older in earlier:
        if (older.visibility, older.reason, older.withhold_until) == (
            visibility.value,
            reason,
            withhold_until,
        ):
            continue
        _apply(
            session,
            document,
            older,
            visibility=visibility,
            source=source,
            actor=actor,
            now=now,
            reason=reason,
            note=f"{note} (decided on version {version.version}; applies to every version)"
            if note
            else f"decided on version {version.version}; applies to every version",
            withhold_until=withhold_until,
        )
        feed.visibility_changed(session, document, older, now)
    decision_id = _apply(
        session,
        document,
        version,
        visibility=visibility,
        source=source,
        actor=actor,
        now=now,
        reason=reason,
        note=note,
        withhold_until=withhold_until,
    )
    document.review_due_at = None
    feed.visibility_changed(session, document, version, now)
    audit.record(
        session,
        actor=audit_actor
        or (audit.user_actor(actor.user_id) if actor.user_id else audit.system_actor(source)),
        action=audit.Action.DECISION,
        outcome=visibility.value,
        document_id=document.id,
        nhs_number=document.nhs_number,
        detail={
            "version": version.version,
            "source": source.value,
            "from": str(before),
            "to": visibility.value,
            "reason": reason,
            "decided_by_code": actor.code,
            "withhold_until": withhold_until,
        },
        at=now,
    )
    return session.get_one(Decision, decision_id)


def release_lapsed(session: Session, now: datetime, limit: int = 200) -> int:
    """Scheduled job body: release pending documents whose review window lapsed without a
    decision or a screening hit (source review-window), and withheld ones whose
    withhold-until passed (source expiry). Safe when two schedulers run it at once: each
    document is re-checked under its row lock, so only one of them acts on it."""
    released = 0
    due = session.scalars(
        select(Document.id)
        .where(
            Document.visibility == Visibility.PENDING.value,
            Document.auto_release.is_(True),
            Document.review_due_at <= now,
        )
        .order_by(Document.review_due_at)
        .limit(limit)
    ).all()
    for document_id in due:
        released += _release_one(session, document_id, now, Source.REVIEW_WINDOW)
    expired = session.scalars(
        select(Document.id)
        .where(
            Document.visibility == Visibility.WITHHELD.value,
            Document.withhold_until <= now,
            Document.status == DocumentStatus.CURRENT.value,
        )
        .order_by(Document.withhold_until)
        .limit(limit)
    ).all()
    for document_id in expired:
        released += _release_one(session, document_id, now, Source.EXPIRY)
    return released


def _release_one(session: Session, document_id: int, now: datetime, source: Source) -> int:
    document = session.execute(
        select(Document).where(Document.id == document_id).with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if document is None:
        return 0  # another scheduler holds it
    session.refresh(document)
    if source == Source.REVIEW_WINDOW:
        still_due = (
            document.visibility == Visibility.PENDING
            and document.auto_release
            and document.review_due_at is not None
            and document.review_due_at <= now
        )
    else:
        still_due = (
            document.status == DocumentStatus.CURRENT
            and document.visibility == Visibility.WITHHELD
            and document.withhold_until is not None
            and document.withhold_until <= now
        )
    if not still_due:
        return 0
    decide_visibility(
        session,
        document_id=document.id,
        visibility=Visibility.VISIBLE,
        actor=SYSTEM,
        source=source,
        now=now,
    )
    return 1
