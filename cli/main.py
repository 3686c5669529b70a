"""`flagging`: the operator's command line. Every command exits non-zero with a one-line reason
on failure, and every list/show command prints JSON with --json."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from cli.commands import (
    audit,
    documents,
    messages,
    practices,
    rules,
    senders,
    service,
    tools,
    users,
)
from cli.commands.common import CommandError, Parser, close_services
from config import ConfigError
from config.logs import configure_logging
from flagging.errors import FlaggingError
from hl7.errors import HL7Error

# The processes that log what they do at INFO; other commands only warn.
SERVERS = ("serve", "web", "mllp", "scheduler")


def build_parser() -> argparse.ArgumentParser:
    """Every command, in the order `flagging --help` lists them (cli/commands/ holds them)."""
    parser = argparse.ArgumentParser(prog="flagging", description=__doc__)
    cli = Parser(parser.add_subparsers(dest="command", required=True))
    for module in (service, senders, practices, messages, documents, users, rules, tools, audit):
        module.register(cli)
    tools.register_gp_poll(cli)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # (APScheduler, which logs every job run at INFO, is held at WARNING: our jobs log what
    # they did themselves.)
    configure_logging("INFO" if args.command in SERVERS else "WARNING")
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
        close_services()
    return result


if __name__ == "__main__":
    sys.exit(main())
