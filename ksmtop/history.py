"""The history the screen keeps: the last hour of snapshots, for sparklines, convergence and the event
timeline; the same for live and replay. No I/O, no UI.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice

from ksmtop.convergence import ScanLog, mark
from ksmtop.model import Event, Snapshot

HISTORY_SAMPLES = 3600  # one hour at 1 s; sparklines need ten minutes


class History:
    """The last HISTORY_SAMPLES snapshots, for sparklines; same for live and replay."""

    def __init__(self, maxlen: int = HISTORY_SAMPLES) -> None:
        self.snapshots: deque[Snapshot] = deque(maxlen=maxlen)
        self.scans = ScanLog(maxlen)
        """What convergence reads of each snapshot, worked out as it arrived (ksmtop.convergence.ScanLog)."""

    def append(self, snapshot: Snapshot) -> None:
        self.scans.add(mark(self.latest, snapshot))
        self.snapshots.append(snapshot)

    def __len__(self) -> int:
        return len(self.snapshots)

    def __iter__(self) -> Iterator[Snapshot]:
        return iter(self.snapshots)

    @property
    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def series(self, value: Callable[[Snapshot], float | int | None], last: int | None = None) -> list[float]:
        """One number per snapshot (missing values as 0), newest last."""
        items = list(self.snapshots)[-last:] if last else list(self.snapshots)
        return [float(value(s) or 0) for s in items]

    def last(self, count: int) -> list[Snapshot]:
        """The newest ``count`` snapshots, oldest first."""
        return list(islice(self.snapshots, max(0, len(self.snapshots) - count), None))

    def events(self) -> list[Event]:
        return [event for snapshot in self.snapshots for event in snapshot.events]
