"""`flagging messages ...` (every message received, the quarantine) and `retention`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime

from cli import hl7_tools, output, progress
from cli.commands.common import CommandError, Parser, reading, services, writing
from flagging import audit, retention
from flagging import messages as messages_uc
from flagging.models import MessageOutcome, MessageResolution
from flagging.models.base import utcnow


def _when(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or time from the command line; without a zone it is UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{name} must be an ISO 8601 date or time, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_messages_list(args: argparse.Namespace) -> int:
    search = messages_uc.MessageSearch(
        sender=args.sender,
        control_id=args.control_id,
        nhs_number=args.nhs_number,
        document_number=args.document,
        outcome=MessageOutcome(args.outcome) if args.outcome else None,
        since=_when(args.since, "--since"),
        until=_when(args.until, "--until"),
        open_only=args.open,
    )
    with reading() as session:
        rows = [
            output.message(m)
            for m in messages_uc.search_messages(
                session, search, before_id=args.before, limit=args.limit
            )
        ]
    output.table(
        rows,
        [
            "id",
            "received_at",
            "transport",
            "sending_facility",
            "message_type",
            "control_id",
            "outcome",
            "ack_code",
            "error",
            "resolution",
        ],
        args.json,
    )
    return 0


def cmd_messages_close(args: argparse.Namespace) -> int:
    """Resolve or dismiss a quarantined or rejected message, with the reason."""
    resolution = {"resolve": MessageResolution.RESOLVED, "dismiss": MessageResolution.DISMISSED}[
        args.action
    ]
    by = args.by or f"{getpass.getuser()} (command line)"
    with writing() as session:
        messages_uc.close_message(
            session, args.id, resolution, reason=args.reason, by=by, now=utcnow()
        )
    print(f"message {args.id} {resolution.value}")
    return 0


def cmd_messages_show(args: argparse.Namespace) -> int:
    with writing() as session:
        message = messages_uc.get_message(session, args.id)
        raw = messages_uc.original_bytes(session, message)
        data = output.message(message, full=True)
        audit.record(
            session,
            actor=audit.CLI,
            action=audit.Action.EXPORT,
            outcome="message",
            message_id=message.id,
            detail={
                "format": "raw"
                if args.raw
                else "fields"
                if args.fields
                else "json"
                if args.json
                else "text"
            },
        )
    if args.raw:
        sys.stdout.buffer.write(raw)
        return 0
    if args.fields:
        if args.json:
            print(json.dumps(hl7_tools.fields_listing(raw), indent=2))
        else:
            hl7_tools.print_fields(raw)
        return 0
    data["raw"] = raw.decode("latin-1").replace("\r", "\n")
    output.record(data, args.json)
    return 0


def cmd_messages_reprocess(args: argparse.Namespace) -> int:
    wired = services()
    reply = wired.handler.reprocess(args.id)
    print(f"message {args.id} reprocessed as message {reply.message_id}: {reply.code}")
    return 0 if reply.code == "AA" else 1


def cmd_retention_run(args: argparse.Namespace) -> int:
    """Delete the raw bytes of old messages (flagging/retention.py says what is kept)."""
    wired = services()
    days = wired.settings.retention_days if args.days is None else args.days
    if days <= 0:
        raise CommandError(
            "retention is off (FLAGGING_RETENTION_DAYS is 0: keep for ever); give --days N"
        )
    with progress.bar("messages examined") as bar:
        report = retention.run_retention(
            wired.db.transaction,
            utcnow(),
            days,
            dry_run=args.dry_run,
            progress=lambda r, total: bar.update(r.examined, total),
        )
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"retention ({days} days, before {report.cutoff:%Y-%m-%d %H:%M} UTC): "
        f"{report.examined} messages examined, {verb} the bytes of {report.deleted} "
        f"({report.bytes_deleted} bytes); kept {report.kept_unacknowledged} whose document a "
        f"practice has not acknowledged and {report.kept_open} open quarantine entries"
    )
    return 0


def register(cli: Parser) -> None:
    """Add the `messages` and `retention` groups."""
    command, group = cli.command, cli.group
    messages = group("messages", "every message received, with its outcome")
    p = command(messages, "list", cmd_messages_list, "list and search messages, newest first")
    p.add_argument("--sender", default="", help="MSH-4 (the sender's ODS code)")
    p.add_argument("--control-id", default="", help="MSH-10")
    p.add_argument("--nhs-number", default="", help="the patient's NHS number")
    p.add_argument("--document", default="", help="document number (TXA-12 / OBR-3)")
    p.add_argument("--since", help="received at or after (ISO 8601; UTC unless a zone is given)")
    p.add_argument("--until", help="received before (ISO 8601)")
    p.add_argument(
        "--open", action="store_true", help="only quarantined or rejected ones not yet closed"
    )
    p.add_argument("--outcome", choices=[o.value for o in MessageOutcome])
    p.add_argument("--before", type=int, help="only messages with a smaller id (next page)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = command(messages, "show", cmd_messages_show, "show one message and its ACK")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="write the bytes exactly as received")
    p.add_argument(
        "--fields", action="store_true", help="every segment and field with its HL7 name"
    )
    p = command(
        messages,
        "validate",
        hl7_tools.cmd_validate,
        "check HL7 files' structure against the standard (hl7apy); exit 1 on errors",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    for action, text in (
        ("resolve", "close a quarantined or rejected message as fixed, with the reason"),
        ("dismiss", "close a quarantined or rejected message as needing nothing, with the reason"),
    ):
        p = command(messages, action, cmd_messages_close, text)
        p.add_argument("id", type=int)
        p.add_argument("--reason", required=True, help="kept with the entry")
        p.add_argument("--by", default="", help="who (default: the account running this)")
    p = command(
        messages, "reprocess", cmd_messages_reprocess, "run a quarantined or rejected message again"
    )
    p.add_argument("id", type=int)

    kept = group("retention", "delete the raw bytes of old messages")
    p = command(kept, "run", cmd_retention_run, "delete raw bytes older than the retention age")
    p.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    p.add_argument("--days", type=int, help="override FLAGGING_RETENTION_DAYS")
