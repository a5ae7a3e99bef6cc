"""Recording and replay on the screen, mixed into the app.

Live: R starts and stops recording (the status line shows the file, its size and the sample count), a adds a
note. Replay (the source is a ReplaySource): space plays and pauses, , and . step, [ and ] change the speed,
g / G jump to the start / end, n to the next event; tunables, guest controls, the interval and the scope are
off, with the reason in the banner and the details panel.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from ksmtop.format import human_bytes
from ksmtop.model import Event, Snapshot
from ksmtop.recording import RecordingWriter
from ksmtop.replay import ReplaySource
from ksmtop.sampler import History
from ksmtop.source import RecordingSource, Source
from ksmtop.tui.screens.note import NoteScreen

SESSION_BINDINGS = [
    Binding("R", "record", "Record"),
    Binding("a", "note", "Note"),
    Binding("comma", "replay_step(-1)", "Step back"),
    Binding("full_stop", "replay_step(1)", "Step"),
    Binding("left_square_bracket", "replay_speed(-1)", "Slower"),
    Binding("right_square_bracket", "replay_speed(1)", "Faster"),
    Binding("g,home", "replay_jump(0)", "Start"),
    Binding("G,end", "replay_jump(-1)", "End"),
    Binding("n", "replay_next_event", "Next event"),
]
OFF_IN_REPLAY = {"interval", "widen", "record", "note"}


class SessionControlsMixin(App[None]):
    """Expects ``source``, ``history``, ``paused``, ``interval`` and ``sample_now()`` from the app."""

    source: Source
    history: History
    paused: bool
    interval: float
    why_no_controls: str

    def init_session(self) -> None:
        self.replay = self.source if isinstance(self.source, ReplaySource) else None
        self.recorder: RecordingWriter | None = None
        self.record_dir = Path.cwd()
        if self.replay is not None:
            self.why_no_controls = self.replay.why_read_only

    def sample_now(self) -> None:
        """Take a sample now (the app provides it)."""

    def _show_status(self) -> None:
        """Redraw the status line (the app provides it)."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action.startswith("replay_"):
            return self.replay is not None
        if self.replay is not None and action in OFF_IN_REPLAY:
            return False
        return super().check_action(action, parameters)

    # --- hooks the app calls ------------------------------------------------------------------------------
    def snapshot_taken(self, snapshot: Snapshot) -> None:
        """After a snapshot joined the history, before it is drawn."""
        replay = self.replay
        if replay is None:
            return
        if len(self.history) == 1:
            for warning in replay.recording.warnings:
                self.notify(warning, title="Recording", severity="warning", timeout=10)
        self.history = replay.history()  # a jump or a fast speed moves more than one sample
        if replay.at_end and not self.paused:
            self.paused = True
            self.notify("end of the recording (g: back to the start)")

    def next_interval(self) -> float:
        """Seconds until the next sample: the refresh interval live, the recording's pace in a replay."""
        return self.replay.frame_interval(self.interval) if self.replay is not None else self.interval

    def session_status(self, parts: list[str]) -> list[str]:
        """The status line's parts, with the replay position or the recording's progress."""
        replay = self.replay
        if replay is not None:
            state = "paused" if self.paused else "playing"
            keys = "space play/pause  , . step  [ ] speed  g G start/end  n event"
            return [f"REPLAY x{replay.speed} {state}", replay.position_text(), keys, *parts[3:]]
        recorder = self.recorder
        if recorder is not None:
            parts.append(
                f"● REC {recorder.path.name} {human_bytes(recorder.size_bytes)} {recorder.samples} samples (R stops)"
            )
        return parts

    # --- recording ----------------------------------------------------------------------------------------
    def action_record(self) -> None:
        if self.recorder is not None:
            self.stop_recording()
            return
        path = self.record_dir / time.strftime("ksmtop-%Y%m%d-%H%M%S.jsonl.gz")
        try:
            writer = RecordingWriter(path, interval_s=self.interval)
        except OSError as exc:
            self.notify(f"cannot record to {path}: {exc.strerror or exc}", severity="error")
            return
        self.recorder = writer
        self.source = RecordingSource(self.source, writer)  # written in the sampling thread
        self.notify(f"recording to {path}")
        self.sample_now()

    def stop_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if isinstance(self.source, RecordingSource):
            self.source = self.source.inner
        if recorder is not None:
            recorder.close()
            self.notify(
                f"recorded {recorder.samples} samples to {recorder.path} ({human_bytes(recorder.size_bytes)})",
                title="Recording stopped",
            )
            self.sample_now()

    def action_note(self) -> None:
        def typed(text: str | None) -> None:
            if text:
                self.source.add_event(Event(time.time(), "note", text))
                self.notify(f"note: {text}")
                if not self.paused:
                    self.sample_now()

        self.push_screen(NoteScreen(), typed)

    # --- replay -------------------------------------------------------------------------------------------
    def action_replay_step(self, count: int) -> None:
        assert self.replay is not None
        self.paused = True
        self.replay.step(count)
        self.sample_now()

    def action_replay_speed(self, direction: int) -> None:
        assert self.replay is not None
        speed = self.replay.change_speed(direction)
        self.notify(f"speed x{speed}")
        self._show_status()

    def action_replay_jump(self, index: int) -> None:
        assert self.replay is not None
        self.replay.seek(self.replay.last if index < 0 else index)
        self.sample_now()

    def action_replay_next_event(self) -> None:
        assert self.replay is not None
        if self.replay.next_event() is None:
            self.notify("no event after this sample")
            return
        self.sample_now()
