"""Repeated failures log one line a second; long keys are stored the way they are looked up."""

from __future__ import annotations

import logging
import time

import pytest

from flagging.logs import Throttle
from flagging.store import KEY_LENGTH, bounded_key


def test_a_failure_repeated_a_hundred_times_is_one_line_then_one_line_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    throttle = Throttle(logging.getLogger("test.throttle"), interval=0.05)
    with caplog.at_level(logging.ERROR, logger="test.throttle"):
        logged = [throttle.error("disk", "write failed") for _ in range(100)]
        time.sleep(0.06)
        throttle.error("disk", "write failed")
        throttle.error("other", "something else")
    assert logged.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "write failed",
        "write failed (and 99 more like it since the last line)",
        "something else",
    ]


def test_a_traceback_is_logged_with_the_first_line_only(caplog: pytest.LogCaptureFixture) -> None:
    throttle = Throttle(logging.getLogger("test.throttle"), interval=0.0)
    error = OSError("disk full")
    with caplog.at_level(logging.ERROR, logger="test.throttle"):
        throttle.error("disk", "failed", exc_info=error)
        throttle.error("disk", "failed", exc_info=error)
    assert [r.exc_info is not None for r in caplog.records] == [True, False]


def test_reset_forgets_the_failures_and_counts_what_was_left_out() -> None:
    throttle = Throttle(logging.getLogger("test.throttle"), interval=60)
    for _ in range(3):
        throttle.error("disk", "failed")
    assert throttle.active()
    assert throttle.reset() == 2
    assert not throttle.active()


def test_short_keys_are_stored_as_they_are() -> None:
    assert bounded_key("MSG0001") == "MSG0001"
    assert bounded_key("x" * KEY_LENGTH) == "x" * KEY_LENGTH


def test_long_keys_fit_the_column_and_stay_distinct_and_equal() -> None:
    a, b = "C" * 199 + "A", "C" * 199 + "B"
    assert len(bounded_key(a)) <= KEY_LENGTH
    assert bounded_key(a) == bounded_key(a)
    assert bounded_key(a) != bounded_key(b)
    assert bounded_key(a).startswith("C" * 100)
