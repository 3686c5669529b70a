"""`flagging senders ...`: hospital systems allowed to send, their tokens and MLLP bindings."""

from __future__ import annotations

import argparse

from cli import output
from cli.commands.common import CommandError, Parser, audit_change, reading, writing
from flagging import audit, bindings, organisations
from flagging.models.base import utcnow


def cmd_senders_add(args: argparse.Namespace) -> int:
    with writing() as session:
        token = organisations.add_sender(
            session, args.ods_code, args.name or args.ods_code, args.application
        )
        audit_change(session, audit.Action.SENDER_CHANGED, "added", sender=args.ods_code.upper())
    print(f"sender {args.ods_code.upper()} registered")
    print(f"HTTP bearer token (shown once, keep it safe): {token}")
    return 0


def cmd_senders_list(args: argparse.Namespace) -> int:
    with reading() as session:
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
    with writing() as session:
        issued = organisations.issue_sender_token(
            session, args.ods_code, application=args.application, name=args.name, now=utcnow()
        )
        audit_change(
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
    with reading() as session:
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
    with writing() as session:
        sender = organisations.find_sender(session, args.ods_code, args.application)
        if sender is None:
            raise CommandError(f"no sender {args.ods_code.upper()} is registered")
        now = bindings.set_bindings(
            session, sender.id, networks=networks, certificates=certificates
        )
        name = f"{sender.ods_code} {sender.application}".strip()
        audit_change(
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
    with writing() as session:
        token = organisations.revoke_sender_token(session, args.id, now=utcnow())
        audit_change(session, audit.Action.TOKEN_CHANGED, "revoked", sender_token=token.id)
    print(f"sender token {token.id} revoked")
    return 0


def register(cli: Parser) -> None:
    """Add the `senders` group."""
    command, group = cli.command, cli.group
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
