"""Guest controls: what the screen may do to a guest (start, stop, workloads), and doing it.

Every call here blocks (agent and QMP calls with timeouts in seconds): the screen runs them in workers. Each
start, stop and workload start/end becomes an Event, handed to ``on_event`` (the sampler puts it into the next
snapshot, so the timeline, recordings and replay all see it). No UI imports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ksmtop.collect.agent import AgentError
from ksmtop.lab.guests import DEFAULT_MEMORY_MIB, Lab, LabGuest
from ksmtop.lab.paths import LabError
from ksmtop.lab.workloads import WORKLOADS, WorkloadRun, WorkloadState, start_workload
from ksmtop.model import Event

AGENT_TIMEOUT_S = 3.0
"""An agent that has not answered in this time is reported as not answering (a paused guest never will)."""
STOP_TIMEOUT_S = 15.0
"""How long a graceful stop (agent shutdown, then ACPI powerdown) may take before a forced stop is offered."""

NOT_OURS = "no agent: not started by ksmtop (no guest-agent or QMP socket known), so it cannot be controlled from here"


class ControlError(Exception):
    """A control action that failed; the message is one line, fit for the screen."""


class NeedsForce(ControlError):
    """A graceful stop did not stop the guest; a forced stop (with a confirm) is the next step."""


@dataclass(frozen=True, slots=True)
class Control:
    """Whether the screen can control a guest, and if not, why."""

    can_control: bool
    why: str = ""
    name: str = ""


class GuestControls:
    """Controls for the lab guests under one runtime directory."""

    def __init__(
        self,
        lab: Lab | None = None,
        on_event: Callable[[Event], None] | None = None,
        stop_timeout: float = STOP_TIMEOUT_S,
        accel: str = "auto",
    ) -> None:
        self.lab = lab or Lab()
        self.accel = accel
        self.on_event = on_event or (lambda event: None)
        self.stop_timeout = stop_timeout
        self._runs: dict[int, WorkloadRun] = {}
        self._lock = threading.Lock()

    # --- what may be done ---------------------------------------------------------------------------------
    def control_for(self, pid: int) -> Control:
        guest = self._guest(pid)
        if guest is None:
            return Control(False, NOT_OURS)
        return Control(True, name=guest.name)

    def _guest(self, pid: int) -> LabGuest | None:
        try:
            return self.lab.find_by_pid(pid)
        except (OSError, ValueError):
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
        name = name or self.next_name()
        try:
            guest = self.lab.start_guest(name, memory_mib, accel=self.accel, wait=False)
        except (LabError, OSError) as exc:
            raise ControlError(f"could not start {name}: {exc}") from None
        self._event(
            "guest-start", f"started {guest.name} (PID {guest.pid}, {memory_mib} MiB, {guest.accel})", guest, {}
        )
        return guest

    def stop(self, pid: int, force: bool = False) -> str:
        guest = self._require(pid)
        timeout = self.stop_timeout
        try:
            how = self.lab.stop_guest(guest.name, force=force, timeout=timeout)
        except LabError as exc:
            if not force and "force" in str(exc):
                raise NeedsForce(f"{guest.name} did not power off within {timeout:.0f} s") from None
            raise ControlError(f"could not stop {guest.name}: {exc}") from None
        self._event("guest-stop", f"stopped {guest.name}: {how}", guest, {"forced": force, "how": how})
        with self._lock:
            self._runs.pop(pid, None)
        return how

    def start_workload(self, pid: int, workload: str, argument: int | None = None) -> WorkloadRun:
        guest = self._require(pid)
        if workload not in WORKLOADS:
            raise ControlError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
        try:
            with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
                run = start_workload(agent, workload, argument, timeout=AGENT_TIMEOUT_S)
        except (AgentError, ValueError, OSError) as exc:
            raise ControlError(f"{guest.name}: {exc}") from None
        with self._lock:
            self._runs[pid] = run
        self._event("workload-start", f"{guest.name}: {run.label} started", guest, {"workload": run.label})
        return run

    def workload(self, pid: int) -> WorkloadRun | None:
        with self._lock:
            return self._runs.get(pid)

    def poll_workload(self, pid: int) -> WorkloadState | None:
        """Ask the agent about the guest's workload; the end becomes an event once."""
        run = self.workload(pid)
        guest = self._guest(pid)
        if run is None or guest is None:
            return None
        if run.state is not None and not run.state.running:
            return run.state
        try:
            with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
                state = run.poll(agent)
        except AgentError as exc:
            raise ControlError(f"{guest.name}: {exc}") from None
        if not state.running:
            self._event(
                "workload-end",
                f"{guest.name}: {run.label} ended, {state.describe()}",
                guest,
                {"workload": run.label, "exitcode": state.exitcode, "signal": state.signal},
            )
        return state

    def ping(self, pid: int) -> str:
        """'ok', 'no agent', or why the agent did not answer."""
        guest = self._guest(pid)
        if guest is None:
            return "no agent"
        try:
            with guest.agent(timeout=AGENT_TIMEOUT_S) as agent:
                agent.ping()
        except AgentError as exc:
            return f"not answering: {exc}"
        return "ok"

    def _require(self, pid: int) -> LabGuest:
        guest = self._guest(pid)
        if guest is None:
            raise ControlError(NOT_OURS)
        return guest

    def _event(self, kind: str, text: str, guest: LabGuest, data: dict[str, object]) -> None:
        self.on_event(
            Event(time=time.time(), kind=kind, text=text, data={"guest": guest.name, "pid": guest.pid, **data})
        )
