"""Logging a failure that repeats: one line a second at most, saying how many it stands for.

With the disk full every message failed the same way, and the log took two ERROR lines per
message and a traceback per batch (111,358 lines in 35 s), which filled what space was left.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

INTERVAL = 1.0  # seconds between two lines about the same failure


class Throttle:
    """Per kind of failure (a key), at most one line every `interval` seconds; the next line
    says how many were left out since the last."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL) -> None:
        self._log = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def error(self, key: str, message: str, *args: Any, exc_info: Any = None) -> bool:
        """Log `message` unless a line about `key` was logged less than `interval` ago;
        returns whether it was logged. `exc_info` (a traceback) is logged the first time
        only: the lines after it are about the same failure."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._left_out[key] = self._left_out.get(key, 0) + 1
                return False
            if last is not None:
                exc_info = None
            self._last[key] = now
            left_out = self._left_out.pop(key, 0)
        if left_out:
            message += " (and %d more like it since the last line)"
            args = (*args, left_out)
        self._log.error(message, *args, exc_info=exc_info)
        return True

    def active(self) -> bool:
        """Whether a failure was logged since the last `reset`."""
        with self._lock:
            return bool(self._last)

    def left_out(self) -> int:
        """How many lines are waiting to be counted in a next line, over every key."""
        with self._lock:
            return sum(self._left_out.values())

    def reset(self) -> int:
        """Forget every failure (they are over); returns how many lines had been left out."""
        with self._lock:
            left_out = sum(self._left_out.values())
            self._last.clear()
            self._left_out.clear()
        return left_out
