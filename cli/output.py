"""Printing rows for people (aligned columns) or programs (--json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from flagging.gp_tokens import TokenInfo
from flagging.mesh_channels import MeshStatus, SentMessage
from flagging.models import (
    Document,
    DocumentVersion,
    InboundMessage,
    Practice,
    ScreeningRule,
    Sender,
    User,
)
from flagging.nhs_number import format_nhs_number
from flagging.organisations import SenderTokenInfo


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    return str(_plain(value) or "")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], indent=2))
        return
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def record(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=_plain))
        return
    for key, value in data.items():
        if isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print("  - " + ", ".join(f"{k}={_plain(v)}" for k, v in item.items()))
        elif isinstance(value, str) and "\n" in value:
            print(f"{key}:")
            print("  " + value.rstrip("\n").replace("\n", "\n  "))
        else:
            print(f"{key}: {_plain(value)}")


def sender(s: Sender, bindings: dict[str, list[str]] | None = None) -> dict[str, Any]:
    bound = bindings or {}
    return {
        "id": s.id,
        "ods_code": s.ods_code,
        "application": s.application,
        "name": s.name,
        # How its MLLP connections are recognised (flagging/bindings.py).
        "networks": bound.get("network", []),
        "certificates": bound.get("certificate", []),
        "created_at": s.created_at,
    }


def practice(p: Practice) -> dict[str, Any]:
    return {
        "id": p.id,
        "ods_code": p.ods_code,
        "name": p.name,
        "created_at": p.created_at,
        "feed_mode": p.feed_mode,
        "feed_seq": p.feed_seq,
        "acknowledged_seq": p.acknowledged_seq,
        "acknowledged_at": p.acknowledged_at,
        "push": (
            f"{p.push_host}:{p.push_port}{' (TLS)' if p.push_tls else ''} at {p.push_seq}"
            if p.push_host
            else ""
        ),
        "push_tls": p.push_tls,
        "push_failures": p.push_failures,
        "push_error": p.push_error,
        "push_retry_at": p.push_retry_at,
    }


def mesh_status(s: MeshStatus) -> dict[str, Any]:
    if s.stopped:
        state = f"STOPPED: {s.error}"
    elif s.error:
        state = f"retrying ({s.failures} failed) at {_plain(s.retry_at)}: {s.error}"
    else:
        state = "ok"
    return {
        "ods_code": s.ods_code,
        "mailbox": s.mailbox,
        "workflow": s.workflow,
        "feed_seq": s.feed_seq,
        "sent": s.sent_seq,
        "backlog": s.backlog,
        "in_mailbox": s.accepted,
        "downloaded": s.downloaded,
        "filed": s.filed,
        "errors": s.tracking_errors + s.refused,
        "stopped": s.stopped,
        "failures": s.failures,
        "error": s.error,
        "retry_at": s.retry_at,
        "state": state,
    }


def mesh_message(m: SentMessage) -> dict[str, Any]:
    return {
        "seq": m.seq,
        "event": m.event_type,
        "document": m.document_id,
        "local_id": m.local_id,
        "message_id": m.message_id,
        "sent_at": m.sent_at,
        "tracking": m.tracking,
        "ack_kind": m.ack_kind,
        "ack_code": m.ack_code,
        "ack_detail": m.ack_detail,
        "answer": m.answer,
    }


def gp_token(t: TokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "practices": " ".join(t.practices),
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
    }


def sender_token(t: SenderTokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "sender": t.sender,
        "name": t.name,
        "created_at": t.created_at,
        "last_used_at": t.last_used_at,
        "revoked_at": t.revoked_at,
    }


def message(m: InboundMessage, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": m.id,
        "received_at": m.received_at,
        "transport": m.transport,
        "peer": m.peer,
        "sending_facility": m.sending_facility,
        "message_type": m.message_type,
        "control_id": m.control_id,
        "outcome": m.outcome,
        "ack_code": m.ack_code,
        "error": f"{m.error_code} {m.error_location} {m.error_text}".strip(),
        "resolution": m.resolution,
    }
    if full:
        data.update(
            size=m.size,
            version=m.version,
            content_hash=m.content_hash,
            duplicate_of=m.duplicate_of_id,
            reprocessed_as=m.reprocessed_as_id,
            superseded_by=m.superseded_by_id,
            resolution_reason=m.resolution_reason,
            resolved_by=m.resolved_by,
            resolved_at=m.resolved_at,
            raw_deleted_at=m.raw_deleted_at,
            ack=(m.ack or b"").decode("latin-1").replace("\r", "\n"),
        )
    return data


def document(d: Document, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": d.id,
        "sender": d.sender_id,
        "document_number": d.document_number,
        "kind": d.kind,
        "status": d.status,
        "practice": d.practice_ods_code if d.practice_id else f"unroutable ({d.practice_ods_code})",
        "versions": d.latest_version,
        "updated_at": d.updated_at,
    }
    if full:
        data.update(
            nhs_number=format_nhs_number(d.nhs_number),
            patient=f"{d.family_name.upper()}, {d.given_name}".strip(", "),
            birth_date=d.birth_date,
            created_at=d.created_at,
        )
    return data


def version(v: DocumentVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "event": v.event,
        "change": v.change,
        "document_number": v.document_number,
        "title": v.title,
        "author": v.author_name or v.author_code,
        "content_type": v.content_type,
        "content_bytes": len(v.content or b""),
        "message": v.message_id,
    }


def user(u: User, senders: dict[int, str]) -> dict[str, Any]:
    locked = u.locked_until is not None and u.locked_until > datetime.now(UTC)
    return {
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "sender": senders.get(u.sender_id, "") if u.sender_id else "",
        "clinician_code": u.clinician_code,
        "active": u.active,
        "locked": locked,
        "created_at": u.created_at,
    }


def rule(r: ScreeningRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "kind": r.kind,
        "pattern": r.pattern,
        "category": r.category,
        "active": r.active,
    }
