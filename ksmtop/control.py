"""Guest controls: what the screen may do to a guest (start, stop, workloads), and doing it.

Every call here blocks (agent and QMP calls with timeouts in seconds): the screen runs them in workers. Each
start, stop and workload start/end becomes an Event, handed to ``on_event`` (the sampler puts it into the next
snapshot, so the timeline, recordings and replay all see it). No UI imports.

Messages and event texts quote guest names and what libvirt and guest agents said: ControlError and ``_event``
pass them through ``ksmtop.safetext.safe`` (the collectors already did; this holds for every path here).
Domains are acted on through their DomainSample, so libvirt reaches them by UUID whatever their names hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ksmtop.collect.agent import AgentError, GuestAgent
from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError
from ksmtop.collect.libvirt_agent import LibvirtAgent
from ksmtop.guest_actions import WORKLOADS, Control, ControlError, NeedsForce, WorkloadState
from ksmtop.lab.guests import DEFAULT_MEMORY_MIB, Lab, LabGuest
from ksmtop.lab.paths import LabError
from ksmtop.lab.workloads import WorkloadRun, start_workload
from ksmtop.model import DomainSample, Event
from ksmtop.rows import GuestRow
from ksmtop.safetext import safe

AGENT_TIMEOUT_S = 3.0
"""An agent that has not answered in this time is reported as not answering (a paused guest never will)."""
STOP_TIMEOUT_S = 15.0
"""How long a graceful stop (agent shutdown, then ACPI powerdown) may take before a forced stop is offered."""

NOT_OURS = "no agent: not started by ksmtop (no guest-agent or QMP socket known), so it cannot be controlled from here"


NOT_REMOTE = "not available remotely: only libvirt domains can be controlled on a remote host"


class GuestControls:
    """Controls for the lab guests under one runtime directory and, given a libvirt connection, for domains."""

    def __init__(
        self,
        lab: Lab | None = None,
        on_event: Callable[[Event], None] | None = None,
        stop_timeout: float = STOP_TIMEOUT_S,
        accel: str = "auto",
        libvirt: LibvirtConnection | None = None,
        local: bool = True,
    ) -> None:
        """``local`` False: the screen shows a remote host, where only libvirt domains can be controlled."""
        self.lab = lab or Lab()
        self.local = local
        self.accel = accel
        self.libvirt = libvirt
        self.on_event = on_event or (lambda event: None)
        self.stop_timeout = stop_timeout
        self._runs: dict[str, WorkloadRun] = {}
        self._lock = threading.Lock()

    # --- what may be done ---------------------------------------------------------------------------------
    def control_for(self, row: GuestRow) -> Control:
        if row.domain is not None and self.libvirt is not None:
            return Control(True, name=row.domain.name, kind="domain", running=row.domain.running)
        if not self.local:
            return Control(False, NOT_REMOTE)
        guest = self._lab_guest(row)
        if guest is None:
            return Control(False, NOT_OURS)
        return Control(True, name=guest.name, kind="lab")

    def controls_for(self, rows: list[GuestRow]) -> dict[str, Control]:
        """control_for() of every row, with the lab's state files read once (not once per row)."""
        try:
            lab_guests = {guest.pid: guest for guest in self.lab.guests()} if self.local else {}
        except (OSError, ValueError):
            lab_guests = {}
        found = {}
        for row in rows:
            if row.domain is not None and self.libvirt is not None:
                found[row.key] = Control(True, name=row.domain.name, kind="domain", running=row.domain.running)
            elif not self.local:
                found[row.key] = Control(False, NOT_REMOTE)
            elif row.guest is not None and row.guest.pid in lab_guests:
                found[row.key] = Control(True, name=lab_guests[row.guest.pid].name, kind="lab")
            else:
                found[row.key] = Control(False, NOT_OURS)
        return found

    def _lab_guest(self, row: GuestRow) -> LabGuest | None:
        if row.guest is None:
            return None
        try:
            return self.lab.find_by_pid(row.guest.pid)
        except (LabError, OSError, ValueError):  # e.g. a runtime directory someone else made: not ours to use
            return None

    def next_name(self) -> str:
        """The first free lab-N name."""
        taken = {guest.name for guest in self.lab.guests()}
        index = 1
        while self.lab.guest_name(index) in taken:
            index += 1
        return self.lab.guest_name(index)

    # --- actions (blocking) -------------------------------------------------------------------------------
    def start(self, name: str | None = None, memory_mib: int = DEFAULT_MEMORY_MIB) -> LabGuest:
        """Start a new lab guest (qemu run by ksmtop)."""
        if not self.local:
            raise ControlError(f"lab guests run on this host: {NOT_REMOTE}")
        try:
            name = name or self.next_name()
            guest = self.lab.start_guest(name, memory_mib, accel=self.accel, wait=False)
        except (LabError, OSError) as exc:
            raise ControlError(f"could not start {name or 'a lab guest'}: {exc}") from None
        self._event(
            "guest-start",
            f"started {guest.name} (PID {guest.pid}, {memory_mib} MiB, {guest.accel})",
            {"guest": guest.name, "pid": guest.pid},
        )
        return guest

    def start_domain(self, row: GuestRow) -> str:
        """Start a shut-off libvirt domain (virsh start)."""
        domain = self._require_domain(row)
        try:
            self._libvirt().start(domain)
        except LibvirtError as exc:
            raise ControlError(str(exc)) from None
        self._event("guest-start", f"started domain {domain.name} (libvirt)", self._data(row))
        return f"started domain {domain.name}"

    def stop(self, row: GuestRow, force: bool = False) -> str:
        if row.domain is not None and self.libvirt is not None:
            how = self._stop_domain(row, force)
        else:
            how = self._stop_lab_guest(row, force)
        with self._lock:
            self._runs.pop(row.key, None)
        return how

    def _stop_lab_guest(self, row: GuestRow, force: bool) -> str:
        guest = self._require_lab_guest(row)
        timeout = self.stop_timeout
        try:
            how = self.lab.stop_guest(guest.name, force=force, timeout=timeout)
        except LabError as exc:
            if not force and "force" in str(exc):
                raise NeedsForce(f"{guest.name} did not power off within {timeout:.0f} s") from None
            raise ControlError(f"could not stop {guest.name}: {exc}") from None
        self._event("guest-stop", f"stopped {guest.name}: {how}", {**self._data(row), "forced": force, "how": how})
        return how

    def _stop_domain(self, row: GuestRow, force: bool) -> str:
        """Graceful: libvirt's shutdown (guest agent, else ACPI), waited for; forced: destroy (after a confirm)."""
        domain = self._require_domain(row)
        libvirt = self._libvirt()
        try:
            if force:
                libvirt.destroy(domain)
                how = "destroyed (forced off through libvirt)"
            else:
                libvirt.shutdown(domain)
                if not self._wait_shut_off(domain):
                    raise NeedsForce(f"{domain.name} did not shut down within {self.stop_timeout:.0f} s")
                how = "shut down (guest agent or ACPI, through libvirt)"
        except LibvirtError as exc:
            raise ControlError(str(exc)) from None
        self._event("guest-stop", f"{domain.name}: {how}", {**self._data(row), "forced": force, "how": how})
        return f"{domain.name} {how}"

    def _wait_shut_off(self, domain: DomainSample) -> bool:
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if not any(d.uuid == domain.uuid and d.running for d in self._libvirt().domains()):
                return True
            time.sleep(0.5)
        return False

    def start_workload(self, row: GuestRow, workload: str, argument: int | None = None) -> WorkloadRun:
        name = self._require(row).name
        if workload not in WORKLOADS:
            raise ControlError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
        try:
            with self._agent(row) as agent:
                run = start_workload(agent, workload, argument, timeout=AGENT_TIMEOUT_S)
        except (AgentError, ValueError, OSError) as exc:
            raise ControlError(f"{name}: {exc}") from None
        with self._lock:
            self._runs[row.key] = run
        self._event("workload-start", f"{name}: {run.label} started", {**self._data(row), "workload": run.label})
        return run

    def workload(self, key: str) -> WorkloadRun | None:
        with self._lock:
            return self._runs.get(key)

    def poll_workload(self, row: GuestRow) -> WorkloadState | None:
        """Ask the agent about the guest's workload; the end becomes an event once."""
        run = self.workload(row.key)
        control = self.control_for(row)
        if run is None or not control.can_control:
            return None
        if run.state is not None and not run.state.running:
            return run.state
        try:
            with self._agent(row) as agent:
                state = run.poll(agent)
        except AgentError as exc:
            raise ControlError(f"{control.name}: {exc}") from None
        if not state.running:
            self._event(
                "workload-end",
                f"{control.name}: {run.label} ended, {state.describe()}",
                {**self._data(row), "workload": run.label, "exitcode": state.exitcode, "signal": state.signal},
            )
        return state

    def ping(self, row: GuestRow) -> str:
        """'ok', 'no agent', 'not running', or why the agent did not answer."""
        control = self.control_for(row)
        if not control.can_control:
            return "no agent"
        if not control.running:
            return "not running"
        try:
            with self._agent(row) as agent:
                agent.ping()
        except AgentError as exc:
            return f"not answering: {exc}"
        return "ok"

    # --- helpers ------------------------------------------------------------------------------------------
    def _agent(self, row: GuestRow) -> GuestAgent:
        if row.domain is not None and self.libvirt is not None:
            return LibvirtAgent(self.libvirt, row.domain, timeout=AGENT_TIMEOUT_S)
        return self._require_lab_guest(row).agent(timeout=AGENT_TIMEOUT_S)

    def _libvirt(self) -> LibvirtConnection:
        if self.libvirt is None:
            raise ControlError("not connected to libvirt")
        return self.libvirt

    def _require(self, row: GuestRow) -> Control:
        control = self.control_for(row)
        if not control.can_control:
            raise ControlError(control.why)
        return control

    def _require_domain(self, row: GuestRow) -> DomainSample:
        if row.domain is None or self.libvirt is None:
            raise ControlError(f"{row.name} is not a libvirt domain")
        return row.domain

    def _require_lab_guest(self, row: GuestRow) -> LabGuest:
        guest = self._lab_guest(row)
        if guest is None:
            raise ControlError(NOT_OURS)
        return guest

    @staticmethod
    def _data(row: GuestRow) -> dict[str, object]:
        data: dict[str, object] = {"guest": row.name, "pid": row.pid}
        if row.domain is not None:
            data["domain"] = row.domain.uuid
        return data

    def _event(self, kind: str, text: str, data: dict[str, object]) -> None:
        self.on_event(Event(time=time.time(), kind=kind, text=safe(text), data=data))
