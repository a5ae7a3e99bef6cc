"""What can be done to a guest, in plain types: whether a guest can be controlled and why not, the errors a
control gives, the workloads of the study and a workload's state. No I/O, no UI: the controls themselves
(control.py, through lab guests' agents or libvirt) and the screen both speak these types.
"""

from __future__ import annotations

from dataclasses import dataclass

from ksmtop.safetext import safe


class ControlError(Exception):
    """A control action that failed; the message is one line, fit for the screen (made safe here: it quotes guest
    names and what libvirt and guest agents said)."""

    def __init__(self, message: object) -> None:
        super().__init__(safe(message))


class NeedsForce(ControlError):
    """A graceful stop did not stop the guest; a forced stop (with a confirm) is the next step."""


@dataclass(frozen=True, slots=True)
class Control:
    """Whether the screen can control a guest, and if not, why. ``kind``: 'lab' (ksmtop's own qemu) or 'domain'
    (through libvirt); ``running`` False for a shut-off domain (it can be started, not stopped)."""

    can_control: bool
    why: str = ""
    name: str = ""
    kind: str = ""
    running: bool = True


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    script: str
    description: str
    argument: str
    """What the one number means ("MiB", "seconds", "limit"), or "" when it takes none."""
    default: int | None = None


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("idle", "idle.sh", "do nothing for a while (baseline)", "seconds", 60),
        Workload("primes", "primes.sh", "CPU-bound prime search (little memory)", "limit", 20000),
        Workload("fill-random", "fill_random.sh", "fill guest memory with random data (never merges)", "MiB", 64),
        Workload("fill-same", "fill_same.sh", "fill guest memory with identical data (merges)", "MiB", 64),
        Workload("release", "release.sh", "drop the fill", ""),
    )
}
"""The study's workloads (guest_agents/ holds their scripts)."""


@dataclass(frozen=True, slots=True)
class WorkloadState:
    running: bool
    exitcode: int | None
    signal: int | None
    output_tail: str
    error_tail: str
    elapsed_s: float

    @property
    def succeeded(self) -> bool:
        return not self.running and self.exitcode == 0

    def describe(self) -> str:
        if self.running:
            return f"running for {self.elapsed_s:.0f} s"
        if self.signal is not None:
            return f"killed by signal {self.signal} after {self.elapsed_s:.1f} s"
        return f"exit code {self.exitcode} after {self.elapsed_s:.1f} s"


def workload_label(workload: Workload, argument: int | None) -> str:
    """'fill-same 64 MiB', 'primes 20000', 'release'."""
    unit = f" {workload.argument}" if workload.argument == "MiB" else ""
    return workload.name if argument is None else f"{workload.name} {argument}{unit}"
