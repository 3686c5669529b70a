"""`flagging practices ...`: GP practices, their feed mode, push, MESH and tokens."""

from __future__ import annotations

import argparse

from cli import output
from cli.commands.common import Parser, audit_change, reading, writing
from flagging import audit, gp_tokens, mesh_channels, organisations, practice_settings
from flagging.errors import FlaggingError
from flagging.models.base import utcnow


def cmd_practices_add(args: argparse.Namespace) -> int:
    with writing() as session:
        practice = organisations.add_practice(session, args.ods_code, args.name or "")
        audit_change(session, audit.Action.PRACTICE_CHANGED, "added", practice=practice.ods_code)
        print(f"practice {practice.ods_code} registered")
    return 0


def cmd_practices_list(args: argparse.Namespace) -> int:
    with reading() as session:
        rows = [output.practice(p) for p in organisations.list_practices(session)]
    output.table(
        rows,
        ["ods_code", "name", "feed_mode", "feed_seq", "acknowledged_seq", "push", "push_error"],
        args.json,
    )
    return 0


def cmd_practices_set(args: argparse.Namespace) -> int:
    """Change a practice's feed mode, MLLP push endpoint and MESH mailbox."""
    with writing() as session:
        practice = practice_settings.configure_practice(
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
            current = mesh_channels.channel_of(session, args.ods_code)
            mailbox = "" if args.no_mesh else (args.mesh_mailbox or "")
            if not mesh_set:
                if current is None:
                    raise FlaggingError("give --mesh-mailbox to put the practice on MESH")
                mailbox = current.mailbox
            mesh_channels.configure_channel(
                session,
                args.ods_code,
                mailbox,
                workflow=args.mesh_workflow,
                send_from=args.mesh_from,
            )
        channel = mesh_channels.channel_of(session, args.ods_code)
        mesh = f"{channel.mailbox} ({channel.workflow})" if channel else "off"
        audit_change(
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
    with reading() as session:
        if args.ods_code:
            rows = [
                output.mesh_message(m)
                for m in mesh_channels.sent_messages(session, args.ods_code, after=args.after)
            ]
            columns = ["seq", "event", "document", "message_id", "tracking", "answer"]
        else:
            rows = [output.mesh_status(s) for s in mesh_channels.channel_status(session)]
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
    with writing() as session:
        issued = gp_tokens.issue_token(session, args.ods_codes, name=args.name, now=utcnow())
        audit_change(
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
    with reading() as session:
        rows = [output.gp_token(t) for t in gp_tokens.list_tokens(session)]
    output.table(rows, ["id", "name", "practices", "created_at", "revoked_at"], args.json)
    return 0


def cmd_practices_revoke_token(args: argparse.Namespace) -> int:
    with writing() as session:
        token = gp_tokens.revoke_token(session, args.id, now=utcnow())
        audit_change(session, audit.Action.TOKEN_CHANGED, "revoked", token_id=token.id)
    print(f"GP token {token.id} revoked")
    return 0


def register(cli: Parser) -> None:
    """Add the `practices` group."""
    command, group = cli.command, cli.group
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
        choices=practice_settings.FEED_MODES,
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
        help=f"MESH workflow id of the messages (default {mesh_channels.DEFAULT_WORKFLOW})",
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
