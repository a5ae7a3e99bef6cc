"""A remote host through libvirt alone (qemu+ssh://host/system): no /proc or /sys there, so a snapshot holds
what libvirt gives — domains with their states and memory statistics, the node's memory, its KSM counters and
the three KSM tunables libvirt can write — and says plainly that the rest is not available remotely.

No UI imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ksmtop.collect.libvirt import NODE_KSM_TUNABLES, LibvirtConnection, LibvirtError
from ksmtop.collect.libvirt_watch import DomainWatcher, LibvirtView
from ksmtop.diagnose import Diagnosis, diagnose
from ksmtop.knobs import KNOBS, TunableError, WriteResult, validate
from ksmtop.model import Event, GuestSample, HostSample, KsmState, Scope, Snapshot
from ksmtop.rates import ksm_rates
from ksmtop.safetext import safe
from ksmtop.source import Controls, Limits

if TYPE_CHECKING:
    from ksmtop.collect.pagemap import SharingReport

REMOTE_WAIT_S = 2.0
"""How long a sample waits for the remote libvirtd before it shows the previous answer."""
NOT_REMOTE = "not available remotely"
ASSUMED_CLOCK_TICKS = 100  # no guest processes are read remotely; the field is required by the model


def unavailable_remotely(names: list[str]) -> dict[str, str]:
    """Why each KSM tunable but the three libvirt can write is read-only on a remote host."""
    return {name: f"{NOT_REMOTE}: libvirt reads and writes only {', '.join(NODE_KSM_TUNABLES)}" for name in names}


def _host(view: LibvirtView) -> HostSample:
    memory = view.node_memory or {}
    free = memory.get("free", 0)
    return HostSample(
        page_size=view.page_size or 4096,
        clock_ticks=ASSUMED_CLOCK_TICKS,
        mem_total_bytes=memory.get("total", 0),
        mem_available_bytes=free + memory.get("buffers", 0) + memory.get("cached", 0),
        mem_free_bytes=free,
        anon_bytes=None,
        cow_ksm=None,
        ksmd_pid=None,
        ksmd_cpu_seconds=None,
        ncpus=view.node_cpus or 1,
        trace_status=f"ksmd CPU, tracepoints, per-process KSM figures: {NOT_REMOTE}; available = free+buffers+cached",
    )


def _ksm(view: LibvirtView) -> KsmState:
    if view.node_ksm is None:
        why = "libvirt gave no node memory parameters" if view.connected else view.status
        return KsmState(available=False, error=why)
    return KsmState(available=True, values=dict(view.node_ksm))


class RemoteSource:
    """Snapshots of a remote host from its libvirtd; tunable writes go through the node memory parameters API."""

    clock = None

    def __init__(
        self,
        connection: LibvirtConnection,
        *,
        controls: bool | Callable[[Callable[[Event], None]], Controls] = True,
        first_wait_s: float = 0.0,
    ) -> None:
        """``controls``: start, stop and run workloads in domains through the same connection (or a factory
        of the controls, given where their events go)."""
        self.connection = connection
        self.description = f"remote {connection.label}"
        self.limits = Limits(
            widen="a remote host's rows are its libvirt domains: other KSM users are not visible",
            sharing=f"the sharing matrix reads this host's page tables: {NOT_REMOTE}",
            controls="" if controls else "guest controls are off",
        )
        self.controls: Controls | None = None
        if callable(controls):
            self.controls = controls(self.add_event)
        elif controls:
            from ksmtop.control import GuestControls

            self.controls = GuestControls(on_event=self.add_event, libvirt=connection, local=False)
        self.watcher = DomainWatcher(connection, node=True, fault_counters=True)
        self.watcher.first_wait_s = first_wait_s
        self._previous: Snapshot | None = None
        self._previous_monotonic = 0.0
        self._events: list[Event] = []

    def sample(self) -> Snapshot:
        view = self.watcher.latest(self.watcher.poke(), REMOTE_WAIT_S)
        now = time.monotonic()
        previous = self._previous
        interval = now - self._previous_monotonic if previous else None
        host, ksm = _host(view), _ksm(view)
        events, self._events = tuple(self._events), []
        snapshot = Snapshot(
            time=time.time(),
            interval_s=interval,
            scope="qemu",
            host=host,
            ksm=ksm,
            rates=ksm_rates(ksm, host, previous.ksm if previous else None, interval),
            guests=(),
            events=events,
            domains=view.domains,
            mode="remote",
            libvirt_status=view.status,
        )
        self._previous, self._previous_monotonic = snapshot, now
        return snapshot

    def write_tunable(self, name: str, value: str) -> WriteResult:
        old = self._previous.ksm.values.get(name) if self._previous else None
        if name not in NODE_KSM_TUNABLES:
            message = safe(f"{name}: {unavailable_remotely([name])[name]}")
            return WriteResult(name, old, value, old, ok=False, message=message)
        try:
            text = validate(name, value)
            new = self.connection.set_node_ksm(name, int(text))
        except (TunableError, LibvirtError) as exc:
            return WriteResult(name, old, value, old, ok=False, message=safe(f"{name}: {exc}"))
        unit = KNOBS[name].unit
        message = f"{name} {old} → {new}{' ' + unit if unit else ''} (through libvirt on {self.connection.label})"
        result = WriteResult(name, old, text, new, ok=new == int(text), message=message)
        if not result.ok:
            result = WriteResult(name, old, text, new, ok=False, message=f"{name}: the host kept {new}, not {text}")
        self.add_event(
            Event(
                time=time.time(),
                kind="tunable",
                text=result.message,
                data={"name": name, "old": old, "requested": text, "new": new, "ok": result.ok, "remote": True},
            )
        )
        return result

    def unavailable_knobs(self, state: KsmState) -> dict[str, str]:
        return unavailable_remotely([name for name in KNOBS if name not in state.values])

    def set_scope(self, scope: Scope) -> None:
        """Remote rows are libvirt domains: there are no other KSM processes to widen to."""

    def add_event(self, event: Event) -> None:
        self._events.append(event)

    def select(self, pid: int | None) -> None:
        pass

    def diagnose(self, guest: GuestSample, snapshot: Snapshot, full_scans: int | None) -> Diagnosis:
        return diagnose(guest, snapshot.ksm, None, snapshot.host.page_size, full_scans)

    def sharing(self, guests: Sequence[GuestSample], exact: bool = False) -> SharingReport:
        raise RuntimeError(self.limits.sharing)

    def close(self) -> None:
        self.watcher.close()
