"""`flagging audit ...`: verify the audit trail, list and export it, answer subject access."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from api.fhir_audit import bundle
from cli.commands.common import Parser, reading, writing
from flagging import audit, audit_log
from flagging.nhs_number import is_valid, normalise


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _nhs_number(text: str) -> str:
    number = normalise(text)
    if not is_valid(number):
        raise argparse.ArgumentTypeError(f"not a valid NHS number: {text!r}")
    return number


def _filters(args: argparse.Namespace) -> audit_log.Filters:
    return audit_log.Filters(
        actor=args.actor,
        action=args.action_name,
        document_id=args.document,
        nhs_number=args.patient or "",
        since=args.since,
        until=args.until,
    )


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actor", default="", help="e.g. user:7, token:3, sender:RXX, cli")
    p.add_argument(
        "--action", dest="action_name", default="", help="e.g. decision.recorded, or gp, admin"
    )
    p.add_argument("--document", type=int, help="a document id")
    p.add_argument("--patient", type=_nhs_number, help="a patient's NHS number")
    p.add_argument("--since", type=_moment, help="from this time (ISO 8601, UTC if no zone)")
    p.add_argument("--until", type=_moment, help="before this time")
    p.add_argument("--limit", type=int, default=100)


def register(cli: Parser) -> None:
    """Add the `audit` group."""
    command, group = cli.command, cli.group

    def cmd_verify(args: argparse.Namespace) -> int:
        with reading() as session:
            result = audit_log.verify(session)
        if args.json:
            print(json.dumps(result.__dict__ | {"ok": result.ok}, indent=2))
        elif result.ok:
            print(f"audit trail intact: {result.entries} entries, head {result.head_hash}")
        else:
            print(f"flagging: audit trail broken: {result.problem}", file=sys.stderr)
        return 0 if result.ok else 1

    def cmd_list(args: argparse.Namespace) -> int:
        with reading() as session:
            rows = [
                audit_log.as_dict(e)
                for e in audit_log.list_entries(session, _filters(args), limit=args.limit)
            ]
        _print(rows, args.json)
        return 0

    def cmd_subject_access(args: argparse.Namespace) -> int:
        with reading() as session:
            rows = [
                audit_log.as_dict(e) for e in audit_log.subject_access(session, args.nhs_number)
            ]
        _print(rows, args.json)
        return 0

    def cmd_export(args: argparse.Namespace) -> int:
        # An export is itself audited, in the transaction that reads what it exports.
        with writing() as session:
            entries = audit_log.list_entries(session, _filters(args), limit=args.limit)
            data = bundle(list(reversed(entries)))
            audit.record(
                session,
                actor=audit.CLI,
                action=audit.Action.EXPORT,
                outcome="audit",
                detail={"format": "fhir", "entries": len(entries)},
            )
        print(json.dumps(data, indent=2))
        return 0

    g = group("audit", "the tamper-evident audit trail")
    p = command(g, "verify", cmd_verify, "walk the hash chain; name the first entry tampered with")
    p.add_argument("--json", action="store_true")
    p = command(g, "list", cmd_list, "list entries, newest first")
    _add_filters(p)
    p.add_argument("--json", action="store_true")
    p = command(g, "subject-access", cmd_subject_access, "who has seen this patient's documents")
    p.add_argument("nhs_number", type=_nhs_number)
    p.add_argument("--json", action="store_true")
    p = command(g, "export", cmd_export, "print entries as a FHIR R4 Bundle of AuditEvents")
    _add_filters(p)


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("(none)")
    for row in rows:
        subject = " ".join(
            f"{k}={row[k]}" for k in ("document_id", "message_id", "practice") if row[k]
        )
        line = f"{row['seq']:>6} {row['at']} {row['actor']} {row['action']} {row['outcome']}"
        print(f"{line} {subject}".rstrip())
