"""A sparkline with an honest baseline: bars rise from zero, so a series that moved 0.1% looks flat.

Textual's Sparkline scales from the series' minimum to its maximum, which draws a flat 691 MiB with one 1 MiB
bump as a wall. Here the scale is 0 to the maximum (said in the label above the graph), each column is the
largest value of its bucket of samples, and two lines give 16 levels. Redrawn only when the picture changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
LEVELS_PER_LINE = len(BLOCKS) - 1


def columns(values: Sequence[float], width: int) -> list[float]:
    """At most ``width`` columns: the largest value of each bucket of consecutive samples, newest last."""
    if width <= 0 or not values:
        return []
    if len(values) <= width:
        return list(values)
    size = len(values) / width
    return [max(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)]


def bar_lines(values: Sequence[float], width: int, height: int, top: float | None = None) -> list[str]:
    """The graph as ``height`` lines of block characters, right-aligned (newest at the right edge); the scale
    is 0..``top`` (default: the largest value). Negative values draw as zero."""
    buckets = columns(values, width)
    top = max(buckets, default=0.0) if top is None else top
    levels = height * LEVELS_PER_LINE
    heights = [0 if top <= 0 else round(max(0.0, value) / top * levels) for value in buckets]
    heights = [max(h, 1) if value > 0 else h for h, value in zip(heights, buckets, strict=True)]
    lines = []
    for line in range(height):  # top line first
        floor = (height - 1 - line) * LEVELS_PER_LINE
        cells = "".join(BLOCKS[min(LEVELS_PER_LINE, max(0, h - floor))] for h in heights)
        lines.append(cells.rjust(width))
    return lines


class Trend(Widget):
    """``values`` drawn as bars from zero; ``show(values)`` redraws only when they changed."""

    COMPONENT_CLASSES = {"trend--bar"}
    DEFAULT_CSS = """
    Trend { width: 1fr; height: 2; }
    Trend > .trend--bar { color: $primary; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._values: tuple[float, ...] = ()
        self._bars: tuple[tuple[int, int], list[str]] = ((0, 0), [])
        """The bars drawn last, with the size they were drawn for."""
        self._lines: list[Strip] | None = None
        self._style: Style | None = None

    def show(self, values: Sequence[float]) -> None:
        values = tuple(values)
        if values == self._values:
            return
        self._values = values
        size = (self.size.width, self.size.height)
        bars = bar_lines(values, *size)
        if (size, bars) == self._bars:
            return  # new data, same picture (a flat series, or a change below one level): nothing to redraw
        self._bars = (size, bars)
        self._lines = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        if self._lines is None or self._bars[0] != (width, height):
            if self._bars[0] != (width, height):  # resized since show(): the bars are drawn for the new size
                self._bars = ((width, height), bar_lines(self._values, width, height))
            if self._style is None:
                self._style = self.rich_style + self.get_component_rich_style("trend--bar")
            style = self._style
            self._lines = [Strip([Segment(text, style)]) for text in self._bars[1]]
        return self._lines[y] if 0 <= y < len(self._lines) else Strip.blank(width, self.rich_style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style = None
        self._lines = None
