"""The clock of a replay: which recorded frame the next sample gives, and how long until the one after.

The screen asks for a sample whenever its timer fires, as it does live; the clock answers with the frame at its
position and moves on by one (or by a stride, at speeds too fast to draw every frame). Pause, steps and jumps
move the position; the speed (x1, x2, x10, x100) sets the wait. ReplaySource (host recordings) and
FleetReplaySource (fleet recordings) both keep one. No I/O, no UI.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

SPEEDS = (1, 2, 10, 100)
MIN_FRAME_S = 0.1
"""Shortest wait between frames; faster speeds skip frames on the screen (the history still holds them)."""


class Timed(Protocol):
    @property
    def time(self) -> float: ...


Frame = TypeVar("Frame", bound=Timed)


def clock_text(seconds: float) -> str:
    """'05:07', or '1:02:03' past an hour."""
    whole = max(0, round(seconds)) if math.isfinite(seconds) else 0
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def wall_clock(when: float) -> str:
    """HH:MM:SS local time; '??:??:??' for a time no clock can show (a damaged file)."""
    try:
        return time.strftime("%H:%M:%S", time.localtime(when))
    except (OverflowError, OSError, ValueError):
        return "??:??:??"


class ReplayClock(Generic[Frame]):
    """Frames in time order; ``next_frame()`` gives the frame a seek asked for, else the next one."""

    unit = "frame"
    """What a frame is called in the position text ("sample", "look")."""

    def __init__(self, frames: Sequence[Frame], speed: int = 1) -> None:
        self.frames = frames
        self.speed = speed if speed in SPEEDS else 1
        self.index = -1
        self._target: int | None = 0
        self._stride = 1
        self._lock = threading.Lock()

    def next_frame(self) -> Frame:
        with self._lock:
            if self._target is not None:
                self.index, self._target = self._target, None
            else:
                self.index = min(self.index + self._stride, self.last)
            return self.frames[self.index]

    @property
    def last(self) -> int:
        return len(self.frames) - 1

    @property
    def at_end(self) -> bool:
        return self.index >= self.last

    @property
    def current(self) -> Frame:
        return self.frames[max(self.index, 0)]

    def seek(self, index: int) -> int:
        """The next frame is ``index`` (clamped); returns the index."""
        with self._lock:
            self._target = max(0, min(index, self.last))
            return self._target

    def hold(self) -> None:
        """The next frame is this one again, unless a seek already chose another."""
        with self._lock:
            if self._target is None and self.index >= 0:
                self._target = self.index

    def step(self, count: int) -> int:
        """Move ``count`` frames from where the next frame would be (steps pressed faster than frames are drawn
        add up)."""
        with self._lock:
            base = self._target if self._target is not None else self.index
        return self.seek(base + count)

    def set_speed(self, speed: int) -> int:
        self.speed = speed if speed in SPEEDS else 1
        return self.speed

    def change_speed(self, direction: int) -> int:
        position = SPEEDS.index(self.speed) + direction
        return self.set_speed(SPEEDS[max(0, min(position, len(SPEEDS) - 1))])

    def gap_after(self, index: int, fallback: float) -> float:
        """Seconds between frame ``index`` and the next (the fallback where the recording cannot tell)."""
        gap = self.frames[index + 1].time - self.frames[max(index, 0)].time
        return gap if math.isfinite(gap) and gap > 0 else fallback

    def frame_interval(self, fallback: float = 1.0) -> float:
        """Seconds to wait before the next frame at this speed; sets how many frames that one moves."""
        if self.at_end:
            self._stride = 1
            return fallback
        wait = self.gap_after(self.index, fallback) / self.speed
        self._stride = max(1, math.ceil(MIN_FRAME_S / wait)) if wait < MIN_FRAME_S else 1
        return min(3600.0, max(wait * self._stride, MIN_FRAME_S if self._stride > 1 else 0.0))

    def position_text(self) -> str:
        """'12:00:42 +00:42/05:00 sample 43/300', the clock in local time."""
        frame = self.current
        start = self.frames[0].time
        return (
            f"{wall_clock(frame.time)} +{clock_text(frame.time - start)}/{clock_text(self.frames[-1].time - start)} "
            f"{self.unit} {max(self.index, 0) + 1}/{len(self.frames)}"
        )
