"""Sparklines, each a label line above its bars: the main screen's three (guest RSS, KSM saving, the selected
guest's merged pages) and the fleet's per host.

One widget draws all its graphs line by line: the screen redraws every widget under a change on every pass, so
one widget here costs a tenth of the ten it replaced (a container, three graph boxes, three labels, three bar
widgets). Each line is redrawn only when its text changed: the label when a figure moved, the bars when the
picture moved; the bars are worked out again only when their series gained a value (tui/series.py keeps the
columns as values arrive). The bars rise from zero (widgets/bars.py), and the label says the scale.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from ksmtop.tui.series import Series
from ksmtop.tui.widgets.bars import bars

BAR_LINES = 2
"""Lines of bars under each label."""


class Graphs(Widget):
    COMPONENT_CLASSES = {"graphs--label", "graphs--bar"}
    DEFAULT_CSS = """
    Graphs { height: 9; width: 3fr; padding: 0 1; }
    Graphs > .graphs--label { color: $text-muted; }
    Graphs > .graphs--bar { color: $primary; }
    """

    def __init__(self, titles: Mapping[str, str], *, id: str | None = None) -> None:
        """``titles``: per graph, in order, its name and what its label says before the first plot."""
        super().__init__(id=id)
        self._graphs: dict[str, tuple[str, Series | None]] = {name: (title, None) for name, title in titles.items()}
        self._bars: dict[str, tuple[tuple[int, tuple[int, int]], list[str]]] = {}
        """Per graph, the bars drawn last with the width and the series version they were drawn for."""
        self._lines: list[tuple[str, str]] = []
        """What each content line shows: ("label" or "bar", its text); laid out on the first resize."""
        self._strips: dict[int, Strip] = {}
        self._styles: dict[str, Style] = {}

    def plot(self, graphs: Mapping[str, tuple[str, Series | None]]) -> None:
        """Per graph by name: its label, and its series (None: no bars)."""
        self._graphs = {name: graphs.get(name, shown) for name, shown in self._graphs.items()}
        self._redraw()

    def lines(self, name: str) -> list[str]:
        """The label and the bars of one graph, as drawn (tests, copies)."""
        first = list(self._graphs).index(name) * (1 + BAR_LINES)
        return [text for _, text in self._lines[first : first + 1 + BAR_LINES]]

    def _redraw(self) -> None:
        width = self.content_size.width
        lines: list[tuple[str, str]] = []
        for name, (label, series) in self._graphs.items():
            lines.append(("label", label))
            lines.extend(("bar", text) for text in self._bars_of(name, series, width))
        changed = [y for y, line in enumerate(lines) if y >= len(self._lines) or self._lines[y] != line]
        self._lines = lines
        for y in changed:
            self._strips.pop(y, None)
        if changed:
            self.refresh(*[Region(0, y, self.size.width, 1) for y in changed])

    def _bars_of(self, name: str, series: Series | None, width: int) -> list[str]:
        if series is None:
            return [" " * width] * BAR_LINES
        drawn = self._bars.get(name)
        key = (width, series.version)
        if drawn is None or drawn[0] != key:
            drawn = self._bars[name] = (key, bars(series.columns(width), width, BAR_LINES))
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
