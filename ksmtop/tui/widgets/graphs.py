"""Sparklines of memory as ksmd converges: total guest RSS, host saving, the selected guest's merged pages.

Each graph gets its series (oldest first) and the span it covers; it redraws its bars and its label only when
they changed. The bars rise from zero (widgets/trend.py), and the label says the scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from ksmtop.format import human_bytes, human_count
from ksmtop.tui.widgets.lines import LinesView
from ksmtop.tui.widgets.trend import Trend


def coarse_span(seconds: float) -> str:
    """The span a graph covers, in steps (10 s, then minutes), so its label does not change every second."""
    if seconds < 60:
        return f"{max(10, round(seconds / 10) * 10):.0f} s"
    return f"{round(seconds / 60):.0f} min"


class Graph(Vertical):
    DEFAULT_CSS = """
    Graph { height: 3; }
    Graph > LinesView { width: 1fr; height: 1; color: $text-muted; }
    """

    def __init__(self, title: str, show: Callable[[float], str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.show_value = show

    def compose(self) -> ComposeResult:
        yield LinesView(wrap=False)
        yield Trend()

    def on_mount(self) -> None:
        self.label = self.query_one(LinesView)
        self.trend = self.query_one(Trend)
        self.label.show([Text(self.title)])

    def plot(self, values: Sequence[float], seconds: float | None) -> None:
        self.trend.show(values)
        label = Text(self.title)
        if values:
            span = f"{coarse_span(seconds)}, " if seconds else ""
            label = Text(
                f"{self.title}: {self.show_value(values[-1])}  min {self.show_value(min(values))}  "
                f"max {self.show_value(max(values))}  ({span}from 0)"
            )
        self.label.show([label])


class Graphs(Vertical):
    DEFAULT_CSS = """
    Graphs { height: auto; width: 3fr; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Graph("Guest RSS", human_bytes, id="graph-rss")
        yield Graph("KSM saving", human_bytes, id="graph-saving")
        yield Graph("Selected guest merged pages", human_count, id="graph-selected")

    def on_mount(self) -> None:
        self.rss = self.query_one("#graph-rss", Graph)
        self.saving = self.query_one("#graph-saving", Graph)
        self.selected = self.query_one("#graph-selected", Graph)

    def plot(
        self, rss: Sequence[float], saving: Sequence[float], selected: Sequence[float], seconds: float | None
    ) -> None:
        self.rss.plot(rss, seconds)
        self.saving.plot(saving, seconds)
        self.selected.plot(selected, seconds if selected else None)
