"""Progress bars for long commands: on a terminal only, silent when the output is piped or
redirected (scripts and logs get the final line alone)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Bar:
    """A tqdm bar on standard error, or nothing when that is not a terminal."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc=label, total=total, unit="", file=sys.stderr, leave=False)

    def update(self, done: int, total: int | None = None) -> None:
        if self._bar is None:
            return
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def advance(self, step: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(step)

    def write(self, text: str) -> None:
        """A line of output on standard output, above the bar when there is one."""
        if self._bar is None:
            print(text)
        else:
            self._bar.write(text, file=sys.stdout)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def bar(label: str, total: int | None = None) -> Iterator[Bar]:
    shown = Bar(label, total)
    try:
        yield shown
    finally:
        shown.close()
