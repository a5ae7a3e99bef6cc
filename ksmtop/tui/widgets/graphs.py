"""Sparklines of memory as ksmd converges: total guest RSS, host saving, the selected guest's merged pages."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from ksmtop.format import human_bytes, human_count
from ksmtop.model import Snapshot
from ksmtop.sampler import History

WINDOW = 600  # samples shown: ten minutes at 1 s


class Graph(Vertical):
    DEFAULT_CSS = """
    Graph { height: 3; }
    Graph Label { width: 1fr; color: $text-muted; }
    Graph Sparkline { height: 2; }
    """

    def __init__(self, title: str, show: Callable[[float], str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.show_value = show

    def compose(self) -> ComposeResult:
        yield Label(self.title)
        yield Sparkline([], summary_function=max)

    def plot(self, values: list[float], seconds: float | None) -> None:
        label = self.query_one(Label)
        sparkline = self.query_one(Sparkline)
        sparkline.data = values or [0.0]
        if values:
            span = f" over {seconds:.0f} s" if seconds else ""
            label.update(
                f"{self.title}: {self.show_value(values[-1])}  "
                f"(min {self.show_value(min(values))}, max {self.show_value(max(values))}{span})"
            )
        else:
            label.update(self.title)


class Graphs(Vertical):
    DEFAULT_CSS = """
    Graphs { height: auto; width: 3fr; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Graph("Guest RSS", human_bytes, id="graph-rss")
        yield Graph("KSM saving", human_bytes, id="graph-saving")
        yield Graph("Selected guest merged", lambda v: f"{human_count(v)} pages", id="graph-selected")

    def plot(self, history: History, selected_pid: int | None) -> None:
        snapshots = list(history)[-WINDOW:]
        seconds = snapshots[-1].time - snapshots[0].time if len(snapshots) > 1 else None

        def series(value: Callable[[Snapshot], float | int | None]) -> list[float]:
            return [float(value(s) or 0) for s in snapshots]

        self.query_one("#graph-rss", Graph).plot(series(lambda s: s.total_guest_rss_bytes), seconds)
        self.query_one("#graph-saving", Graph).plot(series(lambda s: s.rates.saving_bytes), seconds)
        selected = self.query_one("#graph-selected", Graph)
        if selected_pid is None:
            selected.plot([], None)
            return

        def merged(snapshot: Snapshot) -> int | None:
            guest = snapshot.guest(selected_pid)
            return guest.ksm_merging_pages if guest else None

        selected.plot(series(merged), seconds)
