"""The bounded fuzz run (issue 10): mutated corpus messages over a live listener and over HTTP.

The full run is `bench/fuzz.py` (a million inputs); this one is a few thousand, in seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cli.wiring import Services, web_app
from config import Settings
from flagging.models import InboundMessage
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import fuzzing

MLLP_INPUTS = 1500
HTTP_INPUTS = 500


def _recorded(db: Database) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def _unexpected(db: Database) -> int:
    """Inputs answered by the last line of defence: something broke that should not have."""
    with db.transaction() as session:
        query = select(func.count()).where(InboundMessage.error_text.startswith(fuzzing.UNEXPECTED))
        return int(session.scalar(query) or 0)


def test_every_mutated_input_over_mllp_is_answered_with_a_well_formed_ack_and_recorded(
    listener: MLLPListener, db: Database
) -> None:
    inputs = fuzzing.Mutator(fuzzing.seeds(), seed=10)

    tally = fuzzing.drive_mllp(listener.address, inputs, MLLP_INPUTS, connections=4, timeout=30)

    assert (tally.sent, tally.answered, tally.dropped, tally.malformed) == (
        MLLP_INPUTS,
        MLLP_INPUTS,
        0,
        0,
    ), tally.examples
    assert set(tally.codes) >= {"AA", "AE", "AR"}  # the mutations reach every outcome
    assert _recorded(db) == MLLP_INPUTS
    assert _unexpected(db) == 0


@pytest.fixture
def http_address(
    db: Database, settings: Settings, handler: MessageHandler
) -> Iterator[tuple[str, int]]:
    server = make_server("127.0.0.1", 0, web_app(Services(settings, db, handler)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_port
    server.shutdown()
    thread.join(5)


def test_every_mutated_input_over_http_is_answered_and_none_is_a_500(
    http_address: tuple[str, int], sender_token: str, db: Database
) -> None:
    inputs = fuzzing.Mutator(fuzzing.seeds(), seed=20)

    tally = fuzzing.drive_http(http_address, sender_token, inputs, HTTP_INPUTS, timeout=30)

    assert (tally.sent, tally.answered, tally.dropped, tally.http_500, tally.malformed) == (
        HTTP_INPUTS,
        HTTP_INPUTS,
        0,
        0,
        0,
    ), tally.examples
    assert tally.other_status == {}
    assert _recorded(db) == HTTP_INPUTS
    assert _unexpected(db) == 0
