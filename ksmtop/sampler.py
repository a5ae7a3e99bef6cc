"""The sampler: runs the collectors, computes deltas and rates, keeps history. No UI.

with Sampler() as sampler:
    snapshot = sampler.sample()
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from ksmtop.collect.host import HostReader
from ksmtop.collect.ksm import read_ksm
from ksmtop.collect.procfs import ProcessTable, read_pss
from ksmtop.model import Event, GuestSample, HostSample, KsmRates, KsmState, Scope, Snapshot
from ksmtop.perfcount import PerfCounting

HISTORY_SAMPLES = 3600  # one hour at 1 s; sparklines need ten minutes
PSS_MAX_AGE_S = 5.0  # the selected guest's PSS is re-read at most this often
PSS_BUDGET_S = 0.010  # time per tick for round-robin PSS reads of the other guests


def _rate(new: float | None, old: float | None, seconds: float) -> float | None:
    if new is None or old is None or seconds <= 0:
        return None
    return (new - old) / seconds


class Sampler:
    """Takes Snapshots. Thread-safe for one sampling thread plus callers of add_event/select/set_scope."""

    def __init__(self, root: str | Path = "/", scope: Scope = "qemu", perf: bool | None = None) -> None:
        """``perf``: count KSM tracepoints and per-guest faults with perf (default: on the real root as root)."""
        self.root = root
        self.processes = ProcessTable(root=root, scope=scope)
        self.host_reader = HostReader(root=root)
        self.is_root = os.geteuid() == 0
        if perf is None:
            perf = self.is_root and str(root) == "/"
        self.perf = PerfCounting(root) if perf else None
        self.perf_off_reason = None if perf or self.is_root else "perf counters and KSM tracepoints need root"
        self._previous: Snapshot | None = None
        self._previous_monotonic = 0.0
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._pss: dict[int, tuple[int, float]] = {}
        self._pss_cursor = 0
        self.selected_pid: int | None = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.processes.close()
        self.host_reader.close()
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
        ksm = read_ksm(self.root)
        previous = self._previous
        interval = now_monotonic - self._previous_monotonic if previous else None
        guests = self._with_pss(guests, now_monotonic)
        rates = ksm_rates(ksm, host, previous.ksm if previous else None, interval, guests)
        host = _host_rates(host, previous.host if previous else None, interval)
        if self.perf is not None:
            rates = self.perf.rates(rates)
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
            guests=tuple(_guest_rates(g, previous, interval, host.clock_ticks) for g in guests),
            events=events,
            is_root=self.is_root,
        )
        self._previous = snapshot
        self._previous_monotonic = now_monotonic
        return snapshot

    def _with_pss(self, guests: list[GuestSample], now: float) -> list[GuestSample]:
        """Attach PSS: the selected guest's when stale, then others round-robin within a time budget."""
        pids = [g.pid for g in guests]
        self._pss = {pid: value for pid, value in self._pss.items() if pid in pids}
        selected = self.selected_pid
        if selected in pids and now - self._pss.get(selected, (0, -1e9))[1] >= PSS_MAX_AGE_S:
            self._read_pss(selected)
        deadline = time.monotonic() + PSS_BUDGET_S
        for _ in range(len(pids)):
            if time.monotonic() >= deadline:
                break
            self._pss_cursor = (self._pss_cursor + 1) % len(pids)
            pid = pids[self._pss_cursor]
            if now - self._pss.get(pid, (0, -1e9))[1] >= PSS_MAX_AGE_S * 6:
                self._read_pss(pid)
        result = []
        for guest in guests:
            cached = self._pss.get(guest.pid)
            if cached is None:
                result.append(guest)
            else:
                age = max(0.0, time.monotonic() - cached[1])
                result.append(dataclasses.replace(guest, pss_bytes=cached[0], pss_age_s=round(age, 1)))
        return result

    def _read_pss(self, pid: int) -> None:
        value = read_pss(pid, self.root)
        if value is not None:
            self._pss[pid] = (value, time.monotonic())


def _guest_rates(
    guest: GuestSample, previous: Snapshot | None, interval: float | None, clock_ticks: int
) -> GuestSample:
    if previous is None or not interval:
        return guest
    old = previous.guest(guest.pid)
    if old is None or old.start_ticks != guest.start_ticks:
        return guest
    faults = _rate(guest.minor_faults + guest.major_faults, old.minor_faults + old.major_faults, interval)
    cpu = _rate(guest.cpu_seconds, old.cpu_seconds, interval)
    return dataclasses.replace(
        guest,
        cpu_percent=None if cpu is None else max(0.0, 100.0 * cpu),
        faults_per_s=faults,
        merged_pages_per_s=_rate(guest.ksm_merging_pages, old.ksm_merging_pages, interval),
    )


def _host_rates(host: HostSample, old: HostSample | None, interval: float | None) -> HostSample:
    if old is None or not interval:
        return host
    cpu = _rate(host.ksmd_cpu_seconds, old.ksmd_cpu_seconds, interval)
    return dataclasses.replace(
        host,
        ksmd_cpu_percent=None if cpu is None else max(0.0, 100.0 * cpu),
        cow_ksm_per_s=_rate(host.cow_ksm, old.cow_ksm, interval),
    )


def ksm_rates(
    ksm: KsmState,
    host: HostSample,
    old: KsmState | None,
    interval: float | None,
    guests: list[GuestSample] | tuple[GuestSample, ...] = (),
) -> KsmRates:
    """Saving, ratio, scan rate and time per full scan from the KSM counters (and their change)."""
    sharing = ksm.get("pages_sharing")
    shared = ksm.get("pages_shared")
    zero = ksm.get("ksm_zero_pages") or 0
    saving = None if sharing is None else (sharing + zero) * host.page_size
    ratio = sharing / shared if sharing is not None and shared else None
    to_scan = ksm.get("pages_to_scan")
    sleep_ms = ksm.get("sleep_millisecs")
    scan_rate = None
    if ksm.running and to_scan is not None and sleep_ms is not None:
        # ksmd scans pages_to_scan pages then sleeps; 0 ms sleep still yields the CPU once per batch.
        scan_rate = to_scan * 1000.0 / max(sleep_ms, 1)
    measured = None
    full_scans_delta = None
    sharing_rate = None
    if old is not None and interval:
        measured = _rate(ksm.get("pages_scanned"), old.get("pages_scanned"), interval)
        if ksm.get("full_scans") is not None and old.get("full_scans") is not None:
            full_scans_delta = ksm.get("full_scans") - old.get("full_scans")  # type: ignore[operator]
        sharing_rate = _rate(sharing, old.get("pages_sharing"), interval)
    # rmap_items is roughly the number of mergeable pages ksmd visits per pass; fall back to anon RSS of guests.
    mergeable_pages = sum(g.ksm_rmap_items or 0 for g in guests) or sum(g.anon_bytes for g in guests) // max(
        host.page_size, 1
    )
    rate_for_estimate = measured if measured else scan_rate
    full_scan_seconds = mergeable_pages / rate_for_estimate if rate_for_estimate and mergeable_pages else None
    return KsmRates(
        saving_bytes=saving,
        sharing_ratio=ratio,
        scan_rate_pages_per_s=scan_rate,
        measured_scan_pages_per_s=measured,
        full_scan_seconds=full_scan_seconds,
        full_scans_delta=full_scans_delta,
        pages_sharing_per_s=sharing_rate,
    )


class History:
    """The last HISTORY_SAMPLES snapshots, for sparklines; same for live and replay."""

    def __init__(self, maxlen: int = HISTORY_SAMPLES) -> None:
        self.snapshots: deque[Snapshot] = deque(maxlen=maxlen)

    def append(self, snapshot: Snapshot) -> None:
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

    def events(self) -> list[Event]:
        return [event for snapshot in self.snapshots for event in snapshot.events]
