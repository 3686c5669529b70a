"""Trying the service from outside: `send` files over MLLP, load the `demo`, and
`gp-poll`, the reference GP client."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

from cli import demo, gp_poll, progress
from cli.commands.common import CommandError, Parser, services
from cli.hl7_tools import split_messages
from flagging.storage.migrate import upgrade
from hl7.client import MLLPClient, tls_context


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
    wired = services()
    upgrade(wired.db.engine)
    for line in demo.load(wired):
        print(line)
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


def register(cli: Parser) -> None:
    """Add send and demo."""
    command, sub = cli.command, cli.sub
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


def register_gp_poll(cli: Parser) -> None:
    """Add gp-poll (listed last, after audit)."""
    command, sub = cli.command, cli.sub
    poll = command(sub, "gp-poll", cmd_gp_poll, "the reference GP client: poll a practice's feed")
    poll.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    poll.add_argument("--token", required=True, help="a GP bearer token")
    poll.add_argument("--practice", required=True, help="the practice's ODS code")
    poll.add_argument("--out", required=True, help="the folder to file documents into")
    poll.add_argument("--once", action="store_true", help="read what waits, then exit")
    poll.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
