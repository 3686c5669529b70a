"""Progress bars for long commands: on a terminal only, silent when the output is piped or
redirected (scripts and logs get the final line alone)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """A tqdm bar on standard error, or nothing when that is not a terminal."""

    def __init__(self, label: str) -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc=label, unit="", file=sys.stderr, leave=False)

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is None:
            return
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def bar(label: str) -> Iterator[Bar]:
    shown = Bar(label)
    try:
        yield shown
    finally:
        shown.close()
