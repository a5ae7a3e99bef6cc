"""The timeline next to the sparklines: tunable writes, guest starts and stops, workloads, newest first."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ksmtop.model import Event

STYLES = {
    "tunable": "cyan",
    "guest-start": "green",
    "guest-stop": "yellow",
    "workload-start": "magenta",
    "workload-end": "magenta",
    "note": "white",
}
SHOWN = 12


def timeline_text(events: list[Event]) -> Text:
    text = Text()
    text.append("Events\n", style="bold")
    if not events:
        text.append("none yet: tunable writes, guest starts/stops and workloads appear here", style="dim")
        return text
    for event in reversed(events[-SHOWN:]):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
        text.append(f"{stamp} ", style="dim")
        text.append(event.text + "\n", style=STYLES.get(event.kind, ""))
    return text


class Timeline(Static):
    DEFAULT_CSS = """
    Timeline { width: 2fr; height: 100%; padding: 0 1; border-left: solid $primary; overflow: hidden; }
    """

    def show(self, events: list[Event]) -> None:
        self.update(timeline_text(events))
