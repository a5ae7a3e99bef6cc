"""LiveSource: this host, sampled through the Sampler (/proc and /sys), with libvirt's domains beside it when a
connection is given, and guest controls (lab guests, libvirt domains) when asked for.

One libvirt connection serves both: the watcher thread polls it, the controls call it from the screen's workers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ksmtop.collect.ksm import write_tunable
from ksmtop.collect.pagemap import SharingReport, sharing
from ksmtop.collect.smaps import SmapsSummary, read_smaps
from ksmtop.diagnose import Diagnosis, diagnose
from ksmtop.knobs import WriteResult
from ksmtop.model import Event, GuestSample, KsmState, Scope, Snapshot
from ksmtop.sampler import Sampler
from ksmtop.source import Controls, Limits

if TYPE_CHECKING:
    from ksmtop.collect.libvirt import LibvirtConnection

LIBVIRT_WAIT_S = 0.5
"""How long a sample waits for libvirt's answer before it shows the previous one (a hung libvirtd never stalls)."""
NOT_ROOT = "not root: KSM tunables can only be changed by root"
NOT_CONTROLLED = "guest controls are off here (another root than /)"
CONTROLS_NOT_ASKED = "guest controls are off (this source was made without them)"
SMAPS_MAX_AGE_S = 60.0
"""A guest's smaps (its memory areas: mergeable or not, hugetlbfs, shared) change rarely; the diagnosis that
uses them is worked out every few seconds from the newest sample and smaps at most this old."""


class LiveSource:
    """Samples this host; tunable writes go to /sys/kernel/mm/ksm and become events."""

    clock = None

    def __init__(
        self,
        root: str | Path = "/",
        scope: Scope = "qemu",
        libvirt: LibvirtConnection | None = None,
        *,
        controls: bool | Callable[[Callable[[Event], None]], Controls] = False,
        libvirt_first_wait_s: float = 0.0,
        perf: bool = True,
    ) -> None:
        """``controls``: offer guest controls (lab guests; libvirt domains through ``libvirt``), or a factory
        that makes them given where their events go (tests: a lab of their own, shorter timeouts).
        ``libvirt_first_wait_s``: how long the first sample waits for libvirt's first answer (headless output
        waits for a libvirtd that has just started; the screen does not). ``perf``: count KSM tracepoints and
        per-guest faults with perf where it can (as root, on the real root)."""
        self.sampler = Sampler(root=root, scope=scope, perf=None if perf else False)
        self.root = root
        self.description = "live" if str(root) == "/" else f"live ({root})"
        no_controls = NOT_CONTROLLED if str(root) != "/" else CONTROLS_NOT_ASKED
        self.limits = Limits(
            tunables="" if self.sampler.is_root else NOT_ROOT, controls="" if controls else no_controls
        )
        self._smaps: dict[tuple[int, int], tuple[SmapsSummary | None, float]] = {}
        self.watcher = None
        if libvirt is not None:
            from ksmtop.collect.libvirt_watch import DomainWatcher

            self.watcher = DomainWatcher(libvirt, fault_counters=self.sampler.is_root)
            self.watcher.first_wait_s = libvirt_first_wait_s
        self.controls: Controls | None = None
        if callable(controls):
            self.controls = controls(self.add_event)
        elif controls:
            from ksmtop.control import GuestControls

            self.controls = GuestControls(on_event=self.add_event, libvirt=libvirt, local=True)

    def sample(self) -> Snapshot:
        if self.watcher is None:
            return self.sampler.sample()
        ticket = self.watcher.poke()  # libvirt answers while /proc is read
        snapshot = self.sampler.sample()
        view = self.watcher.latest(ticket, LIBVIRT_WAIT_S)
        return dataclasses.replace(snapshot, domains=view.domains, libvirt_status=view.status)

    def write_tunable(self, name: str, value: str) -> WriteResult:
        result = write_tunable(name, value, self.root)
        self.sampler.add_event(
            Event(
                time=time.time(),
                kind="tunable",
                text=result.message,
                data={
                    "name": name,
                    "old": result.old_value,
                    "requested": result.requested,
                    "new": result.new_value,
                    "ok": result.ok,
                    "errno": result.errno,
                },
            )
        )
        return result

    def unavailable_knobs(self, state: KsmState) -> dict[str, str]:
        return {}

    def set_scope(self, scope: Scope) -> None:
        self.sampler.set_scope(scope)

    def add_event(self, event: Event) -> None:
        self.sampler.add_event(event)

    def select(self, pid: int | None) -> None:
        self.sampler.selected_pid = pid

    def diagnose(self, guest: GuestSample, snapshot: Snapshot, full_scans: int | None) -> Diagnosis:
        """From the sample and the guest's smaps, read at most every SMAPS_MAX_AGE_S (about 8 ms per GiB)."""
        key = (guest.pid, guest.start_ticks)
        cached = self._smaps.get(key)
        now = time.monotonic()
        if cached is None or now - cached[1] >= SMAPS_MAX_AGE_S:
            cached = self._smaps[key] = (read_smaps(guest.pid, self.root), now)
            if len(self._smaps) > 64:  # guests come and go: keep the newest
                oldest = min(self._smaps, key=lambda k: self._smaps[k][1])
                del self._smaps[oldest]
        return diagnose(guest, snapshot.ksm, cached[0], snapshot.host.page_size, full_scans)

    def sharing(self, guests: Sequence[GuestSample], exact: bool = False) -> SharingReport:
        names = {guest.pid: guest.name for guest in guests}
        return sharing([guest.pid for guest in guests], self.root, names, exact=exact)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.sampler.close()
