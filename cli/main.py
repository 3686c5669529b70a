"""`flagging`: the operator's command line. Every command exits non-zero with a one-line reason
on failure, and every list/show command prints JSON with --json."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cli import demo, output, scheduler
from cli.wiring import Services, build, mllp_listener, web_app
from config import ConfigError, load_settings
from flagging import documents as documents_uc
from flagging import messages as messages_uc
from flagging import organisations
from flagging.errors import FlaggingError
from flagging.migrate import upgrade
from flagging.models import MessageOutcome
from hl7.client import MLLPClient
from hl7.errors import HL7Error

log = logging.getLogger("flagging.cli")


class CommandError(Exception):
    """A command failed for a reason the operator can act on."""


def _services() -> Services:
    return build(load_settings())


# serve / mllp / web / db --------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Web app and MLLP listener in one process (the trial and small-trust mode)."""
    services = _services()
    settings = services.settings
    if not settings.is_production:
        upgrade(services.db.engine)
    if args.demo:
        demo.load_if_empty(services)
    from werkzeug.serving import make_server

    web = make_server(settings.http_host, settings.http_port, web_app(services), threaded=True)
    listener = mllp_listener(services)
    print(
        f"flagging: web on http://{settings.http_host}:{web.server_port}, "
        f"MLLP on {listener.address[0]}:{listener.address[1]}, "
        f"database {services.db.engine.url.render_as_string(hide_password=True)}",
        file=sys.stderr,
        flush=True,
    )
    listener.start()
    threading.Thread(target=web.serve_forever, name="http", daemon=True).start()
    jobs = scheduler.start(services)
    _wait_for_signal()
    jobs.shutdown()
    listener.stop()
    web.shutdown()
    services.db.dispose()
    return 0


def cmd_mllp(args: argparse.Namespace) -> int:
    """The MLLP listener alone (run as many as needed in production)."""
    services = _services()
    listener = mllp_listener(services, port=args.port)
    host, port = listener.address
    # Printed before the accept thread logs anything, so scripts can read the port reliably.
    print(f"flagging: MLLP on {host}:{port}", file=sys.stderr, flush=True)
    listener.start()
    _wait_for_signal()
    listener.stop()
    services.db.dispose()
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """The scheduled jobs alone (review-window release, expiry, push)."""
    services = _services()
    if args.once:
        for name, job, _ in scheduler.JOBS:
            print(f"{name}: {job(services)}")
        return 0
    jobs = scheduler.start(services)
    print("flagging: scheduler running", file=sys.stderr, flush=True)
    _wait_for_signal()
    jobs.shutdown()
    services.db.dispose()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    services = _services()
    upgrade(services.db.engine)
    print("database is at the newest revision")
    return 0


# senders / practices ------------------------------------------------------------------------


def cmd_senders_add(args: argparse.Namespace) -> int:
    services = _services()
    with services.db.transaction() as session:
        token = organisations.add_sender(
            session, args.ods_code, args.name or args.ods_code, args.application
        )
    print(f"sender {args.ods_code.upper()} registered")
    print(f"HTTP bearer token (shown once, keep it safe): {token}")
    return 0


def cmd_senders_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.sender(s) for s in organisations.list_senders(session)]
    output.table(rows, ["ods_code", "application", "name", "created_at"], args.json)
    return 0


def cmd_practices_add(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        practice = organisations.add_practice(session, args.ods_code, args.name or "")
        print(f"practice {practice.ods_code} registered")
    return 0


def cmd_practices_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.practice(p) for p in organisations.list_practices(session)]
    output.table(rows, ["ods_code", "name", "created_at"], args.json)
    return 0


# messages / documents -----------------------------------------------------------------------


def cmd_messages_list(args: argparse.Namespace) -> int:
    outcome = MessageOutcome(args.outcome) if args.outcome else None
    with _services().db.transaction() as session:
        rows = [
            output.message(m)
            for m in messages_uc.list_messages(
                session, outcome=outcome, before_id=args.before, limit=args.limit
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
        ],
        args.json,
    )
    return 0


def cmd_messages_show(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        message = messages_uc.get_message(session, args.id)
        raw = messages_uc.original_bytes(session, message)
        data = output.message(message, full=True)
    if args.raw:
        sys.stdout.buffer.write(raw)
        return 0
    data["raw"] = raw.decode("latin-1").replace("\r", "\n")
    output.record(data, args.json)
    return 0


def cmd_messages_reprocess(args: argparse.Namespace) -> int:
    services = _services()
    reply = services.handler.reprocess(args.id)
    print(f"message {args.id} reprocessed as message {reply.message_id}: {reply.code}")
    return 0 if reply.code == "AA" else 1


def cmd_documents_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
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
    with _services().db.transaction() as session:
        document = documents_uc.get_document(session, args.id)
        data = output.document(document, full=True)
        data["versions"] = [output.version(v) for v in documents_uc.versions_of(session, args.id)]
    output.record(data, args.json)
    return 0


def cmd_documents_route(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        document = documents_uc.route_document(session, args.id, args.practice)
        print(f"document {document.id} routed to practice {document.practice_ods_code}")
    return 0


# send / demo --------------------------------------------------------------------------------


def split_messages(data: bytes) -> list[bytes]:
    """The messages of a file: each starts at a line beginning with MSH (batch files hold many)."""
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for line in lines:
        if line.lstrip(b"\xef\xbb\xbf").startswith(b"MSH"):
            messages.append([])
        if messages and line.strip():
            messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


def cmd_send(args: argparse.Namespace) -> int:
    """Send files over MLLP on one connection and print each ACK."""
    messages: list[tuple[str, bytes]] = []
    for name in args.files:
        try:
            found = split_messages(Path(name).read_bytes())
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror}") from None
        if not found:
            raise CommandError(f"{name} holds no HL7 message (no line starts with MSH)")
        messages.extend((name, m) for m in found)
    failures = 0
    try:
        with MLLPClient(args.host, args.port, timeout=args.timeout) as client:
            for name, message in messages:
                ack = client.send(message)
                text = ack.decode("latin-1")
                code = _ack_code(text)
                failures += code not in ("AA", "CA")
                print(f"# {name}: {code}")
                print(text.replace("\r", "\n").rstrip("\n"))
    except OSError as exc:
        raise CommandError(f"cannot talk to {args.host}:{args.port}: {exc}") from None
    return 1 if failures else 0


def _ack_code(ack: str) -> str:
    for segment in ack.split("\r"):
        if segment.startswith("MSA"):
            return segment[4:6]
    return "??"


def cmd_demo(args: argparse.Namespace) -> int:
    services = _services()
    upgrade(services.db.engine)
    for line in demo.load(services):
        print(line)
    return 0


# parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flagging", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        parent: Any, name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def group(name: str, help_text: str) -> Any:
        p = sub.add_parser(name, help=help_text)
        return p.add_subparsers(dest="action", required=True)

    serve = command(sub, "serve", cmd_serve, "run the web app and MLLP listener in one process")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the demo trust, practice and examples into an empty database",
    )
    mllp = command(sub, "mllp", cmd_mllp, "run the MLLP listener alone")
    mllp.add_argument("--port", type=int, help="override FLAGGING_MLLP_PORT (0: any free port)")

    sched = command(sub, "scheduler", cmd_scheduler, "run the scheduled jobs")
    sched.add_argument("--once", action="store_true", help="run each job once and exit")

    db = group("db", "database schema")
    command(db, "upgrade", cmd_db_upgrade, "apply the migrations")

    senders = group("senders", "hospital systems allowed to send")
    p = command(senders, "add", cmd_senders_add, "register a sender by its MSH-4 ODS code")
    p.add_argument("ods_code")
    p.add_argument("--name", default="")
    p.add_argument("--application", default="", help="MSH-3, when one trust has several")
    p = command(senders, "list", cmd_senders_list, "list senders")
    p.add_argument("--json", action="store_true")

    practices = group("practices", "GP practices documents go to")
    p = command(practices, "add", cmd_practices_add, "register a practice by ODS code")
    p.add_argument("ods_code")
    p.add_argument("--name", default="")
    p = command(practices, "list", cmd_practices_list, "list practices")
    p.add_argument("--json", action="store_true")

    messages = group("messages", "every message received, with its outcome")
    p = command(messages, "list", cmd_messages_list, "list messages, newest first")
    p.add_argument("--outcome", choices=[o.value for o in MessageOutcome])
    p.add_argument("--before", type=int, help="only messages with a smaller id (next page)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = command(messages, "show", cmd_messages_show, "show one message and its ACK")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="write the bytes exactly as received")
    p = command(
        messages, "reprocess", cmd_messages_reprocess, "run a quarantined or rejected message again"
    )
    p.add_argument("id", type=int)

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

    send = command(sub, "send", cmd_send, "send HL7 files over MLLP and print each ACK")
    send.add_argument("files", nargs="+")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=2575)
    send.add_argument("--timeout", type=float, default=30.0)

    command(sub, "demo", cmd_demo, "register a demo trust and practice and load the examples")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command in ("serve", "mllp") else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        result: int = args.func(args)
    except (CommandError, ConfigError, FlaggingError, HL7Error) as exc:
        print(f"flagging: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        print(f"flagging: database error: {type(exc).__name__}: {detail}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
