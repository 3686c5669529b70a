"""The ZFL flag segment (DESIGN.md): the visibility a version carries to a practice, and what the
HL7 edge needs to write it into the original message (the edge writes the segment itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging.gp_reads import DocumentView
from flagging.gp_tokens import PracticeAccess
from flagging.messages import get_message, original_bytes
from flagging.models import (
    Decision,
    DocumentVersion,
    ScreeningHit,
    Source,
    VersionChange,
    Visibility,
    reason_text,
)

# ZFL-2 (DESIGN.md): P pending, W withheld, V visible.
ZFL_STATUS = {
    Visibility.PENDING.value: "P",
    Visibility.WITHHELD.value: "W",
    Visibility.VISIBLE.value: "V",
}


@dataclass(frozen=True)
class Flag:
    """The content of a ZFL segment (DESIGN.md), as plain values."""

    status: str  # ZFL-2: P, W or V
    reason: str = ""  # ZFL-4.1
    reason_text: str = ""  # ZFL-4.2
    decided_by_code: str = ""  # ZFL-5.1
    decided_by_name: str = ""
    decided_at: datetime | None = None  # ZFL-6
    withhold_until: datetime | None = None  # ZFL-7
    source: str = ""  # ZFL-8

    @property
    def nopat(self) -> bool:
        """Whether the patient must not see it (pending or withheld)."""
        return self.status != "V"


def flag_for(
    session: Session, version: DocumentVersion, visibility: str, at: datetime | None = None
) -> Flag:
    """The ZFL content for a version at a visibility: the decision that set it (the latest one
    made by `at`, when given), or what the version says when no decision was recorded."""
    query = select(Decision).where(
        Decision.document_id == version.document_id,
        Decision.version_id == version.id,
        Decision.visibility == visibility,
    )
    decision = None
    if at is not None:
        decision = session.scalars(
            query.where(Decision.decided_at <= at).order_by(Decision.id.desc()).limit(1)
        ).first()
    if decision is None:
        decision = session.scalars(query.order_by(Decision.id.desc()).limit(1)).first()
    status = ZFL_STATUS.get(visibility, "P")
    if decision is None:
        source = version.visibility_source if version.visibility == visibility else ""
        if not source and visibility == Visibility.PENDING:
            held = session.scalar(
                select(ScreeningHit.id).where(ScreeningHit.version_id == version.id).limit(1)
            )
            source = Source.SCREENING.value if held is not None else ""
        return Flag(status=status, source=source)
    reason = decision.reason if visibility == Visibility.WITHHELD else ""
    return Flag(
        status=status,
        reason=reason,
        reason_text=reason_text(reason) if reason else "",
        decided_by_code=decision.decided_by_code,
        decided_by_name=decision.decided_by_name,
        decided_at=decision.decided_at,
        withhold_until=decision.withhold_until if visibility == Visibility.WITHHELD else None,
        source=decision.source,
    )


@dataclass(frozen=True)
class Annotation:
    """What the HL7 edge writes into a version's message for a practice (DESIGN.md, ZFL)."""

    practice_ods_code: str
    control_id: str  # the new MSH-10
    kind: str  # MDM | ORU
    document_number: str  # TXA-12, or the OBR-3 of the ORU group to keep
    flag: Flag


def original_message(session: Session, version: DocumentVersion) -> bytes:
    """The bytes of the message that carried a version, exactly as received."""
    return original_bytes(session, get_message(session, version.message_id))


def annotation_input(
    session: Session,
    access: PracticeAccess,
    view: DocumentView,
    control_id: str,
) -> tuple[bytes, Annotation]:
    """The original message of the viewed version and how to annotate it for the practice."""
    version = view.version
    annotation = Annotation(
        practice_ods_code=access.ods_code,
        control_id=control_id,
        kind=view.document.kind,
        document_number=version.document_number,
        flag=flag_for(session, version, version.visibility),
    )
    return original_message(session, version), annotation


def is_replacement(version: DocumentVersion) -> bool:
    """Whether a version replaces an earlier one of its thread (every later version does)."""
    return version.version > 1 and version.change != VersionChange.CANCEL
