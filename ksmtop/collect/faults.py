"""Page faults per guest through perf software events: one counter pair per thread, new threads picked up.

Each thread of a tracked process (/proc/PID/task) gets a group of two counters, PERF_COUNT_SW_PAGE_FAULTS_MIN
(leader) and PERF_COUNT_SW_PAGE_FAULTS_MAJ, read together. Threads are listed again at every read: new ones get
counters (their counts start then), and a thread that exited keeps its last value in a running total, so the
process's count never goes backwards.

How this relates to /proc/PID/stat minflt/majflt (which stay ksmtop's default figures): both are bumped in the
same kernel function (mm_account_fault), but perf counts only faults taken with a register set, so faults the
kernel takes on a process's behalf (get_user_pages, e.g. KVM faulting in guest memory) show in /proc only.
Counts start when the counters open; compare changes, not totals.

No UI imports. Nothing raises to the caller: ``status`` says what is not available and why.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ksmtop.collect.perf import (
    PERF_COUNT_SW_PAGE_FAULTS_MAJ,
    PERF_COUNT_SW_PAGE_FAULTS_MIN,
    PERF_FORMAT_GROUP,
    PERF_TYPE_SOFTWARE,
    PerfError,
    PerfEvent,
    PerfStatus,
    open_event,
    raise_nofile,
)

FDS_PER_THREAD = 2


@dataclass(frozen=True, slots=True)
class FaultCounts:
    pid: int
    minor: int
    major: int
    threads: int
    """Threads with open counters at this read."""
    monotonic_ns: int


@dataclass(slots=True)
class _Thread:
    leader: PerfEvent
    member: PerfEvent

    def read(self) -> tuple[int, int]:
        minor, major = self.leader.read_group(2)
        return minor, major

    def close(self) -> None:
        self.member.close()
        self.leader.close()


@dataclass
class ProcessFaults:
    """Fault counters for every thread of one process. Use as a context manager or call close()."""

    pid: int
    root: str | Path = "/"
    status: PerfStatus = field(default_factory=lambda: PerfStatus(False, "not read yet"))
    _threads: dict[int, _Thread] = field(default_factory=dict)
    _retired: list[int] = field(default_factory=lambda: [0, 0])
    user_only: bool = False
    """True when only faults taken in user mode are counted (not root, perf_event_paranoid >= 2)."""

    def __enter__(self) -> ProcessFaults:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for thread in self._threads.values():
            thread.close()
        self._threads.clear()

    def read(self) -> FaultCounts | None:
        """Counts so far (since the counters opened); None when the process is gone or perf is refused."""
        task_dir = Path(self.root) / "proc" / str(self.pid) / "task"
        try:
            tids = {int(entry) for entry in os.listdir(task_dir) if entry.isdigit()}
        except OSError:
            self.close()
            self.status = PerfStatus(False, f"process {self.pid} is gone")
            return None
        for tid in [tid for tid in self._threads if tid not in tids]:
            self._retire(tid)
        new = [tid for tid in tids if tid not in self._threads]
        if new:
            raise_nofile(FDS_PER_THREAD * len(new))
        for tid in new:
            try:
                self._threads[tid] = self._open(tid)
            except PerfError as exc:
                if exc.errno == errno.ESRCH:  # the thread exited between listing and opening
                    continue
                if not self._threads:
                    self.status = PerfStatus(False, str(exc))
                    return None
                self.status = PerfStatus(True, f"some threads not counted: {exc}")
        minor, major = self._retired
        for tid, thread in list(self._threads.items()):
            try:
                thread_minor, thread_major = thread.read()
            except OSError:
                self._threads.pop(tid).close()
                continue
            minor += thread_minor
            major += thread_major
        if self._threads and not self.status.reason.startswith("some threads"):
            scope = " (user-mode faults only: not root)" if self.user_only else ""
            self.status = PerfStatus(True, f"counting page faults of {len(self._threads)} threads{scope}")
        return FaultCounts(self.pid, minor, major, len(self._threads), time.monotonic_ns())

    def _open(self, tid: int) -> _Thread:
        what = f"page-fault counters of thread {tid} (process {self.pid})"
        try:
            return self._open_pair(tid, what, exclude_kernel=self.user_only)
        except PerfError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM) or self.user_only or os.geteuid() == 0:
                raise
        # Without root, perf_event_paranoid >= 2 allows user-mode events only: count the faults taken there.
        self.user_only = True
        return self._open_pair(tid, what, exclude_kernel=True)

    def _open_pair(self, tid: int, what: str, exclude_kernel: bool) -> _Thread:
        leader = open_event(
            PERF_TYPE_SOFTWARE,
            PERF_COUNT_SW_PAGE_FAULTS_MIN,
            pid=tid,
            read_format=PERF_FORMAT_GROUP,
            exclude_kernel=exclude_kernel,
            description=what,
        )
        try:
            member = open_event(
                PERF_TYPE_SOFTWARE,
                PERF_COUNT_SW_PAGE_FAULTS_MAJ,
                pid=tid,
                group=leader,
                read_format=PERF_FORMAT_GROUP,
                exclude_kernel=exclude_kernel,
                description=what,
            )
        except PerfError:
            leader.close()
            raise
        return _Thread(leader, member)

    def _retire(self, tid: int) -> None:
        thread = self._threads.pop(tid)
        try:
            minor, major = thread.read()  # an exited thread's counters keep their final value
            self._retired[0] += minor
            self._retired[1] += major
        except OSError:
            pass
        thread.close()


class FaultCounters:
    """ProcessFaults for a changing set of PIDs (the guests of a snapshot)."""

    def __init__(self, root: str | Path = "/") -> None:
        self.root = root
        self.processes: dict[int, ProcessFaults] = {}

    def __enter__(self) -> FaultCounters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes.values():
            process.close()
        self.processes.clear()

    def read(self, pids: list[int] | tuple[int, ...]) -> dict[int, FaultCounts]:
        """Counts for each PID that perf can count; stop counting PIDs no longer asked for."""
        for pid in [pid for pid in self.processes if pid not in pids]:
            self.processes.pop(pid).close()
        result: dict[int, FaultCounts] = {}
        for pid in pids:
            process = self.processes.get(pid)
            if process is None:
                process = self.processes[pid] = ProcessFaults(pid, self.root)
            counts = process.read()
            if counts is not None:
                result[pid] = counts
        return result

    def status(self, pid: int) -> PerfStatus:
        process = self.processes.get(pid)
        return process.status if process else PerfStatus(False, f"process {pid} is not counted")
