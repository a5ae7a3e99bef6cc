"""Recording and replay on the screen: a plain object the app owns.

Live: R starts and stops recording (the status line shows the file, its size and the sample count), a adds a
note. A write error stops the recording with one message naming the file; sampling goes on. Replay (the
source has a clock): space plays and pauses, , and . step, [ and ] change the speed, g / G jump to the start /
end, n to the next event; tunables, guest controls, the interval and the scope are off, with the reason in the
banner and the details panel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from ksmtop.format import human_bytes
from ksmtop.model import Event, Snapshot
from ksmtop.recording import RecordingWriter
from ksmtop.safetext import safe
from ksmtop.source import Clock, Source
from ksmtop.tui.base import REPLAY_BINDINGS
from ksmtop.tui.screens.note import NoteScreen

SESSION_BINDINGS = [
    Binding("R", "record", "Record"),
    Binding("a", "note", "Note"),
    *REPLAY_BINDINGS,
    Binding("n", "replay_next_event", "Next event"),
]
LIVE_ONLY = {"interval", "widen", "record", "note"}
"""Actions a replay does not offer (the recording holds its pace and scope, and takes no notes)."""


def record_once(recorder: RecordingWriter, snapshot: Snapshot) -> str | None:
    """Write one sample (in the sampling thread); the error in one line when the recording failed."""
    try:
        if recorder.write(snapshot):
            return None
    except OSError as exc:
        return f"recording to {recorder.path} failed: {exc.strerror or exc}; the file holds what was written before"
    return recorder.error  # None: the recording was stopped (R) while this sample was taken


class SessionController:
    """The recorder (live) or the replay clock, and what the status line says about them."""

    def __init__(
        self,
        app: App[Any],
        source: Source,
        record_dir: Path,
        sample_now: Callable[[], None],
        interval: Callable[[], float],
    ) -> None:
        self._app = app
        self._source = source
        self.clock: Clock | None = source.clock
        self.why_not = source.limits.session
        self.record_dir = record_dir
        self.recorder: RecordingWriter | None = None
        self._sample_now = sample_now
        self._interval = interval

    def allows(self, action: str) -> bool | None:
        if action.startswith("replay_"):
            return self.clock is not None
        if action in LIVE_ONLY and self.why_not:
            return False
        return None

    def status(self, playing: bool) -> list[str]:
        """What the status line says about the session: the replay position, or the recording's progress."""
        clock = self.clock
        if clock is not None:
            keys = "space play/pause  , . step  [ ] speed  g G start/end  n event"
            return [f"REPLAY x{clock.speed} {'playing' if playing else 'paused'}", clock.position_text(), keys]
        recorder = self.recorder
        if recorder is None:
            return []
        return [f"● REC {recorder.path.name} {human_bytes(recorder.size_bytes)} {recorder.samples} samples (R stops)"]

    # --- recording ----------------------------------------------------------------------------------------
    def toggle_record(self) -> None:
        if self.recorder is not None:
            self.stop_recording()
            return
        path = self.record_dir / time.strftime("ksmtop-%Y%m%d-%H%M%S.jsonl.gz")
        try:
            writer = RecordingWriter(path, interval_s=self._interval())
        except OSError as exc:
            self._app.notify(f"cannot record to {path}: {exc.strerror or exc}", severity="error", markup=False)
            return
        self.recorder = writer
        self._app.notify(f"recording to {path}", markup=False)
        self._sample_now()

    def stop_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        try:
            recorder.close()
        except OSError as exc:
            self._app.notify(f"closing {recorder.path}: {exc.strerror or exc}", severity="error", markup=False)
            return
        self._app.notify(
            f"recorded {recorder.samples} samples to {recorder.path} ({human_bytes(recorder.size_bytes)})",
            title="Recording stopped",
            markup=False,
        )
        self._sample_now()

    def recording_failed(self, recorder: RecordingWriter, error: str) -> None:
        """A write failed (disk full, file too large, I/O error): recording stops, sampling goes on."""
        if self.recorder is recorder:
            self.recorder = None
            try:
                recorder.close()
            except OSError:
                pass
        self._app.notify(error, title="Recording stopped", severity="error", timeout=15, markup=False)

    def note(self) -> None:
        def typed(text: str | None) -> None:
            if text:
                self._source.add_event(Event(time.time(), "note", safe(text)))
                self._app.notify(f"note: {text}", markup=False)
                self._sample_now()

        self._app.push_screen(NoteScreen(), typed)

    def close(self) -> None:
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            try:
                recorder.close()
            except OSError:
                pass
