"""Bar charts drawn on the server as SVG geometry, rendered by templates (no script, nothing
loaded from elsewhere). Each chart also carries its figures, for a table beside it."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, GAP = 480, 120, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    maximum: int
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(title: str, labels: list[str], values: list[int]) -> BarChart:
    """Bars scaled to the largest value (an empty chart keeps its frame)."""
    top = max(values, default=0)
    slot = WIDTH / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = (value / top) * (HEIGHT - 10) if top else 0.0
        bars.append(
            Bar(
                x=round(i * slot + GAP / 2, 1),
                y=round(HEIGHT - height, 1),
                width=round(slot - GAP, 1),
                height=round(height, 1),
                label=label,
                value=value,
            )
        )
    return BarChart(title, bars, top)
