"""What the host screen and the fleet screen share: notifications in plain text, worker results applied on the UI
thread, one sample loop, and the replay keys of a source that has a clock."""

from __future__ import annotations

import os
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.notifications import SeverityLevel

from ksmtop.tui.driver import LinuxDriver, QuietLinuxDriver
from ksmtop.tui.screens.interval import IntervalScreen
from ksmtop.tui.work import Finished, SampleLoop

REPLAY_BINDINGS = [
    Binding("comma", "replay_step(-1)", "Step back"),
    Binding("full_stop", "replay_step(1)", "Step"),
    Binding("left_square_bracket", "replay_speed(-1)", "Slower"),
    Binding("right_square_bracket", "replay_speed(1)", "Faster"),
    Binding("g,home", "replay_jump(0)", "Start"),
    Binding("G,end", "replay_jump(-1)", "End"),
]


class SamplingApp(App[None]):
    """An app fed by a sample loop. Subclasses set ``loop`` and ``clock`` (a replay's, else None) in __init__
    and draw the status line in ``show_status``."""

    loop: SampleLoop
    clock: Any
    interval: float

    def get_driver_class(self) -> type[Driver]:
        """Textual's choice, except its Linux driver: the same without ten wake-ups a second (tui/driver.py).
        TEXTUAL_DRIVER, other platforms and Textual's tests (headless) keep theirs."""
        chosen = super().get_driver_class()
        if os.environ.get("TEXTUAL_DRIVER"):
            return chosen
        if chosen is LinuxDriver:
            return QuietLinuxDriver
        return chosen

    @property
    def paused(self) -> bool:
        return self.loop.paused

    @property
    def closing(self) -> bool:
        """True once the app is exiting: worker results that still arrive are dropped (the widgets may be gone)."""
        return bool(self._exit)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Notifications are plain text unless a caller asks for markup: they carry names and error texts."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_finished(self, message: Finished) -> None:
        if not self.closing:
            message.apply()

    def show_status(self) -> None:
        """Redraw the status line."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("replay_"):
            return self.clock is not None
        return True

    def action_interval(self) -> None:
        """Like top's d: the seconds between samples, asked in a dialog."""

        def chosen(value: float | None) -> None:
            if value is not None:
                self.interval = value
                self.notify(f"refresh interval {value:g} s")
                if not self.paused:
                    self.loop.request()
                self.show_status()

        self.push_screen(IntervalScreen(self.interval), chosen)

    def action_replay_step(self, count: int) -> None:
        if self.clock is not None:
            self.loop.pause(True)
            self.clock.step(count)
            self.loop.request()

    def action_replay_speed(self, direction: int) -> None:
        if self.clock is not None:
            self.notify(f"speed x{self.clock.change_speed(direction)}")
            self.loop.rearm()
            self.show_status()

    def action_replay_jump(self, index: int) -> None:
        if self.clock is not None:
            self.clock.seek(self.clock.last if index < 0 else index)
            self.loop.request()
