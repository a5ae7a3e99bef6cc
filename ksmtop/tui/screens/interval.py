"""Ask for a new refresh interval, like top's d."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

MIN_INTERVAL_S = 0.2
MAX_INTERVAL_S = 3600.0


def parse_interval(text: str) -> float:
    """Seconds between samples; raises ValueError with a one-line reason."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number of seconds: {text.strip()!r}") from None
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise ValueError(f"interval must be between {MIN_INTERVAL_S} and {MAX_INTERVAL_S:.0f} s")
    return value


class IntervalScreen(ModalScreen[float | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    IntervalScreen { align: center middle; }
    IntervalScreen Vertical { width: 60; height: auto; border: thick $primary; background: $surface; padding: 1; }
    IntervalScreen #interval-error { color: $error; }
    """

    def __init__(self, current: float) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Refresh interval in seconds (now {self.current:g} s):")
            yield Input(value=f"{self.current:g}", id="interval-input")
            yield Label("", id="interval-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self.dismiss(parse_interval(event.value))
        except ValueError as exc:
            self.query_one("#interval-error", Label).update(Text(str(exc)))

    def action_cancel(self) -> None:
        self.dismiss(None)
