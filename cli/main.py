"""`flagging`: the operator's command line. Every command exits non-zero with a one-line reason
on failure, and every list/show command prints JSON with --json."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cli import audit_commands, demo, gp_poll, hl7_tools, output, progress, scheduler
from cli.hl7_tools import split_messages
from cli.telemetry_setup import telemetry_setup
from cli.wiring import Services, build, mllp_listener, web_app
from config import ConfigError, Settings, load_settings
from config.logs import configure_logging
from flagging import audit, bindings, gp, organisations, retention, screening, users
from flagging import documents as documents_uc
from flagging import mesh as mesh_uc
from flagging import messages as messages_uc
from flagging.errors import FlaggingError
from flagging.models import MessageOutcome, MessageResolution
from flagging.models.base import utcnow
from flagging.storage.engine import Database
from flagging.storage.migrate import upgrade
from hl7.client import MLLPClient, tls_context
from hl7.errors import HL7Error

log = logging.getLogger("flagging.cli")


class CommandError(Exception):
    """A command failed for a reason the operator can act on."""


_opened: list[Services] = []


def _services(*, ingest: bool = False) -> Services:
    """The process's wiring; its database connections are closed when the command ends.

    `ingest`: this process receives messages all the time (a listener); on SQLite their
    transactions then run in a writer process of their own (flagging/storage/writer.py)."""
    settings = load_settings()
    services = build(settings, writer_process=ingest and settings.is_sqlite)
    _opened.append(services)
    return services


def _long_running(*, ingest: bool = False) -> Services:
    """The wiring of a server process, logging at FLAGGING_LOG_LEVEL in FLAGGING_LOG_FORMAT."""
    # Before any counter exists in this process: see cli/telemetry_setup.
    telemetry_setup(load_settings())
    services = _services(ingest=ingest)
    configure_logging(services.settings.log_level, services.settings.log_format)
    return services


# serve / mllp / web / db --------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Web app and MLLP listener in one process (the trial and small-trust mode)."""
    settings = load_settings()
    if settings.is_production:
        _check_mllp_exposure(settings, settings.mllp_host)
    services = _long_running(ingest=True)
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
    return 0


def cmd_mllp(args: argparse.Namespace) -> int:
    """The MLLP listener alone (run as many as needed in production)."""
    settings = load_settings()
    _check_mllp_exposure(settings, settings.mllp_host)
    services = _long_running(ingest=True)
    listener = mllp_listener(services, port=args.port)
    host, port = listener.address
    # Printed before the accept thread logs anything, so scripts can read the port reliably.
    print(f"flagging: MLLP on {host}:{port}", file=sys.stderr, flush=True)
    listener.start()
    _wait_for_signal()
    listener.stop()
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """The web app under gunicorn (production): FLAGGING_WEB_WORKERS processes."""
    from cli import web

    settings = load_settings()
    logging.getLogger().setLevel(settings.log_level)
    telemetry_setup(settings)
    web.run(settings, workers=args.workers or settings.web_workers, port=args.port)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """The scheduled jobs alone (review-window release, expiry, push, retention)."""
    if args.once:
        services = _services()
        for name, job, _ in scheduler.JOBS:
            print(f"{name}: {job(services)}")
        return 0
    services = _long_running()
    jobs = scheduler.start(services)
    print("flagging: scheduler running", file=sys.stderr, flush=True)
    _wait_for_signal()
    jobs.shutdown()
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


def _audit(session: Session, action: audit.Action, outcome: str, **detail: Any) -> None:
    """An administrative change made at the command line, in the command's transaction."""
    audit.record(session, actor=audit.CLI, action=action, outcome=outcome, detail=detail)


# senders / practices ------------------------------------------------------------------------


def cmd_senders_add(args: argparse.Namespace) -> int:
    services = _services()
    with services.db.transaction() as session:
        token = organisations.add_sender(
            session, args.ods_code, args.name or args.ods_code, args.application
        )
        _audit(session, audit.Action.SENDER_CHANGED, "added", sender=args.ods_code.upper())
    print(f"sender {args.ods_code.upper()} registered")
    print(f"HTTP bearer token (shown once, keep it safe): {token}")
    return 0


def cmd_senders_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        bound = bindings.bindings_by_sender(session)
        rows = [output.sender(s, bound.get(s.id)) for s in organisations.list_senders(session)]
    output.table(
        rows,
        ["ods_code", "application", "name", "networks", "certificates", "created_at"],
        args.json,
    )
    return 0


def cmd_senders_token(args: argparse.Namespace) -> int:
    """Issue another HTTP bearer token for a sender; its other tokens stay valid."""
    with _services().db.transaction() as session:
        issued = organisations.issue_sender_token(
            session, args.ods_code, application=args.application, name=args.name, now=utcnow()
        )
        _audit(
            session,
            audit.Action.TOKEN_CHANGED,
            "issued",
            sender=issued.sender,
            token=issued.id,
        )
    print(f"sender token {issued.id} issued for {issued.sender}")
    print(f"HTTP bearer token (shown once, keep it safe): {issued.token}")
    return 0


def cmd_senders_tokens(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.sender_token(t) for t in organisations.list_sender_tokens(session)]
    output.table(
        rows, ["id", "sender", "name", "created_at", "last_used_at", "revoked_at"], args.json
    )
    return 0


def cmd_senders_set(args: argparse.Namespace) -> int:
    """Bind a sender's MLLP connections to networks and/or client certificates."""
    networks = [] if args.clear_networks else args.allow_network
    certificates = [] if args.clear_certificates else args.certificate
    if networks is None and certificates is None:
        raise CommandError(
            "say what to set: --allow-network CIDR..., --certificate FINGERPRINT|SUBJECT..., "
            "--clear-networks or --clear-certificates"
        )
    with _services().db.transaction() as session:
        sender = organisations.find_sender(session, args.ods_code, args.application)
        if sender is None:
            raise CommandError(f"no sender {args.ods_code.upper()} is registered")
        now = bindings.set_bindings(
            session, sender.id, networks=networks, certificates=certificates
        )
        name = f"{sender.ods_code} {sender.application}".strip()
        _audit(
            session,
            audit.Action.SENDER_CHANGED,
            "bindings",
            sender=name,
            networks=now[bindings.NETWORK],
            certificates=now[bindings.CERTIFICATE],
        )
    nets, certs = now[bindings.NETWORK], now[bindings.CERTIFICATE]
    print(
        f"sender {name}: MLLP from networks {', '.join(nets) or '(any)'}; "
        f"certificates {', '.join(certs) or '(none required)'}"
        + ("" if nets or certs else "; with no binding it may send only over loopback")
    )
    return 0


def cmd_senders_revoke_token(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        token = organisations.revoke_sender_token(session, args.id, now=utcnow())
        _audit(session, audit.Action.TOKEN_CHANGED, "revoked", sender_token=token.id)
    print(f"sender token {token.id} revoked")
    return 0


def _check_mllp_exposure(settings: Settings, host: str) -> None:
    """Production refuses an MLLP listener that anyone on the network could speak to as a
    sender: on a non-loopback address, while a sender has no binding and client
    certificates are not required. (Such a sender's messages would be refused anyway; the
    point is to find the mistake at start, not at the first message.) Checked before the
    process starts anything else."""
    if not settings.is_production or settings.mllp_tls_client_ca:
        return
    if bindings.is_loopback_host(host):
        return
    db = Database(settings)
    try:
        with db.reading() as session:
            unbound = bindings.unbound_senders(session)
    finally:
        db.dispose()
    if unbound:
        raise CommandError(
            f"refusing to listen for MLLP on {host or 'every address'}: senders "
            f"{', '.join(unbound)} have no network or certificate binding and "
            "FLAGGING_MLLP_TLS_CLIENT_CA is not set (flagging senders set ODS --allow-network CIDR)"
        )


def cmd_practices_add(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        practice = organisations.add_practice(session, args.ods_code, args.name or "")
        _audit(session, audit.Action.PRACTICE_CHANGED, "added", practice=practice.ods_code)
        print(f"practice {practice.ods_code} registered")
    return 0


def cmd_practices_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.practice(p) for p in organisations.list_practices(session)]
    output.table(
        rows,
        ["ods_code", "name", "feed_mode", "feed_seq", "acknowledged_seq", "push", "push_error"],
        args.json,
    )
    return 0


def cmd_practices_set(args: argparse.Namespace) -> int:
    """Change a practice's feed mode, MLLP push endpoint and MESH mailbox."""
    with _services().db.transaction() as session:
        practice = gp.configure_practice(
            session,
            args.ods_code,
            feed_mode=args.feed_mode,
            push_host="" if args.no_push else args.push_host,
            push_port=0 if args.no_push else args.push_port,
            push_from=args.push_from,
            push_tls=args.push_tls,
        )
        push = f"{practice.push_host}:{practice.push_port}" if practice.push_host else "off"
        if practice.push_host and practice.push_tls:
            push += " over TLS"
        mesh_set = args.no_mesh or args.mesh_mailbox is not None
        if mesh_set or args.mesh_workflow is not None or args.mesh_from is not None:
            current = mesh_uc.channel_of(session, args.ods_code)
            mailbox = "" if args.no_mesh else (args.mesh_mailbox or "")
            if not mesh_set:
                if current is None:
                    raise FlaggingError("give --mesh-mailbox to put the practice on MESH")
                mailbox = current.mailbox
            mesh_uc.configure_channel(
                session,
                args.ods_code,
                mailbox,
                workflow=args.mesh_workflow,
                send_from=args.mesh_from,
            )
        channel = mesh_uc.channel_of(session, args.ods_code)
        mesh = f"{channel.mailbox} ({channel.workflow})" if channel else "off"
        _audit(
            session,
            audit.Action.PRACTICE_CHANGED,
            "set",
            practice=practice.ods_code,
            feed_mode=practice.feed_mode,
            push=push,
            push_seq=practice.push_seq,
            mesh=mesh,
        )
        print(
            f"practice {practice.ods_code}: feed mode {practice.feed_mode}, push {push}, "
            f"MESH {mesh}"
        )
    return 0


def cmd_practices_mesh(args: argparse.Namespace) -> int:
    """Practices on MESH and how delivery is going; with an ODS code, each message sent."""
    with _services().db.transaction() as session:
        if args.ods_code:
            rows = [
                output.mesh_message(m)
                for m in mesh_uc.sent_messages(session, args.ods_code, after=args.after)
            ]
            columns = ["seq", "event", "document", "message_id", "tracking", "answer"]
        else:
            rows = [output.mesh_status(s) for s in mesh_uc.channel_status(session)]
            columns = [
                "ods_code",
                "mailbox",
                "sent",
                "backlog",
                "in_mailbox",
                "downloaded",
                "filed",
                "errors",
                "state",
            ]
    output.table(rows, columns, args.json)
    return 0


def cmd_practices_token(args: argparse.Namespace) -> int:
    """Issue a GP system's bearer token for one or more practices."""
    with _services().db.transaction() as session:
        issued = gp.issue_token(session, args.ods_codes, name=args.name, now=utcnow())
        _audit(
            session,
            audit.Action.TOKEN_CHANGED,
            "issued",
            token_id=issued.id,
            practices=list(issued.practices),
        )
    print(f"GP token {issued.id} issued for {', '.join(issued.practices)}")
    print(f"bearer token (shown once, keep it safe): {issued.token}")
    return 0


def cmd_practices_tokens(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.gp_token(t) for t in gp.list_tokens(session)]
    output.table(rows, ["id", "name", "practices", "created_at", "revoked_at"], args.json)
    return 0


def cmd_practices_revoke_token(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        token = gp.revoke_token(session, args.id, now=utcnow())
        _audit(session, audit.Action.TOKEN_CHANGED, "revoked", token_id=token.id)
    print(f"GP token {token.id} revoked")
    return 0


def cmd_gp_poll(args: argparse.Namespace) -> int:
    """The reference GP client (cli/gp_poll.py)."""
    try:
        return gp_poll.main(
            args.url,
            args.token,
            args.practice,
            args.out,
            once=args.once,
            interval=args.interval,
        )
    except gp_poll.PollError as exc:
        raise CommandError(str(exc)) from None


# messages / documents -----------------------------------------------------------------------


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
    with _services().db.transaction() as session:
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
    with _services().db.transaction() as session:
        messages_uc.close_message(
            session, args.id, resolution, reason=args.reason, by=by, now=utcnow()
        )
    print(f"message {args.id} {resolution.value}")
    return 0


def cmd_messages_show(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
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
    services = _services()
    reply = services.handler.reprocess(args.id)
    print(f"message {args.id} reprocessed as message {reply.message_id}: {reply.code}")
    return 0 if reply.code == "AA" else 1


def cmd_retention_run(args: argparse.Namespace) -> int:
    """Delete the raw bytes of old messages (flagging/retention.py says what is kept)."""
    services = _services()
    days = services.settings.retention_days if args.days is None else args.days
    if days <= 0:
        raise CommandError(
            "retention is off (FLAGGING_RETENTION_DAYS is 0: keep for ever); give --days N"
        )
    with progress.bar("messages examined") as bar:
        report = retention.run_retention(
            services.db.transaction,
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
    with _services().db.transaction() as session:
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


# users / rules ------------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password from standard input (--password-stdin), or a new random one to print."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("--password-stdin was given but standard input held no password")
        return password, False
    return users.new_password(), True


def cmd_users_add(args: argparse.Namespace) -> int:
    password, generated = _password(args)
    with _services().db.transaction() as session:
        sender_id = None
        if args.sender:
            sender = organisations.find_sender(session, args.sender, args.application)
            if sender is None:
                raise CommandError(f"no sender {args.sender.upper()} is registered")
            sender_id = sender.id
        user = users.add_user(
            session,
            username=args.username,
            display_name=args.name or args.username,
            role=args.role,
            password=password,
            sender_id=sender_id,
            clinician_code=args.code,
        )
        _audit(session, audit.Action.USER_CHANGED, "added", user_id=user.id, role=user.role)
        print(f"user {user.username} added ({user.role})")
    if generated:
        print(f"password (shown once, give it to them securely): {password}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        senders = {s.id: s.ods_code for s in organisations.list_senders(session)}
        rows = [output.user(u, senders) for u in users.list_users(session)]
    output.table(
        rows,
        ["username", "display_name", "role", "sender", "clinician_code", "active", "locked"],
        args.json,
    )
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    password, generated = _password(args)
    with _services().db.transaction() as session:
        user = users.user_by_username(session, args.username)
        users.reset_password(session, user.id, password)
        _audit(session, audit.Action.USER_CHANGED, "password-reset", user_id=user.id)
        print(f"password of {user.username} reset; the account is unlocked")
    if generated:
        print(f"new password (shown once, give it to them securely): {password}")
    return 0


def cmd_rules_add(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rule = screening.add_rule(
            session, name=args.name, kind=args.kind, pattern=args.pattern, category=args.category
        )
        _audit(session, audit.Action.RULE_CHANGED, "added", rule_id=rule.id)
        print(f"rule {rule.id} added: {rule.kind} {rule.pattern!r}")
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        rows = [output.rule(r) for r in screening.list_rules(session)]
    output.table(rows, ["id", "category", "kind", "pattern", "name", "active"], args.json)
    return 0


def cmd_rules_enable(args: argparse.Namespace) -> int:
    active = args.action == "enable"
    with _services().db.transaction() as session:
        rule = screening.set_rule_active(session, args.id, active)
        _audit(session, audit.Action.RULE_CHANGED, "on" if active else "off", rule_id=rule.id)
        print(f"rule {rule.id} ({rule.name}) {'enabled' if active else 'disabled'}")
    return 0


def cmd_rules_starter(args: argparse.Namespace) -> int:
    with _services().db.transaction() as session:
        added = screening.add_starter_rules(session)
        _audit(session, audit.Action.RULE_CHANGED, "starter", added=added)
    print(f"{added} starter rules added")
    return 0


# send / demo --------------------------------------------------------------------------------


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
    context = None
    if args.tls or args.ca or args.cert:
        if bool(args.cert) != bool(args.key):
            raise CommandError("--cert and --key go together (a client certificate and its key)")
        try:
            context = tls_context(args.ca, args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            raise CommandError(f"cannot load the TLS files: {exc}") from None
    failures = 0
    try:
        with (
            MLLPClient(args.host, args.port, timeout=args.timeout, ssl_context=context) as client,
            progress.bar("messages sent", len(messages)) as bar,
        ):
            for name, message in messages:
                ack = client.send(message)
                text = ack.decode("latin-1")
                code = _ack_code(text)
                failures += code not in ("AA", "CA")
                bar.write(f"# {name}: {code}")
                bar.write(text.replace("\r", "\n").rstrip("\n"))
                bar.advance()
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
    web = command(sub, "web", cmd_web, "run the web app under gunicorn (production)")
    web.add_argument("--workers", type=int, help="override FLAGGING_WEB_WORKERS")
    web.add_argument("--port", type=int, help="override FLAGGING_HTTP_PORT (0: any free port)")
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
    p = command(senders, "list", cmd_senders_list, "list senders and their MLLP bindings")
    p.add_argument("--json", action="store_true")
    p = command(senders, "token", cmd_senders_token, "issue another HTTP bearer token")
    p.add_argument("ods_code")
    p.add_argument("--application", default="", help="MSH-3, when registered with one")
    p.add_argument("--name", default="", help="whose it is (an integration engine, an EPR)")
    p = command(senders, "tokens", cmd_senders_tokens, "list sender tokens and their last use")
    p.add_argument("--json", action="store_true")
    p = command(senders, "revoke-token", cmd_senders_revoke_token, "revoke a sender token")
    p.add_argument("id", type=int)
    p = command(
        senders,
        "set",
        cmd_senders_set,
        "bind a sender's MLLP connections to networks and/or client certificates",
    )
    p.add_argument("ods_code")
    p.add_argument("--application", default="", help="the sender's MSH-3, if it has one")
    p.add_argument(
        "--allow-network",
        nargs="+",
        metavar="CIDR",
        help="the networks it connects from (replaces those set before)",
    )
    p.add_argument(
        "--certificate",
        nargs="+",
        metavar="FINGERPRINT|SUBJECT",
        help="its client certificates: SHA-256 fingerprints or subjects such as "
        "'CN=ra7-engine,O=Example' (replaces those set before; needs FLAGGING_MLLP_TLS_CLIENT_CA)",
    )
    p.add_argument("--clear-networks", action="store_true", help="remove its networks")
    p.add_argument("--clear-certificates", action="store_true", help="remove its certificates")

    practices = group("practices", "GP practices documents go to")
    p = command(practices, "add", cmd_practices_add, "register a practice by ODS code")
    p.add_argument("ods_code")
    p.add_argument("--name", default="")
    p = command(practices, "list", cmd_practices_list, "list practices, their feed and push")
    p.add_argument("--json", action="store_true")
    p = command(practices, "set", cmd_practices_set, "change a practice's feed mode and push")
    p.add_argument("ods_code")
    p.add_argument(
        "--feed-mode",
        choices=gp.FEED_MODES,
        help="immediate: documents as soon as received; decided: once not pending",
    )
    p.add_argument("--push-host", help="deliver the feed over MLLP to this host")
    p.add_argument("--push-port", type=int)
    p.add_argument("--push-from", type=int, help="count events up to N as already delivered")
    p.add_argument("--no-push", action="store_true", help="stop pushing to the practice")
    p.add_argument(
        "--push-tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="push over TLS (FLAGGING_PUSH_TLS_CA, and FLAGGING_PUSH_TLS_CERT/KEY for a "
        "practice that requires our client certificate)",
    )
    p.add_argument(
        "--mesh-mailbox",
        metavar="ID",
        help="send the feed to this MESH mailbox (again: resume a stopped channel)",
    )
    p.add_argument(
        "--mesh-workflow",
        metavar="WORKFLOW",
        help=f"MESH workflow id of the messages (default {mesh_uc.DEFAULT_WORKFLOW})",
    )
    p.add_argument("--mesh-from", type=int, help="count events up to N as already sent")
    p.add_argument("--no-mesh", action="store_true", help="stop sending over MESH")
    p = command(practices, "mesh", cmd_practices_mesh, "MESH delivery per practice")
    p.add_argument("ods_code", nargs="?", help="list the messages sent to this practice")
    p.add_argument("--after", type=int, default=0, help="messages after event N")
    p.add_argument("--json", action="store_true")
    p = command(practices, "token", cmd_practices_token, "issue a GP system's bearer token")
    p.add_argument("ods_codes", nargs="+", metavar="ODS", help="the practices it may read")
    p.add_argument("--name", default="", help="whose it is (a GP system, a supplier)")
    p = command(practices, "tokens", cmd_practices_tokens, "list GP tokens and their scope")
    p.add_argument("--json", action="store_true")
    p = command(practices, "revoke-token", cmd_practices_revoke_token, "revoke a GP token")
    p.add_argument("id", type=int)

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

    accounts = group("users", "clinicians and administrators who sign in to the web pages")
    p = command(accounts, "add", cmd_users_add, "add a user; prints a new password once")
    p.add_argument("username")
    p.add_argument("--name", default="", help="as shown next to their decisions")
    p.add_argument("--role", choices=["clinician", "admin"], default="clinician")
    p.add_argument("--sender", default="", help="a clinician's trust: the sender's ODS code")
    p.add_argument("--application", default="", help="the sender's MSH-3, if it has one")
    p.add_argument("--code", default="", help="clinician code as sent in TXA-9 / OBR-32")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p = command(accounts, "list", cmd_users_list, "list users")
    p.add_argument("--json", action="store_true")
    p = command(
        accounts, "reset-password", cmd_users_reset_password, "set a new password and unlock"
    )
    p.add_argument("username")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    rules = group("rules", "screening rules that hold documents for a person to decide")
    p = command(rules, "add", cmd_rules_add, "add a rule")
    p.add_argument("--kind", choices=screening.KINDS, required=True)
    p.add_argument("--pattern", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--category", default="")
    p = command(rules, "list", cmd_rules_list, "list rules")
    p.add_argument("--json", action="store_true")
    p = command(rules, "disable", cmd_rules_enable, "turn a rule off")
    p.add_argument("id", type=int)
    p = command(rules, "enable", cmd_rules_enable, "turn a rule on again")
    p.add_argument("id", type=int)
    command(rules, "starter", cmd_rules_starter, "add the starter rules (skips those present)")

    send = command(sub, "send", cmd_send, "send HL7 files over MLLP and print each ACK")
    send.add_argument("files", nargs="+")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=2575)
    send.add_argument("--timeout", type=float, default=30.0)
    send.add_argument(
        "--tls", action="store_true", help="connect over TLS (implied by --ca, --cert)"
    )
    send.add_argument(
        "--ca", default="", help="CA file the server's certificate is checked against"
    )
    send.add_argument("--cert", default="", help="our client certificate (mutual TLS)")
    send.add_argument("--key", default="", help="the client certificate's private key")

    command(sub, "demo", cmd_demo, "register a demo trust and practice and load the examples")
    audit_commands.register(command, group, lambda: _services().db)

    poll = command(sub, "gp-poll", cmd_gp_poll, "the reference GP client: poll a practice's feed")
    poll.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    poll.add_argument("--token", required=True, help="a GP bearer token")
    poll.add_argument("--practice", required=True, help="the practice's ODS code")
    poll.add_argument("--out", required=True, help="the folder to file documents into")
    poll.add_argument("--once", action="store_true", help="read what waits, then exit")
    poll.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # (APScheduler, which logs every job run at INFO, is held at WARNING: our jobs log what
    # they did themselves.)
    configure_logging(
        "INFO" if args.command in ("serve", "web", "mllp", "scheduler") else "WARNING"
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
    finally:
        while _opened:
            _opened.pop().close()
    return result


if __name__ == "__main__":
    sys.exit(main())
