"""A graph's samples as they arrive: the newest ``window`` values, with what drawing and labelling read kept up
as each one arrives (the lowest and the highest in the window; the largest of each bucket of samples that one
column shows), so that a sample costs the same with 10 values in the window or 600.

Buckets are counted from the series' first sample, not from the window's edge: as the window slides, a column
keeps its samples and the picture moves left one column every ``size`` samples instead of shimmering, and only
the newest column changes in between.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import count

_GENERATIONS = count()
"""Every series, and every clear of one, gets a generation of its own: (generation, count) names its content."""


class Series:
    def __init__(self, window: int) -> None:
        self.window = window
        self.values: deque[float] = deque(maxlen=window)
        self.count = 0
        """Values appended since the series was made or cleared: the next one's number."""
        self._generation = next(_GENERATIONS)
        self._highs: deque[tuple[int, float]] = deque()
        """(number, value) of the values no later one is as high as: the first is the window's highest."""
        self._lows: deque[tuple[int, float]] = deque()
        self._size = 0
        """Samples per bucket the buckets are kept for (0: none asked for yet)."""
        self._buckets: deque[list[float]] = deque()
        """[bucket number, largest value] per bucket, oldest first; the oldest only when all of it is kept."""

    @classmethod
    def of(cls, values: Iterable[float]) -> Series:
        """A series holding ``values``, its window just as long."""
        values = list(values)
        series = cls(max(len(values), 1))
        series.extend(values)
        return series

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the content does (an append, a clear): what a drawing of it is kept against."""
        return self._generation, self.count

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)

    @property
    def latest(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def low(self) -> float | None:
        return self._lows[0][1] if self._lows else None

    @property
    def high(self) -> float | None:
        return self._highs[0][1] if self._highs else None

    def clear(self) -> None:
        self.values.clear()
        self.count = 0
        self._generation = next(_GENERATIONS)
        self._highs.clear()
        self._lows.clear()
        self._size = 0
        self._buckets.clear()

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def append(self, value: float) -> None:
        number = self.count
        self.count += 1
        self.values.append(value)
        first = self.count - len(self.values)  # the number of the oldest value kept
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= value:
            highs.pop()
        highs.append((number, value))
        while highs[0][0] < first:
            highs.popleft()
        while lows and lows[-1][1] >= value:
            lows.pop()
        lows.append((number, value))
        while lows[0][0] < first:
            lows.popleft()
        if self._size:
            self._add_to_bucket(number, value, first)

    def _add_to_bucket(self, number: int, value: float, first: int) -> None:
        size, buckets = self._size, self._buckets
        bucket = number // size
        if buckets and buckets[-1][0] == bucket:
            if value > buckets[-1][1]:
                buckets[-1][1] = value
        else:
            buckets.append([bucket, value])
        while buckets and buckets[0][0] * size < first:  # its oldest samples left the window
            buckets.popleft()

    def columns(self, width: int) -> list[float]:
        """At most ``width`` columns, newest last: one a sample while they fit, else the largest value of each
        bucket of consecutive samples (the fewest samples a bucket that fit the width)."""
        kept = len(self.values)
        if width <= 0 or not kept:
            return []
        if kept <= width:
            return list(self.values)
        size = -(-kept // width)
        if size != self._size:  # the window grew past another multiple of the width, or the width changed
            self._size = size
            self._buckets.clear()
            first = self.count - kept
            for offset, value in enumerate(self.values):
                self._add_to_bucket(first + offset, value, first)
        columns = [largest for _, largest in self._buckets]
        return columns[-width:]
