"""The study's workloads, started in a guest through its qemu-guest-agent and followed from guest-exec-status.

The scripts live in guest_agents/. The lab image carries them; in any other guest (or when the image holds an
older version) the script is pushed with guest-file-write to /tmp first. They run as ``/bin/sh SCRIPT ARG``
through guest-exec: an argument list, never a shell string, and the only argument is a whole number.

guest-exec-status gives the output only once the process has exited, and forgets the process after reporting
that; a WorkloadRun keeps the final state so it can be polled again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ksmtop.collect.agent import AgentError, AgentTimeout, ExecStatus, GuestAgent
from ksmtop.guest_actions import WORKLOADS, Workload, WorkloadState, workload_label
from ksmtop.lab.paths import GUEST_AGENTS_IN_IMAGE, guest_agents_dir

PUSHED_PREFIX = "/tmp/ksmtop-"
OUTPUT_TAIL_BYTES = 4096


@dataclass(slots=True)
class WorkloadRun:
    """One workload started in a guest; ``poll`` updates ``state``."""

    workload: Workload
    argument: int | None
    guest_pid: int
    script_path: str
    started_at: float = field(default_factory=time.time)
    state: WorkloadState | None = None

    @property
    def label(self) -> str:
        return workload_label(self.workload, self.argument)

    def poll(self, agent: GuestAgent, timeout: float | None = None) -> WorkloadState:
        """The workload's state now (one guest-exec-status call while it runs; none once it has ended)."""
        if self.state is not None and not self.state.running:
            return self.state
        status = agent.exec_status(self.guest_pid, timeout)
        self.state = _state(status, time.time() - self.started_at)
        return self.state

    def wait(self, agent: GuestAgent, timeout: float, interval: float = 0.5) -> WorkloadState:
        """Poll until the workload ends; AgentError if it still runs after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.poll(agent)
            if not state.running:
                return state
            if time.monotonic() >= deadline:
                raise AgentError(f"workload {self.label} still running after {timeout:g} s")
            time.sleep(interval)


def start_workload(
    agent: GuestAgent, name: str, argument: int | None = None, timeout: float | None = None
) -> WorkloadRun:
    """Start workload ``name`` in the guest (pushing its script if the guest lacks it) and return the run."""
    workload = WORKLOADS.get(name)
    if workload is None:
        raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
    if argument is None:
        argument = workload.default
    if argument is not None and (not workload.argument or not 0 <= argument <= 10**9):
        raise ValueError(f"workload {name} takes {workload.argument or 'no argument'}, got {argument}")
    script_path = ensure_script(agent, workload, timeout)
    args = [script_path] + ([] if argument is None else [str(argument)])
    pid = agent.exec("/bin/sh", args, timeout=timeout)
    return WorkloadRun(workload, argument, pid, script_path)


def ensure_script(agent: GuestAgent, workload: Workload, timeout: float | None = None) -> str:
    """The guest path of the workload's script: the lab image's copy if identical, else a freshly pushed one."""
    content = (guest_agents_dir() / workload.script).read_bytes()
    in_image = f"{GUEST_AGENTS_IN_IMAGE}/{workload.script}"
    try:
        if agent.read_file(in_image, limit=len(content) + 1, timeout=timeout) == content:
            return in_image
    except AgentTimeout:
        raise
    except AgentError:  # missing in this guest: push it
        pass
    pushed = f"{PUSHED_PREFIX}{workload.script}"
    agent.write_file(pushed, content, timeout=timeout)
    return pushed


def _state(status: ExecStatus, elapsed: float) -> WorkloadState:
    return WorkloadState(
        running=not status.exited,
        exitcode=status.exitcode,
        signal=status.signal,
        output_tail=_tail(status.stdout),
        error_tail=_tail(status.stderr),
        elapsed_s=elapsed,
    )


def _tail(data: bytes) -> str:
    return data[-OUTPUT_TAIL_BYTES:].decode(errors="replace")
