"""The sampler: runs the collectors, computes deltas and rates, keeps history. No UI.

with Sampler() as sampler:
    snapshot = sampler.sample()
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

from ksmtop.collect.host import HostReader
from ksmtop.collect.ksm import KsmReader
from ksmtop.collect.procfs import ProcessTable, Rollup, read_rollup
from ksmtop.knobs import advisor_running
from ksmtop.model import Event, GuestSample, Scope, Snapshot, replace_guest
from ksmtop.perfcount import PerfCounting
from ksmtop.rates import guest_rates, host_rates, ksm_rates

PSS_MAX_AGE_S = 5.0  # the selected guest's PSS (and huge pages, same file) is re-read at most this often


class Sampler:
    """Takes Snapshots. Thread-safe for one sampling thread plus callers of add_event/select/set_scope."""

    def __init__(self, root: str | Path = "/", scope: Scope = "qemu", perf: bool | None = None) -> None:
        """``perf``: count KSM tracepoints and per-guest faults with perf (default: on the real root as root)."""
        self.root = root
        self.processes = ProcessTable(root=root, scope=scope)
        self.host_reader = HostReader(root=root)
        self.ksm_reader = KsmReader(root)
        self.is_root = os.geteuid() == 0
        if perf is None:
            perf = self.is_root and str(root) == "/"
        self.perf = PerfCounting(root) if perf else None
        self.perf_off_reason = None if perf or self.is_root else "perf counters and KSM tracepoints need root"
        self._previous: Snapshot | None = None
        self._previous_monotonic = 0.0
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._rollups: dict[int, tuple[Rollup, float]] = {}
        self.selected_pid: int | None = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.processes.close()
        self.host_reader.close()
        self.ksm_reader.close()
        if self.perf is not None:
            self.perf.close()

    @property
    def scope(self) -> Scope:
        return self.processes.scope

    def set_scope(self, scope: Scope) -> None:
        with self._lock:
            self.processes.set_scope(scope)

    def add_event(self, event: Event) -> None:
        """Queue an event; it is attached to the next snapshot."""
        with self._lock:
            self._events.append(event)

    def sample(self) -> Snapshot:
        now_monotonic = time.monotonic()
        with self._lock:
            self.processes.discover(now_monotonic)
            guests = self.processes.sample()
            events = tuple(self._events)
            self._events.clear()
        host = self.host_reader.sample()
        ksm = self.ksm_reader.read()
        previous = self._previous
        interval = now_monotonic - self._previous_monotonic if previous else None
        guests = self._with_rollup(guests, now_monotonic)
        rates = ksm_rates(ksm, host, previous.ksm if previous else None, interval, guests)
        host = host_rates(host, previous.host if previous else None, interval)
        if self.perf is not None:
            rates = self.perf.rates(rates, advisor_on=advisor_running(ksm))
            guests = self.perf.guests(guests)
            if self.perf.status:
                host = dataclasses.replace(host, trace_status=self.perf.status)
        elif self.perf_off_reason:
            host = dataclasses.replace(host, trace_status=self.perf_off_reason)
        snapshot = Snapshot(
            time=time.time(),
            interval_s=interval,
            scope=self.scope,
            host=host,
            ksm=ksm,
            rates=rates,
            guests=tuple(guest_rates(g, previous, interval, host.clock_ticks, host.page_size) for g in guests),
            events=events,
            is_root=self.is_root,
        )
        self._previous = snapshot
        self._previous_monotonic = now_monotonic
        return snapshot

    def _with_rollup(self, guests: list[GuestSample], now: float) -> list[GuestSample]:
        """Attach PSS and huge pages (smaps_rollup): the selected guest's, re-read when older than PSS_MAX_AGE_S;
        a guest selected earlier keeps its last figures, with their age. smaps_rollup walks the page tables
        (about 8 ms per GiB of RSS): reading every guest's in turn would cost a real host more CPU than the whole
        screen."""
        pids = {g.pid for g in guests}
        self._rollups = {pid: value for pid, value in self._rollups.items() if pid in pids}
        selected = self.selected_pid
        if selected in pids and now - self._rollups.get(selected, (0, -1e9))[1] >= PSS_MAX_AGE_S:
            self._read_rollup(selected)
        result = []
        for guest in guests:
            cached = self._rollups.get(guest.pid)
            if cached is None:
                result.append(guest)
            else:
                rollup, age = cached[0], max(0.0, now - cached[1])
                result.append(
                    replace_guest(
                        guest,
                        pss_bytes=rollup.pss_bytes,
                        pss_age_s=round(age, 1),
                        anon_huge_bytes=rollup.anon_huge_bytes,
                        hugetlb_bytes=rollup.hugetlb_bytes,
                    )
                )
        return result

    def _read_rollup(self, pid: int) -> None:
        value = read_rollup(pid, self.root)
        if value is not None:
            self._rollups[pid] = (value, time.monotonic())
