"""Convergence of merging: over a list of Snapshots, or kept as they arrive (ScanLog, which History holds).

Definitions:
- A *change* is a write to a KSM knob (run, pages_to_scan, sleep_millisecs, ...) or a guest starting or
  stopping: it can move the saving, so convergence is judged from the last one on. While the kernel's scan-time
  advisor runs (advisor_mode=scan-time) it moves pages_to_scan by itself after every full scan: that is not a
  change; switching the advisor on or off, or changing its own knobs, is.
- *Scanned*: the guests' KSM rmap items (pages ksmd has visited at least once) over their resident anonymous
  pages, capped at 1.
- *Converged*: KSM runs, at least CONVERGED_SCANS full scans completed since the last change, and pages_sharing
  moved by less than CONVERGED_CHANGE (0.5%) over the last full scan.
- *ETA*: until converged. Pages merge on their second pass at the earliest, so at least the scans missing to
  CONVERGED_SCANS; when the gain per full scan shrinks geometrically (as it does: each pass finds the pairs
  the last one seeded), the number of scans until a pass gains less than 0.5%. Multiplied by the time per full
  scan (measured by the tracepoints when given, else the sampler's estimate).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ksmtop.knobs import KNOBS, advisor_running
from ksmtop.model import KsmState, Snapshot

CONVERGED_CHANGE = 0.005
CONVERGED_SCANS = 2


def _knobs(snapshot: Snapshot) -> tuple:
    """The knob values a change is judged by (pages_to_scan left out while the advisor sets it)."""
    ksm = snapshot.ksm
    advisor = advisor_running(ksm)
    return tuple(None if advisor and name == "pages_to_scan" else ksm.values.get(name) for name in KNOBS)


def _guest_set(snapshot: Snapshot) -> frozenset[tuple[int, int]]:
    return frozenset((g.pid, g.start_ticks) for g in snapshot.guests)


def is_change(before: Snapshot, after: Snapshot) -> bool:
    """A knob change or a guest start/stop between two snapshots in a row."""
    return _knobs(before) != _knobs(after) or _guest_set(before) != _guest_set(after)


class Mark(NamedTuple):
    """What convergence reads of one snapshot, worked out once as it arrives (History keeps them), so that a
    sample costs a walk over small tuples, not over the window's snapshots, knobs and counters again."""

    changed: bool
    """A knob changed or a guest started or stopped since the snapshot before."""
    full_scans: int | None
    pages_sharing: int | None


def mark(before: Snapshot | None, after: Snapshot) -> Mark:
    changed = before is not None and is_change(before, after)
    return Mark(changed, after.ksm.get("full_scans"), after.ksm.get("pages_sharing"))


class Step(NamedTuple):
    """A snapshot where full_scans read a new value (the first one of each value, in order)."""

    seq: int
    """The snapshot's number in its log (0 for the first ever added)."""
    full_scans: int
    pages_sharing: int


class ScanLog:
    """What convergence reads of a history, kept as snapshots arrive, so that judging the newest window costs
    the same with 10 snapshots or 600: where the last change was, and the steps of full_scans (the kernel's
    counter only grows, so the last full scan is found at the end of the steps, not by a walk over the window).
    A snapshot without full_scans or pages_sharing (KSM unreadable) is no step and does not start a window."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        """How many of the newest marks are kept: the largest window asked for."""
        self.count = 0
        self.marks: deque[Mark] = deque(maxlen=keep)
        self.steps: deque[Step] = deque()
        self.last_change = 0
        """seq of the snapshot of the last change (0: none since the first)."""
        self._last_scans: int | None = None
        """full_scans of the last snapshot that read it (and pages_sharing)."""

    def add(self, mark: Mark) -> None:
        seq = self.count
        self.count += 1
        self.marks.append(mark)
        if mark.changed:
            self.last_change = seq
        _, scans, sharing = mark
        if scans is not None and sharing is not None:
            if scans != self._last_scans:
                self.steps.append(Step(seq, scans, sharing))
            self._last_scans = scans
        while self.steps and self.steps[0].seq < self.count - self.keep:
            self.steps.popleft()

    def window_start(self, size: int) -> int:
        """seq of the first snapshot judged in the newest ``size``: the last change, or the window's edge."""
        return max(self.last_change, self.count - min(size, self.keep))

    def _first_known(self, start: int) -> Step | None:
        """The first snapshot at or after ``start`` with full_scans and pages_sharing read, as a step."""
        oldest = self.count - len(self.marks)
        for seq in range(start, self.count):
            _, scans, sharing = self.marks[seq - oldest]
            if scans is not None and sharing is not None:
                return Step(seq, scans, sharing)
        return None

    def convergence(self, latest: Snapshot, size: int, full_scan_seconds: float | None = None) -> Convergence:
        """Where merging stands in the newest ``size`` snapshots, ``latest`` the last one added."""
        if not self.count:
            return Convergence(False, "no samples yet", None, None, None, None, None)
        scanned = scanned_fraction(latest)
        if not latest.ksm.running:
            return Convergence(False, "KSM is off", scanned, None, None, None, None)
        steps = self._last_steps(size)
        _, scans, sharing = self.marks[-1]
        first = steps[0] if steps else None
        since = scans - first.full_scans if scans is not None and first is not None else None
        change = _change_over_last_scan(steps, scans, sharing)
        converged = since is not None and since >= CONVERGED_SCANS and change is not None and change < CONVERGED_CHANGE
        scan_s = full_scan_seconds or latest.rates.full_scan_seconds
        ends = [step.pages_sharing for step in steps[1:]]
        projected, scans_to_level = _project(ends, sharing or 0)
        if converged:
            return Convergence(True, "converged", scanned, since, change, 0.0, projected or sharing or 0)
        to_go = max(CONVERGED_SCANS - (since or 0), scans_to_level or 0, 1)
        eta = to_go * scan_s if scan_s else None
        state = f"converging: about {to_go} full scan{'s' if to_go != 1 else ''} to go"
        return Convergence(False, state, scanned, since, change, eta, projected)

    def _last_steps(self, size: int) -> list[Step]:
        """The window's first readable snapshot and its last three steps of full_scans: all that convergence
        reads (walked from the end, three steps at most, however often full_scans moved in the window)."""
        first = self._first_known(self.window_start(size))
        if first is None:
            return []
        later: list[Step] = []
        for step in reversed(self.steps):
            if step.seq <= first.seq or len(later) == 3:
                break
            later.append(step)
        return [first, *reversed(later)]


def scan_log(snapshots: Sequence[Snapshot]) -> ScanLog:
    log = ScanLog(max(len(snapshots), 1))
    for index, snapshot in enumerate(snapshots):
        log.add(mark(snapshots[index - 1] if index else None, snapshot))
    return log


def scanned_fraction(snapshot: Snapshot) -> float | None:
    rmap = [g.ksm_rmap_items for g in snapshot.guests if g.ksm_rmap_items is not None]
    pages = sum(g.anon_bytes for g in snapshot.guests) // max(snapshot.host.page_size, 1)
    if not rmap or pages <= 0:
        return None
    return min(1.0, sum(rmap) / pages)


@dataclass(frozen=True, slots=True)
class Convergence:
    converged: bool
    state: str
    """In words: "converged", "KSM is off", "2 full scans to go", ..."""
    scanned_fraction: float | None
    full_scans_since_change: int | None
    change_last_scan: float | None
    """Relative change of pages_sharing over the last full scan."""
    eta_s: float | None
    """Seconds until converged (0 when converged; None when it cannot be estimated)."""
    projected_sharing: int | None
    """pages_sharing expected when it levels off (geometric extrapolation; None without two scan gains)."""


def convergence(snapshots: Sequence[Snapshot], full_scan_seconds: float | None = None) -> Convergence:
    """Where merging stands in ``snapshots`` (oldest first). A screen keeps a ScanLog as snapshots arrive
    instead (History.scans) and asks it."""
    if not snapshots:
        return Convergence(False, "no samples yet", None, None, None, None, None)
    return scan_log(snapshots).convergence(snapshots[-1], len(snapshots), full_scan_seconds)


def _change_over_last_scan(steps: Sequence[Step], scans: int | None, sharing: int | None) -> float | None:
    """Relative move of pages_sharing since the first snapshot at or after the start of the last full scan."""
    if scans is None or sharing is None or not steps:
        return None
    start = None
    for index in range(len(steps) - 1, -1, -1):  # full_scans only grows: the last scan's start is near the end
        if steps[index].full_scans < scans - 1:
            break
        start = index
    if start is None:
        return None
    if start == 0 and steps[0].full_scans == scans:
        return None  # no full scan completed inside the window
    before = steps[start].pages_sharing
    return abs(sharing - before) / max(sharing, before, 1)


def _project(ends: list[int], current: int) -> tuple[int | None, int | None]:
    """(levelled-off pages_sharing, scans until a scan gains < 0.5%) from the gains of the last two scans."""
    if len(ends) < 3:
        return None, None
    older, newer = ends[-2] - ends[-3], ends[-1] - ends[-2]
    if older <= 0 or newer <= 0 or newer >= older:
        return None, None
    ratio = newer / older
    projected = int(current + newer * ratio / (1 - ratio))
    target = CONVERGED_CHANGE * max(projected, 1)
    scans = 0 if newer <= target else math.ceil(math.log(target / newer) / math.log(ratio))
    return projected, scans


@dataclass(frozen=True, slots=True)
class TradePoint:
    """ksmd's cost and speed while one (pages_to_scan, sleep_millisecs) setting held, or while the scan-time
    advisor ran with one target and CPU ceiling (then ``pages_to_scan`` is the last value it chose)."""

    pages_to_scan: int
    sleep_millisecs: int
    seconds: float
    ksmd_cpu_percent: float | None
    scanned_pages_per_s: float | None
    full_scan_seconds: float | None
    advisor_target_scan_time: int | None = None
    """Seconds the advisor aimed a full scan at (None: pages_to_scan was set by hand)."""
    advisor_max_cpu: int | None = None
    """The advisor's ksmd CPU ceiling, percent."""

    @property
    def setting(self) -> str:
        """The setting in words: "1000" or "advisor (target 200 s, max 70% CPU)"."""
        if self.advisor_target_scan_time is None:
            return str(self.pages_to_scan)
        return f"advisor (target {self.advisor_target_scan_time} s, max {self.advisor_max_cpu}% CPU)"


def trade_key(ksm: KsmState) -> tuple[int | str | None, ...]:
    """What one row of the price table holds constant: pages_to_scan and sleep_millisecs, or under the advisor
    its target, CPU ceiling and bounds with sleep_millisecs (the pages_to_scan it chooses moves by itself)."""
    if advisor_running(ksm):
        names = (
            "advisor_target_scan_time",
            "advisor_max_cpu",
            "advisor_min_pages_to_scan",
            "advisor_max_pages_to_scan",
        )
        return ("advisor", *(ksm.get(name) for name in names), ksm.get("sleep_millisecs"))
    return (ksm.get("pages_to_scan"), ksm.get("sleep_millisecs"))


class TradeTracker:
    """The price table as snapshots arrive: one point per stretch of constant pages_to_scan/sleep_millisecs with
    KSM running (finished stretches, then the running one), or one per stretch of the scan-time advisor with
    constant settings (``trade_key``). Fed once per sample, so the screen never walks its history for it."""

    MAX_POINTS = 100

    def __init__(self) -> None:
        self.finished: list[TradePoint] = []
        self._first: Snapshot | None = None
        self._last: Snapshot | None = None
        self._key: tuple[int | str | None, ...] = ()
        self._cpu_sum = 0.0
        self._cpu_count = 0
        self._full_scan: float | None = None

    def add(self, snapshot: Snapshot) -> None:
        ksm = snapshot.ksm
        if not ksm.running:
            self._close()
            return
        key = trade_key(ksm)
        if self._first is not None and key != self._key:
            self._close()
        if self._first is None:
            self._first, self._key = snapshot, key
            self._cpu_sum, self._cpu_count, self._full_scan = 0.0, 0, None
        elif snapshot.host.ksmd_cpu_percent is not None:
            self._cpu_sum += snapshot.host.ksmd_cpu_percent
            self._cpu_count += 1
        full = snapshot.rates.measured_full_scan_seconds or snapshot.rates.full_scan_seconds
        if full:
            self._full_scan = full
        self._last = snapshot

    def points(self) -> list[TradePoint]:
        """Finished stretches, then the running one, oldest first."""
        running = self._point()
        return [*self.finished, running] if running is not None else list(self.finished)

    def _point(self) -> TradePoint | None:
        first, last = self._first, self._last
        if first is None or last is None or last is first:
            return None
        seconds = last.time - first.time
        scanned_0, scanned_1 = first.ksm.get("pages_scanned"), last.ksm.get("pages_scanned")
        rate = (
            (scanned_1 - scanned_0) / seconds
            if seconds > 0 and scanned_0 is not None and scanned_1 is not None
            else None
        )
        ksm = last.ksm
        advisor = advisor_running(ksm)
        return TradePoint(
            pages_to_scan=ksm.get("pages_to_scan") or 0,
            sleep_millisecs=ksm.get("sleep_millisecs") or 0,
            seconds=seconds,
            ksmd_cpu_percent=self._cpu_sum / self._cpu_count if self._cpu_count else None,
            scanned_pages_per_s=rate,
            full_scan_seconds=self._full_scan,
            advisor_target_scan_time=ksm.get("advisor_target_scan_time") if advisor else None,
            advisor_max_cpu=ksm.get("advisor_max_cpu") if advisor else None,
        )

    def _close(self) -> None:
        point = self._point()
        if point is not None:
            self.finished = [*self.finished, point][-self.MAX_POINTS :]
        self._first = self._last = None


def trade(snapshots: Sequence[Snapshot]) -> list[TradePoint]:
    """One point per stretch of constant pages_to_scan/sleep_millisecs with KSM running, oldest first."""
    tracker = TradeTracker()
    for snapshot in snapshots:
        tracker.add(snapshot)
    return tracker.points()
