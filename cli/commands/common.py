"""What every command module shares: the process's wiring, its transactions, the parser's
helpers and the one error an operator can act on."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy.orm import Session

from cli.telemetry_setup import telemetry_setup
from cli.wiring import Services, build
from config import load_settings
from config.logs import configure_logging
from flagging import audit

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A command failed for a reason the operator can act on."""


_opened: list[Services] = []


def services(*, ingest: bool = False) -> Services:
    """The process's wiring; its database connections are closed when the command ends.

    `ingest`: this process receives messages all the time (a listener); on SQLite their
    transactions then run in a writer process of their own (flagging/storage/writer.py)."""
    settings = load_settings()
    wired = build(settings, writer_process=ingest and settings.is_sqlite)
    _opened.append(wired)
    return wired


def long_running(*, ingest: bool = False) -> Services:
    """The wiring of a server process, logging at FLAGGING_LOG_LEVEL in FLAGGING_LOG_FORMAT."""
    # Before any counter exists in this process: see cli/telemetry_setup.
    telemetry_setup(load_settings())
    wired = services(ingest=ingest)
    configure_logging(wired.settings.log_level, wired.settings.log_format)
    return wired


def close_services() -> None:
    """Close what `services` opened (main, when the command ends)."""
    while _opened:
        _opened.pop().close()


def writing() -> AbstractContextManager[Session]:
    """The command's write transaction: committed when the block ends without error."""
    return services().db.transaction()


@contextmanager
def reading() -> Iterator[Session]:
    """A read-only session for list and status commands: no write transaction, no write lock
    (on SQLite a deferred transaction that waits for no writer), rolled back at the end."""
    with services().db.reading() as session:
        yield session


def audit_change(session: Session, action: audit.Action, outcome: str, **detail: Any) -> None:
    """An administrative change made at the command line, in the command's transaction."""
    audit.record(session, actor=audit.CLI, action=action, outcome=outcome, detail=detail)


class Parser:
    """The top level of the `flagging` parser, as each command module adds its commands."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def command(
        self, parent: Any, name: str, func: Handler, help_text: str
    ) -> argparse.ArgumentParser:
        """A command under `parent` (the top level, `sub`, or a group) that runs `func`."""
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def group(self, name: str, help_text: str) -> Any:
        """A group of commands (`flagging NAME ACTION`); add them with `command`."""
        p = self.sub.add_parser(name, help=help_text)
        return p.add_subparsers(dest="action", required=True)
