"""ReplaySource: a recording played back as a Source, with a clock the screen controls.

The app asks for a sample whenever its timer fires, exactly as it does live; the ReplaySource answers with the
recorded Snapshot at its position and moves on by one frame. Pause, steps and jumps move the position; the speed
(x1, x2, x10, x100) sets how long the app waits before the next frame. No UI imports.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ksmtop.diagnose import Diagnosis, diagnose
from ksmtop.history import HISTORY_SAMPLES, History
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, GuestSample, KsmState, Scope, Snapshot
from ksmtop.recording import Recording, read_recording
from ksmtop.source import Limits

if TYPE_CHECKING:
    from ksmtop.collect.pagemap import SharingReport

SPEEDS = (1, 2, 10, 100)
MIN_FRAME_S = 0.1
"""Shortest wait between frames; faster speeds skip samples on the screen (the sparklines still hold them)."""


LIVE_ONLY = "the sharing matrix reads this host's page tables: live only"


class ReplaySource:
    """Yields a recording's Snapshots in order; read-only: tunable writes and scope changes do nothing.
    It is its own clock (seek, step, speed)."""

    controls = None

    def __init__(self, recording: Recording | str | Path, speed: int = 1) -> None:
        if not isinstance(recording, Recording):
            recording = read_recording(recording)
        if not recording.snapshots:
            raise ValueError(f"{recording.path}: the recording holds no sample")
        self.recording = recording
        self.snapshots = recording.snapshots
        self.description = f"replay {recording.path.name}"
        self.why_read_only = (
            f"replay of {recording.path.name}: tunables and guest controls act on a live host, not on a recording"
        )
        self.limits = Limits(
            tunables=self.why_read_only,
            widen="a recording holds the scope it was made with",
            sharing=LIVE_ONLY,
            controls=self.why_read_only,
            session=f"replay of {recording.path.name}: it plays at the recording's pace and adds nothing to it",
        )
        self.warnings = recording.warnings
        self.speed = speed if speed in SPEEDS else 1
        self.index = -1
        self._target: int | None = 0
        self._stride = 1
        self._lock = threading.Lock()
        self._history = History()
        self._history_end = 0  # snapshots[:_history_end] have been appended to _history

    # --- the Source protocol ------------------------------------------------------------------------------
    def sample(self) -> Snapshot:
        """The snapshot at the position a seek asked for, else the next frame (the last one stays)."""
        with self._lock:
            if self._target is not None:
                self.index, self._target = self._target, None
            else:
                self.index = min(self.index + self._stride, len(self.snapshots) - 1)
            return self.snapshots[self.index]

    def write_tunable(self, name: str, value: str) -> WriteResult:
        return WriteResult(name, None, value, None, ok=False, message=self.why_read_only)

    def unavailable_knobs(self, state: KsmState) -> dict[str, str]:
        return {}

    def set_scope(self, scope: Scope) -> None:
        """The recording holds the scope it was made with."""

    def add_event(self, event: Event) -> None:
        """A replay adds nothing to the recording."""

    def select(self, pid: int | None) -> None:
        pass

    def diagnose(self, guest: GuestSample, snapshot: Snapshot, full_scans: int | None) -> Diagnosis:
        """From the recorded figures alone (a recording holds no smaps)."""
        return diagnose(guest, snapshot.ksm, None, snapshot.host.page_size, full_scans)

    def sharing(self, guests: Sequence[GuestSample], exact: bool = False) -> SharingReport:
        raise RuntimeError(LIVE_ONLY)

    def close(self) -> None:
        pass

    @property
    def clock(self) -> ReplaySource:
        return self

    # --- time controls ------------------------------------------------------------------------------------
    @property
    def last(self) -> int:
        return len(self.snapshots) - 1

    @property
    def at_end(self) -> bool:
        return self.index >= self.last

    @property
    def current(self) -> Snapshot:
        return self.snapshots[max(self.index, 0)]

    def seek(self, index: int) -> int:
        """The next sample() returns snapshot ``index`` (clamped); returns the index."""
        with self._lock:
            self._target = max(0, min(index, self.last))
            return self._target

    def step(self, count: int) -> int:
        return self.seek(self.index + count)

    def next_event(self) -> int | None:
        """Seek to the next sample that carries an event; None when there is none after this one."""
        for index in range(self.index + 1, len(self.snapshots)):
            if self.snapshots[index].events:
                return self.seek(index)
        return None

    def set_speed(self, speed: int) -> int:
        self.speed = speed if speed in SPEEDS else 1
        return self.speed

    def change_speed(self, direction: int) -> int:
        position = SPEEDS.index(self.speed) + direction
        return self.set_speed(SPEEDS[max(0, min(position, len(SPEEDS) - 1))])

    def frame_interval(self, fallback: float = 1.0) -> float:
        """Seconds to wait before the next frame at this speed; sets how many samples that frame moves."""
        if self.at_end:
            self._stride = 1
            return fallback
        gap = self.snapshots[self.index + 1].time - self.snapshots[max(self.index, 0)].time
        if not gap > 0:
            gap = self.snapshots[self.index + 1].interval_s or fallback
        wait = gap / self.speed
        self._stride = max(1, math.ceil(MIN_FRAME_S / wait)) if wait < MIN_FRAME_S else 1
        return max(wait * self._stride, MIN_FRAME_S if self._stride > 1 else 0.0)

    def history(self) -> History:
        """The history the screen would hold live at this position (sparklines and the event timeline).

        Playing forward appends the frames since the last call to the same History; a jump back (or far ahead)
        builds it anew. The screen can tell a new History from the same one grown by identity."""
        end = max(self.index, 0) + 1
        if not self._history_end or end < self._history_end or end - self._history_end > HISTORY_SAMPLES:
            self._history = History()
            self._history_end = max(0, end - HISTORY_SAMPLES)
        for snapshot in self.snapshots[self._history_end : end]:
            self._history.append(snapshot)
        self._history_end = end
        return self._history

    def position_text(self) -> str:
        """'12:00:42 +00:42/05:00 sample 43/300', the clock in local time."""
        snapshot = self.current
        start = self.snapshots[0].time
        clock = time.strftime("%H:%M:%S", time.localtime(snapshot.time))
        return (
            f"{clock} +{_clock(snapshot.time - start)}/{_clock(self.snapshots[-1].time - start)} "
            f"sample {max(self.index, 0) + 1}/{len(self.snapshots)}"
        )


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"
