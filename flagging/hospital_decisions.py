"""A hospital system's decision on one of its own documents, recorded by its EPR at sign-off."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from flagging import audit
from flagging.documents import find_by_number
from flagging.errors import Conflict, NotFound
from flagging.models import Decision, Document, Visibility
from flagging.organisations import SenderCredential
from flagging.visibility import Actor, decide_visibility


def decide_for_sender(
    session: Session,
    credential: SenderCredential,
    document_number: str,
    *,
    visibility: Visibility,
    clinician_code: str,
    clinician_name: str = "",
    reason: str = "",
    note: str = "",
    withhold_until: datetime | None = None,
    signed_version: int | None = None,
    now: datetime,
) -> tuple[Document, Decision]:
    """Withhold or release the sender's document as the signing clinician decided.

    A document of another sender does not exist for it. `signed_version`, when given, is the
    version the clinician signed off: if a later one has arrived since, the decision is
    refused (Conflict), as it was made without seeing it."""
    owner = credential.sender
    document = find_by_number(session, owner.id, document_number)
    if document is None:
        raise NotFound(f"sender {owner.ods_code} has no document {document_number}")
    if signed_version is not None and signed_version != document.latest_version:
        raise Conflict(
            f"version {signed_version} was signed off, but version "
            f"{document.latest_version} has arrived since: decide on the latest version"
        )
    decided = decide_visibility(
        session,
        document_id=document.id,
        visibility=visibility,
        actor=Actor(
            code=clinician_code,
            name=clinician_name,
            sender_id=owner.id,
            sender_token_id=credential.token_id,
        ),
        reason=reason,
        note=note,
        withhold_until=withhold_until,
        expected_revision=document.revision,
        now=now,
        audit_actor=audit.sender_actor(owner.ods_code),
    )
    return document, decided
