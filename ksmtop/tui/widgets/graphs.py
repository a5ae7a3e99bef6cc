"""Sparklines of memory as ksmd converges: total guest RSS, host saving, the selected guest's merged pages.

One widget draws the three graphs line by line (a label line, then two lines of bars each): the screen redraws
every widget under a change on every pass, so one widget here costs a tenth of the ten it replaced (a container,
three graph boxes, three labels, three bar widgets). Each line is redrawn only when its text changed: the label
when a figure moved, the bars when the picture moved. The bars rise from zero (widgets/trend.py), and the
label says the scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from ksmtop.format import human_bytes, human_count
from ksmtop.tui.widgets.trend import bar_lines

BAR_LINES = 2
"""Lines of bars under each label."""

SERIES: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("rss", "Guest RSS", human_bytes),
    ("saving", "KSM saving", human_bytes),
    ("selected", "Selected guest merged pages", human_count),
)
"""Each graph: its name, its title, how its figures are written."""


def coarse_span(seconds: float) -> str:
    """The span a graph covers, in steps (10 s, then minutes), so its label does not change every second."""
    if seconds < 60:
        return f"{max(10, round(seconds / 10) * 10):.0f} s"
    return f"{round(seconds / 60):.0f} min"


def label_text(title: str, show: Callable[[float], str], values: Sequence[float], seconds: float | None) -> str:
    """The line above a graph: the latest figure, the range, the span, and the baseline ("from 0")."""
    if not values:
        return title
    span = f"{coarse_span(seconds)}, " if seconds else ""
    return f"{title}: {show(values[-1])}  min {show(min(values))}  max {show(max(values))}  ({span}from 0)"


class Graphs(Widget):
    COMPONENT_CLASSES = {"graphs--label", "graphs--bar"}
    DEFAULT_CSS = """
    Graphs { height: 9; width: 3fr; padding: 0 1; }
    Graphs > .graphs--label { color: $text-muted; }
    Graphs > .graphs--bar { color: $primary; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._series: dict[str, tuple[float, ...]] = {name: () for name, _, _ in SERIES}
        self._seconds: float | None = None
        self._bars: dict[str, tuple[tuple[int, tuple[float, ...]], list[str]]] = {}
        """Per graph, the bars drawn last with the width they were drawn for."""
        self._lines: list[tuple[str, str]] = []
        """What each content line shows: ("label" or "bar", its text); laid out on the first resize."""
        self._strips: dict[int, Strip] = {}
        self._styles: dict[str, Style] = {}

    def plot(
        self, rss: Sequence[float], saving: Sequence[float], selected: Sequence[float], seconds: float | None
    ) -> None:
        self._series = {"rss": tuple(rss), "saving": tuple(saving), "selected": tuple(selected)}
        self._seconds = seconds
        self._redraw()

    def lines(self, name: str) -> list[str]:
        """The label and the bars of one graph, as drawn (tests, copies)."""
        first = [series for series, _, _ in SERIES].index(name) * (1 + BAR_LINES)
        return [text for _, text in self._lines[first : first + 1 + BAR_LINES]]

    def _redraw(self) -> None:
        width = self.content_size.width
        lines: list[tuple[str, str]] = []
        for name, title, show in SERIES:
            values = self._series[name]
            lines.append(("label", label_text(title, show, values, self._seconds)))
            lines.extend(("bar", text) for text in self._bars_of(name, values, width))
        changed = [y for y, line in enumerate(lines) if y >= len(self._lines) or self._lines[y] != line]
        self._lines = lines
        for y in changed:
            self._strips.pop(y, None)
        if changed:
            self.refresh(*[Region(0, y, self.size.width, 1) for y in changed])

    def _bars_of(self, name: str, values: tuple[float, ...], width: int) -> list[str]:
        drawn = self._bars.get(name)
        key = (width, values)
        if drawn is None or drawn[0] != key:
            drawn = self._bars[name] = (key, bar_lines(values, width, BAR_LINES))
        return drawn[1]

    def on_resize(self) -> None:
        self._redraw()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if not 0 <= y < len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get(y)
        if strip is None:
            kind, text = self._lines[y]
            style = self._style(kind)
            strip = self._strips[y] = Strip([Segment(text, style)]).adjust_cell_length(width, style)
        return strip

    def _style(self, kind: str) -> Style:
        style = self._styles.get(kind)
        if style is None:
            style = self._styles[kind] = self.rich_style + self.get_component_rich_style(f"graphs--{kind}")
        return style

    def notify_style_update(self) -> None:
        """Textual calls this whenever this widget's CSS is applied again (e.g. a theme change): styles and the
        lines drawn with them are worked out anew; until then they are kept (working one out walks every
        ancestor)."""
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()
