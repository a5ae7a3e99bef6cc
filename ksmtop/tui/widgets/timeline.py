"""The timeline next to the sparklines: tunable writes, guest starts and stops, workloads, newest first."""

from __future__ import annotations

from rich.text import Text

from ksmtop.model import Event
from ksmtop.replay_clock import wall_clock
from ksmtop.tui.widgets.lines import LinesView

STYLES = {
    "tunable": "cyan",
    "guest-start": "green",
    "guest-stop": "yellow",
    "workload-start": "magenta",
    "workload-end": "magenta",
    "note": "white",
    "study": "bold blue",
}
SHOWN = 12


def timeline_lines(events: list[Event]) -> list[Text]:
    lines = [Text("Events", style="bold")]
    if not events:
        lines.append(Text("none yet: tunable writes, guest starts/stops and workloads appear here", style="dim"))
        return lines
    for event in reversed(events[-SHOWN:]):
        line = Text(wall_clock(event.time) + " ", style="dim")
        line.append(event.text, style=STYLES.get(event.kind, ""))
        lines.append(line)
    return lines


class Timeline(LinesView):
    DEFAULT_CSS = """
    Timeline { width: 2fr; height: 100%; padding: 0 1; border-left: solid $primary; overflow: hidden; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._shown: tuple[Event, ...] | None = None

    def show_events(self, events: list[Event]) -> None:
        """The newest events; only new lines are drawn."""
        newest = tuple(events[-SHOWN:])
        if newest == self._shown:
            return
        self._shown = newest
        self.show(timeline_lines(list(newest)))
