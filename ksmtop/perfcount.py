"""What perf adds to a sample: KSM tracepoint rates, measured full-scan times, per-guest page faults.

Opened lazily (from the sampling thread, on the first sample) and only on the real root; where perf or tracefs
is unavailable it says why once, in words, and the rest of ksmtop works as before. No UI imports.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ksmtop.collect.faults import FaultCounters, FaultCounts
from ksmtop.collect.ksmtrace import AdvisorRecord, KsmTracer, KsmTraceSample
from ksmtop.model import GuestSample, KsmRates, replace_guest

MAX_FAULT_GUESTS = 64
"""Guests counted with perf (one counter pair per thread each); the rest keep the /proc figures only."""


class PerfCounting:
    def __init__(self, root: str | Path = "/") -> None:
        self.root = root
        self.tracer: KsmTracer | None = None
        self.faults: FaultCounters | None = None
        self.status: str | None = None
        self._opened = False
        self._trace: KsmTraceSample | None = None
        self._last_scan_s: float | None = None
        self._advisor: AdvisorRecord | None = None
        self._fault_counts: dict[int, FaultCounts] = {}

    def close(self) -> None:
        if self.tracer is not None:
            self.tracer.close()
            self.tracer = None
        if self.faults is not None:
            self.faults.close()
            self.faults = None

    def _open(self) -> None:
        self._opened = True
        tracer = KsmTracer(self.root)
        status = tracer.open()
        if status.available:
            self.tracer = tracer
        else:
            tracer.close()
            self.status = f"KSM tracepoints: {status.reason}"
        self.faults = FaultCounters(self.root)

    def rates(self, rates: KsmRates, advisor_on: bool = False) -> KsmRates:
        """The tracepoint figures added to the sampler's rates (the advisor's last adjustment while
        ``advisor_on``: one from before it was switched off is forgotten)."""
        if not self._opened:
            self._open()
        if self.tracer is None:
            return rates
        trace = self.tracer.read()
        if trace is None:
            return rates
        if trace.scans:
            self._last_scan_s = trace.scans[-1].seconds
        if trace.advisor:
            self._advisor = trace.advisor[-1]
        if not advisor_on:
            self._advisor = None
        advisor = self._advisor
        previous, self._trace = self._trace, trace
        per_s = trace.rates(previous) if previous is not None else {}
        return dataclasses.replace(
            rates,
            merges_per_s=per_s.get("merges_per_s"),
            unmerges_per_s=per_s.get("unmerges_per_s"),
            measured_full_scan_seconds=self._last_scan_s,
            advisor_scan_seconds=None if advisor is None else advisor.scan_seconds,
            advisor_pages_to_scan=None if advisor is None else advisor.pages_to_scan,
            advisor_cpu_percent=None if advisor is None else advisor.cpu_percent,
        )

    def guests(self, guests: list[GuestSample]) -> list[GuestSample]:
        """perf page faults per second beside the /proc figures."""
        if self.faults is None:
            return guests
        counted = [guest.pid for guest in guests[:MAX_FAULT_GUESTS]]
        counts = self.faults.read(counted)
        result = []
        for guest in guests:
            now, before = counts.get(guest.pid), self._fault_counts.get(guest.pid)
            if now is not None and before is not None and now.monotonic_ns > before.monotonic_ns:
                seconds = (now.monotonic_ns - before.monotonic_ns) / 1e9
                faults = (now.minor + now.major - before.minor - before.major) / seconds
                guest = replace_guest(guest, perf_faults_per_s=max(0.0, faults))
            result.append(guest)
        self._fault_counts = counts
        return result
