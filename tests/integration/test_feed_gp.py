"""GP use cases on the database: tokens and their scope, what a practice may read, push state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from flagging import gp_reads, gp_tokens, practice_settings, push_queue, zfl
from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import GPToken, Practice, Visibility
from flagging.storage.engine import Database
from flagging.tokens import hash_token
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import (
    OTHER_PRACTICE,
    add_practice,
    decide,
    document_id,
    now,
    send,
    set_mode,
)


def _access(db: Database, token: str, ods_code: str = samples.PRACTICE) -> gp_tokens.PracticeAccess:
    with db.reading() as session:
        return gp_tokens.authorize(session, token, ods_code)


def test_token_is_shown_once_stored_hashed_and_scoped_to_its_practices(
    handler: MessageHandler, db: Database
) -> None:
    add_practice(db, OTHER_PRACTICE)
    with db.transaction() as session:
        issued = gp_tokens.issue_token(session, ["a81001", OTHER_PRACTICE], name="EMIS", now=now())
    assert issued.practices == (samples.PRACTICE, OTHER_PRACTICE)
    with db.reading() as session:
        stored = session.scalars(select(GPToken)).one()
        tokens = gp_tokens.list_tokens(session)
    assert stored.token_hash == hash_token(issued.token)
    assert issued.token not in stored.token_hash
    assert tokens[0].practices == (samples.PRACTICE, OTHER_PRACTICE)

    assert _access(db, issued.token).ods_code == samples.PRACTICE
    assert _access(db, issued.token, OTHER_PRACTICE).ods_code == OTHER_PRACTICE


def test_token_for_an_unregistered_practice_is_refused(
    handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session, pytest.raises(NotFound):
        gp_tokens.issue_token(session, [samples.PRACTICE, "Z99999"], now=now())
    with db.reading() as session:
        assert session.scalars(select(GPToken)).all() == []


def test_practice_outside_the_scope_looks_the_same_as_one_that_does_not_exist(
    handler: MessageHandler, db: Database
) -> None:
    add_practice(db, OTHER_PRACTICE)
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    with pytest.raises(NotFound) as outside:
        _access(db, token, OTHER_PRACTICE)
    with pytest.raises(NotFound) as missing:
        _access(db, token, "Z99999")
    assert str(outside.value).replace(OTHER_PRACTICE, "X") == str(missing.value).replace(
        "Z99999", "X"
    )


def test_revoked_and_unknown_tokens_are_not_authenticated(
    handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        issued = gp_tokens.issue_token(session, [samples.PRACTICE], now=now())
    with db.transaction() as session:
        gp_tokens.revoke_token(session, issued.id, now=now())
    for token in (issued.token, "not-a-token", ""):
        with pytest.raises(gp_tokens.NotAuthenticated):
            _access(db, token)


def test_another_practices_document_is_not_found(handler: MessageHandler, db: Database) -> None:
    add_practice(db, OTHER_PRACTICE)
    send(handler, samples.mdm(control_id="M1", number="MINE"))
    send(handler, samples.mdm(control_id="M2", number="THEIRS", practice=OTHER_PRACTICE))
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    access = _access(db, token)
    with db.reading() as session:
        assert (
            gp_reads.practice_document(session, access, document_id(db, "MINE")).version.version
            == 1
        )
        with pytest.raises(NotFound):
            gp_reads.practice_document(session, access, document_id(db, "THEIRS"))
        with pytest.raises(NotFound):
            gp_reads.practice_document(session, access, 10**12)


def test_decided_practice_cannot_read_a_document_before_it_is_decided(
    handler: MessageHandler, db: Database
) -> None:
    set_mode(db, samples.PRACTICE, "decided")
    send(handler, samples.mdm())
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    access = _access(db, token)
    doc = document_id(db, "DOC-1")
    with db.reading() as session, pytest.raises(NotFound):
        gp_reads.practice_document(session, access, doc)
    decide(db, doc, Visibility.WITHHELD)
    with db.reading() as session:
        view = gp_reads.practice_document(session, access, doc)
        feed = gp_reads.practice_feed(session, access, 0, 100)
    assert view.version.visibility == "withheld"
    assert [(e.type, e.visibility, e.version) for e in feed.events] == [
        ("document.available", "withheld", 1)
    ]


def test_document_view_is_the_latest_published_version_and_older_ones_on_request(
    handler: MessageHandler, db: Database
) -> None:
    send(handler, samples.mdm(control_id="M1", number="DOC-1", lines=("First.",)))
    send(
        handler,
        samples.mdm("T10", control_id="M2", number="DOC-2", parent="DOC-1", lines=("Second.",)),
    )
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    access = _access(db, token)
    doc = document_id(db, "DOC-1")
    with db.reading() as session:
        latest = gp_reads.practice_document(session, access, doc)
        first = gp_reads.practice_document(session, access, doc, version=1)
        with pytest.raises(NotFound):
            gp_reads.practice_document(session, access, doc, version=3)
    assert latest.version.version == 2
    assert latest.previous is not None
    assert latest.previous.version == 1
    assert latest.content_version is not None
    assert latest.content_version.content == b"Second."
    assert first.content_version is not None
    assert first.content_version.content == b"First."


def test_flag_carries_the_decision_that_set_the_visibility(
    handler: MessageHandler, db: Database
) -> None:
    send(handler, samples.mdm())
    doc = document_id(db, "DOC-1")
    decide(db, doc, Visibility.WITHHELD, reason="third-party")
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    access = _access(db, token)
    with db.reading() as session:
        view = gp_reads.practice_document(session, access, doc)
        flag = zfl.flag_for(session, view.version, "withheld")
        pending = zfl.flag_for(session, view.version, "pending")
    assert flag.status == "W"
    assert flag.nopat
    assert (flag.reason, flag.reason_text) == ("third-party", "Information about a third party")
    assert (flag.decided_by_code, flag.source) == ("C1234567", "clinician")
    assert pending.status == "P"
    assert pending.nopat
    assert pending.reason == ""


def test_acknowledgement_is_recorded_never_moves_back_and_not_beyond_the_feed(
    handler: MessageHandler, db: Database
) -> None:
    send(handler, samples.mdm(control_id="M1", number="D1"))
    send(handler, samples.mdm(control_id="M2", number="D2"))
    with db.transaction() as session:
        token = gp_tokens.issue_token(session, [samples.PRACTICE], now=now()).token
    access = _access(db, token)
    with db.transaction() as session:
        assert gp_reads.acknowledge(session, access, 2, now=now()).acknowledged_seq == 2
    with db.transaction() as session:
        assert gp_reads.acknowledge(session, access, 1, now=now()).acknowledged_seq == 2
    with db.transaction() as session, pytest.raises(Conflict):
        gp_reads.acknowledge(session, access, 3, now=now())
    with db.reading() as session:
        practice = session.scalars(select(Practice)).one()
    assert (practice.acknowledged_seq, practice.feed_seq) == (2, 2)
    assert practice.acknowledged_at is not None


def test_practice_settings_are_checked(handler: MessageHandler, db: Database) -> None:
    with db.transaction() as session:
        with pytest.raises(InvalidInput):
            practice_settings.configure_practice(session, samples.PRACTICE, feed_mode="sometimes")
        with pytest.raises(InvalidInput):
            practice_settings.configure_practice(session, samples.PRACTICE, push_host="gp.example")
        with pytest.raises(InvalidInput):
            practice_settings.configure_practice(session, samples.PRACTICE, push_from=5)
        practice = practice_settings.configure_practice(
            session, samples.PRACTICE, feed_mode="decided", push_host="127.0.0.1", push_port=2576
        )
    assert (practice.feed_mode, practice.push_host, practice.push_port) == (
        "decided",
        "127.0.0.1",
        2576,
    )


def test_push_claim_excludes_a_second_scheduler_and_delivery_moves_one_event_at_a_time(
    handler: MessageHandler, db: Database
) -> None:
    send(handler, samples.mdm(control_id="M1", number="D1"))
    send(handler, samples.mdm(control_id="M2", number="D2"))
    with db.transaction() as session:
        practice = practice_settings.configure_practice(
            session, samples.PRACTICE, push_host="127.0.0.1", push_port=2576
        )
        practice_id = practice.id
    t0 = now()
    with db.transaction() as session:
        assert push_queue.due_practices(session, t0) == [practice_id]
        target = push_queue.claim(session, practice_id, t0)
        assert target is not None
        assert push_queue.claim(session, practice_id, t0) is None  # another scheduler
        assert push_queue.due_practices(session, t0) == []
    with db.reading() as session:
        first = push_queue.next_delivery(session, target, target.push_seq)
    assert first is not None
    assert (first.seq, first.event_type) == (1, "document.available")
    assert first.annotation.control_id == push_queue.control_id(samples.PRACTICE, 1)
    assert len(first.annotation.control_id) <= 20
    assert first.raw.startswith(b"MSH|")
    with db.transaction() as session:
        assert not push_queue.delivered(session, target, 2, t0)  # never past an undelivered event
        assert push_queue.delivered(session, target, 1, t0)
        retry_at = push_queue.failed(session, target, 2, "answered AE", t0)
    assert timedelta(seconds=5) <= retry_at - t0 <= timedelta(seconds=6)
    with db.reading() as session:
        status = push_queue.push_status(session)
        assert push_queue.due_practices(session, t0) == []
        assert push_queue.due_practices(session, retry_at) == [practice_id]
    assert status[0].push_seq == 1
    assert status[0].backlog == 1
    assert (status[0].failures, status[0].error) == (1, "event 2: answered AE")


def test_backoff_doubles_up_to_a_ceiling() -> None:
    delays = [push_queue.retry_delay(n) for n in range(1, 12)]
    assert delays[0] >= timedelta(seconds=5)
    assert delays[1] >= timedelta(seconds=10)
    assert all(d <= push_queue.MAX_RETRY * 1.1 for d in delays)
    assert delays[-1] >= push_queue.MAX_RETRY
