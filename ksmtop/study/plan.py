"""The study's plan: which workloads, how many guests, how each measurement is taken. Pure data, no I/O.

For each workload and each guest count n in 1..N: n fresh guests are booted together and run the workload; they
are measured with KSM off (never merged, memory steady), then merged from run=1 until converged and measured with
KSM on, then stopped. Every count follows the same procedure, and its off and on windows are under a minute apart,
so other work on the host moves host memory little between them. Reusing guests across counts (off on the way up,
on on the way down) was tried first: it saved well under a minute per study here (guests boot together in 6-14 s)
but put the off and on windows of small counts minutes apart: everything on the host but the guests moved over
290 MiB in such a run, 100-160 MiB with fresh guests.
Unmerging does not give back the state before merging either, so every off window is on guests never merged.
"""

from __future__ import annotations

from dataclasses import dataclass

STUDY_WORKLOADS = ("idle", "primes", "fill-random", "fill-same")
"""The paper's four focuses, in its order: OS only, CPU-bound, memory filled with random and identical data."""

IDLE_SECONDS = 86_400
"""idle.sh runs this long: longer than any study, so the guest idles for the whole measurement."""
PRIMES_LIMIT = 10**9
"""primes.sh searches this far: it stays CPU-bound for the whole measurement (it ends when the guest stops)."""
FILL_RESERVE_MIB = 96
"""Guest memory a fill must leave free: the kernel, busybox, qemu-ga and the tmpfs reserve of the lab's /init."""

DEFAULT_GUESTS = 4
DEFAULT_FILL_MIB = 64
DEFAULT_PAGES_TO_SCAN = 5000
"""Fast enough under TCG that four 256 MiB guests converge in well under a minute (docs/study.md has figures)."""
DEFAULT_SLEEP_MS = 20
DEFAULT_WINDOW_S = 10.0
DEFAULT_CONVERGE_TIMEOUT_S = 300.0
DEFAULT_STEADY_TIMEOUT_S = 60.0
DEFAULT_INTERVAL_S = 1.0
DEFAULT_MERGE_INTERVAL_S = 0.25


class PlanError(ValueError):
    """A plan that cannot be run; the message is one line for the user."""


def parse_workloads(text: str) -> tuple[str, ...]:
    """'idle,fill-same' -> ('idle', 'fill-same'); unknown or repeated names are refused."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise PlanError("no workload given; choose from " + ", ".join(STUDY_WORKLOADS))
    unknown = [name for name in names if name not in STUDY_WORKLOADS]
    if unknown:
        raise PlanError(f"unknown workload {unknown[0]!r}; choose from {', '.join(STUDY_WORKLOADS)}")
    if len(set(names)) != len(names):
        raise PlanError("a workload is named twice")
    return names


@dataclass(frozen=True, slots=True)
class Step:
    """One guest count of one workload: the guests 1..guests run the workload; measured with KSM off, then on."""

    workload: str
    guests: int


@dataclass(frozen=True, slots=True)
class StudyPlan:
    workloads: tuple[str, ...] = STUDY_WORKLOADS
    guests: int = DEFAULT_GUESTS
    memory_mib: int = 256
    fill_mib: int = DEFAULT_FILL_MIB
    pages_to_scan: int = DEFAULT_PAGES_TO_SCAN
    sleep_millisecs: int = DEFAULT_SLEEP_MS
    interval_s: float = DEFAULT_INTERVAL_S
    merge_interval_s: float = DEFAULT_MERGE_INTERVAL_S
    """Seconds between samples while ksmd merges (merging converges in seconds: the curve needs more points)."""
    window_s: float = DEFAULT_WINDOW_S
    """Seconds of each measurement window (host memory median, page faults, ksmd CPU)."""
    converge_timeout_s: float = DEFAULT_CONVERGE_TIMEOUT_S
    steady_timeout_s: float = DEFAULT_STEADY_TIMEOUT_S
    accel: str = "auto"
    host_memory_bytes: int | None = None
    """A host size for the capacity model besides this host's (None: this host only)."""

    def check(self) -> StudyPlan:
        """The plan itself, or PlanError saying what is wrong with it."""
        parse_workloads(",".join(self.workloads))
        if not 1 <= self.guests <= 16:
            raise PlanError(f"--guests must be between 1 and 16, not {self.guests}")
        if not 128 <= self.memory_mib <= 65536:
            raise PlanError(f"--memory must be between 128 and 65536 MiB, not {self.memory_mib}")
        fills = [w for w in self.workloads if w.startswith("fill-")]
        if fills and not 1 <= self.fill_mib <= self.memory_mib - FILL_RESERVE_MIB:
            raise PlanError(
                f"--fill must be between 1 and {self.memory_mib - FILL_RESERVE_MIB} MiB for {self.memory_mib} MiB "
                f"guests (a guest keeps {FILL_RESERVE_MIB} MiB for itself), not {self.fill_mib}"
            )
        if not 1 <= self.pages_to_scan <= 1_000_000:
            raise PlanError(f"--pages-to-scan must be between 1 and 1000000, not {self.pages_to_scan}")
        if not 0 <= self.sleep_millisecs <= 10_000:
            raise PlanError(f"--sleep-millisecs must be between 0 and 10000, not {self.sleep_millisecs}")
        if not 0.1 <= self.interval_s <= 10:
            raise PlanError(f"--interval must be between 0.1 and 10 s, not {self.interval_s:g}")
        if not 0.05 <= self.merge_interval_s <= self.interval_s:
            raise PlanError(f"the merge interval must be between 0.05 s and --interval, not {self.merge_interval_s:g}")
        if not self.interval_s * 3 <= self.window_s <= 600:
            raise PlanError(f"--window must be between 3 intervals and 600 s, not {self.window_s:g}")
        if not 10 <= self.converge_timeout_s <= 7200:
            raise PlanError(f"--timeout must be between 10 and 7200 s, not {self.converge_timeout_s:g}")
        if self.accel not in ("auto", "kvm", "tcg"):
            raise PlanError(f"--accel must be auto, kvm or tcg, not {self.accel!r}")
        return self

    def steps(self) -> list[Step]:
        return [Step(workload, count) for workload in self.workloads for count in range(1, self.guests + 1)]

    def step_units(self, step: Step) -> int:
        """Work of one guest count for the progress bar: its boots and its merge grow with the guests."""
        return step.guests

    @property
    def total_units(self) -> int:
        return sum(self.step_units(step) for step in self.steps())

    def workload_argument(self, workload: str) -> int:
        """The one number the workload's script takes."""
        if workload == "idle":
            return IDLE_SECONDS
        if workload == "primes":
            return PRIMES_LIMIT
        return self.fill_mib

    def waits_for_workload(self, workload: str) -> bool:
        """Fills are waited for (the memory is measured once they have written it); idle and primes keep running."""
        return workload.startswith("fill-")
