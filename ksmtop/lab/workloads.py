"""The study's workloads, started in a guest through its qemu-guest-agent and followed from guest-exec-status.

The scripts live in guest_agents/. The lab image carries them; in any other guest (or when the image holds an
older version) the script is pushed with guest-file-write into a fresh private directory (``mktemp -d`` under the
guest's /tmp, mode 0700), never to a fixed name another user of the guest could plant a link at; the directory is
removed once the workload has ended. They run as ``/bin/sh SCRIPT ARG`` through guest-exec: an argument list,
never a shell string, and the only argument is a whole number. Output read back is made safe line by line.

guest-exec-status gives the output only once the process has exited, and forgets the process after reporting
that; a WorkloadRun keeps the final state so it can be polled again.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ksmtop.collect.agent import AgentError, AgentTimeout, ExecStatus, GuestAgent
from ksmtop.guest_actions import WORKLOADS, Workload, WorkloadState, workload_label
from ksmtop.lab.paths import GUEST_AGENTS_IN_IMAGE, guest_agents_dir
from ksmtop.safetext import safe

PUSHED_PREFIX = "/tmp/ksmtop-workload."
MAKE_PRIVATE_DIR = ("-c", f"umask 077 && mktemp -d {PUSHED_PREFIX}XXXXXXXX")
"""sh arguments that create the private directory in the guest (constant: no data reaches the shell)."""
REMOVE_DIR = ("-c", 'rm -rf -- "$1"', "sh")
"""sh arguments that remove it; the directory is the positional argument $1, never part of the command."""
_PRIVATE_DIR = re.compile(re.escape(PUSHED_PREFIX) + r"[A-Za-z0-9]{6,}")
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
    private_dir: str | None = None
    """The guest directory the script was pushed to (removed once the workload has ended), or None."""

    @property
    def label(self) -> str:
        return workload_label(self.workload, self.argument)

    def poll(self, agent: GuestAgent, timeout: float | None = None) -> WorkloadState:
        """The workload's state now (one guest-exec-status call while it runs; none once it has ended)."""
        if self.state is not None and not self.state.running:
            return self.state
        status = agent.exec_status(self.guest_pid, timeout)
        self.state = _state(status, time.time() - self.started_at)
        if not self.state.running:
            self.clean_up(agent, timeout)
        return self.state

    def clean_up(self, agent: GuestAgent, timeout: float | None = None) -> None:
        """Remove the pushed script's private directory in the guest (once; best effort)."""
        directory, self.private_dir = self.private_dir, None
        if directory is not None:
            remove_private_dir(agent, directory, timeout)

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
    script_path, private_dir = ensure_script(agent, workload, timeout)
    args = [script_path] + ([] if argument is None else [str(argument)])
    try:
        pid = agent.exec("/bin/sh", args, timeout=timeout)
    except AgentError:
        if private_dir is not None:
            remove_private_dir(agent, private_dir, timeout)
        raise
    return WorkloadRun(workload, argument, pid, script_path, private_dir=private_dir)


def ensure_script(agent: GuestAgent, workload: Workload, timeout: float | None = None) -> tuple[str, str | None]:
    """(guest path of the workload's script, private directory to remove afterwards or None): the lab image's
    copy if identical, else a copy pushed into a fresh private directory."""
    content = (guest_agents_dir() / workload.script).read_bytes()
    in_image = f"{GUEST_AGENTS_IN_IMAGE}/{workload.script}"
    try:
        if agent.read_file(in_image, limit=len(content) + 1, timeout=timeout) == content:
            return in_image, None
    except AgentTimeout:
        raise
    except AgentError:  # missing in this guest: push it
        pass
    directory = make_private_dir(agent, timeout)
    pushed = f"{directory}/{workload.script}"
    try:
        agent.write_file(pushed, content, timeout=timeout)
    except AgentError:
        remove_private_dir(agent, directory, timeout)
        raise
    return pushed, directory


def make_private_dir(agent: GuestAgent, timeout: float | None = None) -> str:
    """A fresh directory only root can enter, made by mktemp -d in the guest's /tmp; its path."""
    status = agent.run("/bin/sh", MAKE_PRIVATE_DIR, timeout=timeout or 10.0)
    directory = status.stdout.decode(errors="replace").strip()
    if status.exitcode != 0 or not _PRIVATE_DIR.fullmatch(directory):
        detail = safe(status.stderr.decode(errors="replace").strip() or directory or f"exit {status.exitcode}", 200)
        raise AgentError(f"could not make a private directory in the guest's /tmp: {detail}")
    return directory


def remove_private_dir(agent: GuestAgent, directory: str, timeout: float | None = None) -> None:
    """Remove a directory ``make_private_dir`` made (best effort: a guest that went away keeps nothing of ours)."""
    if not _PRIVATE_DIR.fullmatch(directory):
        return
    try:
        agent.run("/bin/sh", (*REMOVE_DIR, directory), timeout=timeout or 10.0)
    except AgentError:
        pass


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
    """The end of a workload's output, each line made safe (the guest may print anything)."""
    text = data[-OUTPUT_TAIL_BYTES:].decode(errors="replace")
    return "\n".join(safe(line, OUTPUT_TAIL_BYTES) for line in text.split("\n"))
