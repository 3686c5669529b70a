"""Access to the process's wiring from inside a request, and the request's transaction.

A request owns one transaction (warehouse's request-scoped session): `db_session()` opens it
on first use, and the view's wrapper (`in_request_transaction`, applied to every view by
create_app) commits it when the view returns, or rolls it back when the view raises, before
the response leaves: a redirect or a JSON answer is sent only once what it reports is
committed. GET and HEAD get a read-only transaction (on SQLite a deferred one that takes no
write lock; on PostgreSQL SET TRANSACTION READ ONLY), unless the view is marked
`records_reads`: it appends what it served to the audit trail, which is a write.

Views call use cases with the session; they do not open, commit or roll back transactions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from config import Settings
from flagging.transactions import Transactions

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RECORDS_READS = "records_reads"
_OPEN = "flagging_transaction"  # g: (the context manager, its session)

View = TypeVar("View", bound=Callable[..., Any])


def database() -> Transactions:
    return cast(Transactions, current_app.extensions["flagging.db"])


def settings() -> Settings:
    return cast(Settings, current_app.extensions["flagging.settings"])


def records_reads(view: View) -> View:
    """Mark a GET view that audits what it served: its transaction is a write one."""
    setattr(view, _RECORDS_READS, True)
    return view


@contextmanager
def _reading(db: Transactions) -> Iterator[Session]:
    """The storage's read session (SQLite: a deferred BEGIN, no write lock), which on
    PostgreSQL is also told it may not write."""
    with db.reading() as session:
        if db.engine.dialect.name == "postgresql":
            session.execute(text("SET TRANSACTION READ ONLY"))
        yield session  # nothing to commit: closing the session rolls back


def _writes() -> bool:
    if request.method not in READ_METHODS:
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _RECORDS_READS, False))


def db_session() -> Session:
    """The request's session, its transaction begun on first use (see the module's comment)."""
    opened = g.get(_OPEN)
    if opened is None:
        db = database()
        manager: AbstractContextManager[Session] = db.transaction() if _writes() else _reading(db)
        opened = (manager, manager.__enter__())
        setattr(g, _OPEN, opened)
    return cast(Session, opened[1])


def end_transaction(error: BaseException | None = None) -> None:
    """Commit the request's transaction (roll it back if `error`), if one was begun.

    Called at the request boundary; a view calls it only before handing work to an entry point
    that owns a transaction of its own (the HL7 message handler: commit, then ACK), which on
    SQLite would otherwise wait for the write lock this thread holds."""
    opened = g.pop(_OPEN, None)
    if opened is None:
        return
    manager = opened[0]
    if error is None:
        manager.__exit__(None, None, None)
    else:
        manager.__exit__(type(error), error, error.__traceback__)


@contextmanager
def attempt() -> Iterator[Session]:
    """A change the view may see refused and answer for itself (a form shown again with what
    to correct): run in a savepoint, so that a refused change leaves nothing behind and the
    rest of the request can still read and write in its transaction."""
    session = db_session()
    with session.begin_nested():
        yield session


def in_request_transaction(view: View) -> View:
    """The request boundary around a view: commit what it did when it returns, roll back when
    it raises (the error handlers then answer), before anything is sent."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            response = view(*args, **kwargs)
        except BaseException as exc:
            end_transaction(exc)
            raise
        end_transaction()
        return response

    return cast(View, wrapper)


def discard_transaction(_exc: BaseException | None) -> None:
    """Teardown: roll back a transaction begun outside a view (a hook, an error handler)."""
    end_transaction(_exc or RuntimeError("the request ended outside its view"))
