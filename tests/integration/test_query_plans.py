"""The partial indexes are used by the queries they are for (SQLite's query planner uses a
partial index only when the query names its condition: flagging/worklist.py and
flagging/messages.py do)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from flagging.messages import MessageSearch, list_messages, search_messages
from flagging.models import MessageOutcome, Visibility
from flagging.models.documents import DECIDED
from flagging.models.messages import NOT_ACCEPTED
from flagging.storage.engine import Database
from flagging.worklist import Filters, worklist_page


@contextmanager
def _plans(db: Database) -> Iterator[tuple[Session, list[str]]]:
    """A session, and SQLite's plan of every SELECT run in it, one string each."""
    if not db.settings.is_sqlite:
        pytest.skip("SQLite's planner (PostgreSQL's plans depend on its statistics)")
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append((sql, params))

    event.listen(db.engine, "before_cursor_execute", seen)
    plans: list[str] = []
    try:
        with db.reading() as session:
            yield session, plans
            for sql, params in statements:
                rows = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
                plans.append(" / ".join(str(row[-1]) for row in rows))
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)


def _using(plans: list[str], index: str) -> list[str]:
    return [plan for plan in plans if f"INDEX {index} " in plan]


@pytest.mark.parametrize(
    ("author", "index"),
    [("", "ix_documents_decided"), ("C1234567", "ix_documents_decided_author")],
)
def test_the_worklists_decided_segments_walk_the_partial_decided_indexes(
    db: Database, author: str, index: str
) -> None:
    for status in (Visibility.WITHHELD, Visibility.VISIBLE):
        with _plans(db) as (session, plans):
            worklist_page(session, Filters(sender_id=1, author_code=author, status=status))
        assert len(plans) == 1
        assert _using(plans, index), plans


@pytest.mark.parametrize("outcome", [MessageOutcome.QUARANTINED, MessageOutcome.REJECTED])
def test_messages_listed_by_an_outcome_other_than_accepted_walk_the_partial_outcome_index(
    db: Database, outcome: MessageOutcome
) -> None:
    calls: list[Callable[[Session], object]] = [
        lambda s: list_messages(s, outcome=outcome),
        lambda s: search_messages(s, MessageSearch(outcome=outcome)),
    ]
    for call in calls:
        with _plans(db) as (session, plans):
            call(session)
        assert _using(plans, "ix_inbound_messages_outcome_id"), plans


def test_the_conditions_the_queries_name_are_the_ones_the_values_mean() -> None:
    assert f"visibility <> '{Visibility.PENDING.value}'" == DECIDED
    assert f"outcome <> '{MessageOutcome.ACCEPTED.value}'" == NOT_ACCEPTED
