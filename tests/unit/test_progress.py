"""Progress bars of long commands: drawn on a terminal, silent when the output is piped."""

from __future__ import annotations

import io

import pytest

from cli import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_standard_error_when_it_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress.bar("messages sent", 4) as bar:
        bar.write("# one.hl7: AA")
        bar.advance(2)
        bar.update(3)
        assert "messages sent" in terminal.getvalue()
        assert "3/4" in terminal.getvalue()
    assert "# one.hl7: AA" in capsys.readouterr().out


def test_nothing_but_the_output_is_written_when_piped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress.bar("messages sent", 4) as bar:
        bar.write("# one.hl7: AA")
        bar.advance()
        bar.update(4, 4)
    captured = capsys.readouterr()
    assert captured.out == "# one.hl7: AA\n"
    assert captured.err == ""
