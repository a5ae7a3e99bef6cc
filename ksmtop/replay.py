"""ReplaySource: a recording played back as a Source; it is its own clock (ksmtop/replay_clock.py), which the
screen moves with its keys. No UI imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ksmtop.diagnose import Diagnosis, diagnose
from ksmtop.history import HISTORY_SAMPLES, History
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, GuestSample, KsmState, Scope, Snapshot
from ksmtop.recording import Recording, read_recording
from ksmtop.replay_clock import MIN_FRAME_S, SPEEDS, ReplayClock
from ksmtop.source import Limits

if TYPE_CHECKING:
    from ksmtop.collect.pagemap import SharingReport

__all__ = ["MIN_FRAME_S", "SPEEDS", "ReplaySource"]
LIVE_ONLY = "the sharing matrix reads this host's page tables: live only"


class ReplaySource(ReplayClock[Snapshot]):
    """Yields a recording's Snapshots in order; read-only: tunable writes and scope changes do nothing.
    It is its own clock (seek, step, speed)."""

    controls = None
    unit = "sample"

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
        super().__init__(recording.snapshots, speed)
        self._history = History()
        self._history_end = 0  # snapshots[:_history_end] have been appended to _history

    # --- the Source protocol ------------------------------------------------------------------------------
    def sample(self) -> Snapshot:
        """The snapshot at the position a seek asked for, else the next frame (the last one stays)."""
        return self.next_frame()

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

    # --- time controls (the rest: ReplayClock) ---------------------------------------------------------------
    def next_event(self) -> int | None:
        """Seek to the next sample that carries an event; None when there is none after this one."""
        for index in range(self.index + 1, len(self.snapshots)):
            if self.snapshots[index].events:
                return self.seek(index)
        return None

    def gap_after(self, index: int, fallback: float) -> float:
        """A sample's own interval where the times cannot tell (equal or damaged times)."""
        gap = super().gap_after(index, 0.0)
        return gap if gap > 0 else (self.snapshots[index + 1].interval_s or fallback)

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
