"""Sampling for the study: one thread that takes a Snapshot every interval and writes it to the recording, and
the measurement window read from it (host memory, guest memory, page faults, ksmd CPU) over a fixed time.

"Host used" is MemTotal - MemAvailable: what the host cannot give to anything else, the figure the paper read
(free's "used"). The guests' summed RSS still counts merged pages; their summed PSS does not (a merged page is
split between the processes that map it). Both are kept beside it.

No UI imports.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ksmtop.collect.faults import FaultCounters, FaultCounts
from ksmtop.collect.procfs import parse_stat, read_pss
from ksmtop.lab import LabGuest
from ksmtop.model import Snapshot
from ksmtop.recording import RecordingWriter
from ksmtop.safetext import safe
from ksmtop.sampler import Sampler


class SamplingError(Exception):
    """The sampling thread stopped (the recording could not be written, a collector failed)."""


def host_used_bytes(snapshot: Snapshot) -> int:
    return snapshot.host.mem_total_bytes - snapshot.host.mem_available_bytes


class SamplingThread:
    """Samples every ``interval`` seconds in a thread, writes each Snapshot to ``writer`` and keeps them all."""

    def __init__(self, sampler: Sampler, writer: RecordingWriter, interval: float) -> None:
        self.sampler = sampler
        self.writer = writer
        self.interval = interval
        self.snapshots: list[Snapshot] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._new = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="study-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._take()
            except Exception as exc:  # reported to the main thread, which stops the study
                self.error = safe(f"sampling failed: {exc}")
                with self._new:
                    self._new.notify_all()
                return
            next_at += self.interval
            if self._wake.wait(max(0.0, next_at - time.monotonic())):
                self._wake.clear()
                next_at = time.monotonic()

    def set_interval(self, seconds: float) -> None:
        """Sample every ``seconds`` from now on (the study samples faster while ksmd merges)."""
        if seconds != self.interval:
            self.interval = seconds
            self._wake.set()

    def _take(self) -> Snapshot:
        snapshot = self.sampler.sample()
        self.writer.write(snapshot)
        with self._new:
            self.snapshots.append(snapshot)
            self._new.notify_all()
        return snapshot

    def stop(self) -> None:
        """Stop the thread, then take one last sample here (it carries the events queued since the last one)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10 * self.interval + 10)
        if self.error is None and not self.writer.closed:
            try:
                self._take()
            except Exception as exc:
                self.error = safe(f"sampling failed: {exc}")

    def wait_next(self, after: int | None = None) -> Snapshot:
        """The first snapshot with index >= ``after`` (default: the next one to come); SamplingError if the
        thread has died or nothing came within ten intervals."""
        with self._new:
            index = len(self.snapshots) if after is None else after
            deadline = time.monotonic() + 10 * self.interval + 10
            while len(self.snapshots) <= index:
                if self.error is not None:
                    raise SamplingError(self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SamplingError(f"no sample for {10 * self.interval + 10:g} s")
                self._new.wait(left)
            return self.snapshots[index]

    @property
    def count(self) -> int:
        with self._new:
            return len(self.snapshots)

    def since(self, index: int) -> list[Snapshot]:
        with self._new:
            return self.snapshots[index:]


def wait_steady(
    thread: SamplingThread, pids: set[int], timeout: float, samples: int = 5, tolerance: float = 0.005
) -> tuple[bool, float]:
    """Wait until the guests' summed RSS moves less than max(2 MiB, ``tolerance``) over ``samples`` samples.

    Judged on the study's own guests, not on host memory, which other processes on a shared host move too.
    Returns (steady, seconds waited); a timeout returns False, never taken as steady.
    """
    started = time.monotonic()
    start = thread.count
    while True:
        thread.wait_next()
        window = thread.since(start)[-samples:]
        if len(window) >= samples:
            totals = [sum(g.rss_bytes for g in s.guests if g.pid in pids) for s in window]
            if max(totals) - min(totals) <= max(2 * 2**20, tolerance * max(totals)):
                return True, time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return False, time.monotonic() - started


@dataclass(frozen=True, slots=True)
class GuestWindow:
    name: str
    pid: int
    rss_bytes: int
    anon_bytes: int
    pss_bytes: int | None
    merged_pages: int
    zero_pages: int
    profit_bytes: int | None
    faults_minor: int | None
    faults_major: int | None
    perf_faults_minor: int | None
    perf_faults_major: int | None


@dataclass(frozen=True, slots=True)
class Window:
    """What one measurement window saw."""

    seconds: float
    """From the first to the last sample of the window."""
    fault_seconds: float
    """From the first to the last fault count (a little longer than ``seconds``)."""
    samples: int
    host_used_bytes: int
    """Median over the window."""
    host_used_min_bytes: int
    host_used_max_bytes: int
    ksmd_cpu_percent: float | None
    cow_ksm: int | None
    last: Snapshot
    guests: tuple[GuestWindow, ...]
    perf_status: str | None
    """Why perf counted no faults (None: counted)."""


def _proc_faults(pid: int) -> tuple[int, int] | None:
    try:
        _comm, minor, major, *_rest = parse_stat(Path(f"/proc/{pid}/stat").read_bytes())
    except (OSError, ValueError, IndexError):
        return None
    return minor, major


def measure_window(thread: SamplingThread, guests: list[LabGuest], seconds: float) -> Window:
    """Sample for ``seconds``: host memory (median), each guest's memory at the end, its page faults over the
    window from /proc and from perf (counters opened for the window), ksmd's CPU and COW breaks."""
    pids = [g.pid for g in guests]
    with FaultCounters() as counters:
        fault_started = time.monotonic()
        perf_start = counters.read(pids)
        proc_start = {pid: _proc_faults(pid) for pid in pids}
        first = thread.wait_next()
        index = thread.count - 1
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            thread.wait_next()
        perf_end = counters.read(pids)
        proc_end = {pid: _proc_faults(pid) for pid in pids}
        fault_seconds = time.monotonic() - fault_started
        statuses = {pid: counters.status(pid) for pid in pids}
    snapshots = thread.since(index)
    last = snapshots[-1]
    used = [host_used_bytes(s) for s in snapshots]
    elapsed = last.time - first.time
    ksmd = None
    if first.host.ksmd_cpu_seconds is not None and last.host.ksmd_cpu_seconds is not None and elapsed > 0:
        ksmd = 100.0 * (last.host.ksmd_cpu_seconds - first.host.ksmd_cpu_seconds) / elapsed
    cow = None
    if first.host.cow_ksm is not None and last.host.cow_ksm is not None:
        cow = last.host.cow_ksm - first.host.cow_ksm
    rows = []
    for guest in guests:
        sample = last.guest(guest.pid)
        proc = _delta(proc_start.get(guest.pid), proc_end.get(guest.pid))
        perf = _perf_delta(perf_start.get(guest.pid), perf_end.get(guest.pid))
        rows.append(
            GuestWindow(
                name=guest.name,
                pid=guest.pid,
                rss_bytes=sample.rss_bytes if sample else 0,
                anon_bytes=sample.anon_bytes if sample else 0,
                pss_bytes=read_pss(guest.pid),
                merged_pages=(sample.ksm_merging_pages or 0) if sample else 0,
                zero_pages=(sample.ksm_zero_pages or 0) if sample else 0,
                profit_bytes=sample.ksm_process_profit_bytes if sample else None,
                faults_minor=proc[0] if proc else None,
                faults_major=proc[1] if proc else None,
                perf_faults_minor=perf[0] if perf else None,
                perf_faults_major=perf[1] if perf else None,
            )
        )
    refused = [status.reason for status in statuses.values() if not status.available]
    return Window(
        seconds=elapsed,
        fault_seconds=fault_seconds,
        samples=len(snapshots),
        host_used_bytes=int(statistics.median(used)),
        host_used_min_bytes=min(used),
        host_used_max_bytes=max(used),
        ksmd_cpu_percent=ksmd,
        cow_ksm=cow,
        last=last,
        guests=tuple(rows),
        perf_status=safe(refused[0]) if refused else None,
    )


def _delta(start: tuple[int, int] | None, end: tuple[int, int] | None) -> tuple[int, int] | None:
    if start is None or end is None:
        return None
    return end[0] - start[0], end[1] - start[1]


def _perf_delta(start: FaultCounts | None, end: FaultCounts | None) -> tuple[int, int] | None:
    if start is None or end is None:
        return None
    return end.minor - start.minor, end.major - start.major
