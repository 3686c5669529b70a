"""`flagging documents ...`: documents received, and routing the unroutable."""

from __future__ import annotations

import argparse

from cli import output
from cli.commands.common import Parser, reading, writing
from flagging import audit
from flagging import documents as documents_uc


def cmd_documents_list(args: argparse.Namespace) -> int:
    with reading() as session:
        rows = [
            output.document(d)
            for d in documents_uc.list_documents(
                session, unroutable=args.unroutable, before_id=args.before, limit=args.limit
            )
        ]
    output.table(
        rows,
        ["id", "sender", "document_number", "kind", "status", "practice", "versions", "updated_at"],
        args.json,
    )
    return 0


def cmd_documents_show(args: argparse.Namespace) -> int:
    with writing() as session:
        document = documents_uc.get_document(session, args.id)
        data = output.document(document, full=True)
        data["versions"] = [output.version(v) for v in documents_uc.versions_of(session, args.id)]
        audit.record(
            session,
            actor=audit.CLI,
            action=audit.Action.EXPORT,
            outcome="document",
            document_id=document.id,
            nhs_number=document.nhs_number,
            detail={"format": "json" if args.json else "text"},
        )
    output.record(data, args.json)
    return 0


def cmd_documents_route(args: argparse.Namespace) -> int:
    with writing() as session:
        document = documents_uc.route_document(session, args.id, args.practice)
        audit.record(
            session,
            actor=audit.CLI,
            action=audit.Action.DOCUMENT_ROUTED,
            document_id=document.id,
            nhs_number=document.nhs_number,
            practice=document.practice_ods_code,
        )
        print(f"document {document.id} routed to practice {document.practice_ods_code}")
    return 0


def register(cli: Parser) -> None:
    """Add the `documents` group."""
    command, group = cli.command, cli.group
    documents = group("documents", "documents received")
    p = command(documents, "list", cmd_documents_list, "list documents, newest first")
    p.add_argument("--unroutable", action="store_true", help="only those with no practice")
    p.add_argument("--before", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = command(documents, "show", cmd_documents_show, "show a document and its versions")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = command(
        documents, "route", cmd_documents_route, "send an unroutable document to a practice"
    )
    p.add_argument("id", type=int)
    p.add_argument("practice", help="the practice's ODS code")
