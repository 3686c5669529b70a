"""`flagging users ...`: clinicians and administrators who sign in to the web pages."""

from __future__ import annotations

import argparse
import sys

from cli import output
from cli.commands.common import CommandError, Parser, audit_change, reading, writing
from flagging import audit, organisations, users


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
    with writing() as session:
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
        audit_change(session, audit.Action.USER_CHANGED, "added", user_id=user.id, role=user.role)
        print(f"user {user.username} added ({user.role})")
    if generated:
        print(f"password (shown once, give it to them securely): {password}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    with reading() as session:
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
    with writing() as session:
        user = users.user_by_username(session, args.username)
        users.reset_password(session, user.id, password)
        audit_change(session, audit.Action.USER_CHANGED, "password-reset", user_id=user.id)
        print(f"password of {user.username} reset; the account is unlocked")
    if generated:
        print(f"new password (shown once, give it to them securely): {password}")
    return 0


def register(cli: Parser) -> None:
    """Add the `users` group."""
    command, group = cli.command, cli.group
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
