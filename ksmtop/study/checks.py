"""The paper's findings as checks on the study's rows: each held or not, with the numbers. Pure functions.

The thresholds are set here, before any run, and stated in the report:
- "merging grows with identical guests": the KSM saving rises from every guest count to the next, per workload;
- "a CPU-bound workload merges about as much as idle": the primes saving is within CPU_BOUND_TOLERANCE of the
  idle saving at every guest count;
- "identical-data fill merges more than random fill": the fill-same saving exceeds the fill-random saving at every
  guest count;
- "faults do not change with merging": per guest, the page-fault rate after merging is within FAULT_TOLERANCE of
  the rate before (or within FAULT_FLOOR_PER_S faults/s, for guests that barely fault), and no major faults
  appear. perf's counts are used when perf counted (the paper used perf), /proc's otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CPU_BOUND_TOLERANCE = 0.25
FAULT_TOLERANCE = 0.5
FAULT_FLOOR_PER_S = 5.0
MIB = 2**20


@dataclass(frozen=True, slots=True)
class Check:
    finding: str
    held: bool | None
    """None: not measured (the study did not run the workloads the check compares)."""
    numbers: str

    @property
    def verdict(self) -> str:
        return {True: "held", False: "not held", None: "not measured"}[self.held]

    def to_json(self) -> dict[str, Any]:
        return {"finding": self.finding, "held": self.held, "verdict": self.verdict, "numbers": self.numbers}


def _by_count(rows: Sequence[dict[str, Any]], workload: str, ksm: str, key: str) -> dict[int, Any]:
    return {r["guests"]: r[key] for r in rows if r["workload"] == workload and r["ksm"] == ksm}


def _mib(value: float) -> str:
    return f"{value / MIB:.0f}"


def _guests(n: int) -> str:
    return f"{n} guest{'' if n == 1 else 's'}"


def _rate(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def merging_grows(rows: Sequence[dict[str, Any]]) -> Check:
    finding = "Merging grows with the number of identical guests"
    parts, verdicts = [], []
    for workload in dict.fromkeys(r["workload"] for r in rows):
        saving = _by_count(rows, workload, "on", "saving_bytes")
        counts = sorted(saving)
        if len(counts) < 2:
            continue
        grows = all(saving[b] > saving[a] for a, b in itertools.pairwise(counts))
        verdicts.append(grows)
        parts.append(
            f"{workload}: {', '.join(_mib(saving[n]) for n in counts)} MiB saved with {counts[0]}..{counts[-1]} guests"
        )
    if not verdicts:
        return Check(finding, None, "needs two guest counts or more")
    return Check(finding, all(verdicts), "; ".join(parts))


def cpu_bound_like_idle(rows: Sequence[dict[str, Any]]) -> Check:
    finding = "A CPU-bound workload merges about as much as idle"
    idle = _by_count(rows, "idle", "on", "saving_bytes")
    primes = _by_count(rows, "primes", "on", "saving_bytes")
    counts = sorted(set(idle) & set(primes))
    if not counts:
        return Check(finding, None, "needs both idle and primes")
    ratios = {n: primes[n] / idle[n] if idle[n] else float("inf") for n in counts}
    held = all(abs(r - 1) <= CPU_BOUND_TOLERANCE for r in ratios.values())
    numbers = "; ".join(
        f"{_guests(n)}: primes {_mib(primes[n])} vs idle {_mib(idle[n])} MiB ({ratios[n]:.0%})" for n in counts
    )
    return Check(finding, held, f"{numbers} (held: within ±{CPU_BOUND_TOLERANCE:.0%} at every count)")


def same_beats_random(rows: Sequence[dict[str, Any]]) -> Check:
    finding = "Identical-data fill merges more than random fill"
    same = _by_count(rows, "fill-same", "on", "saving_bytes")
    random = _by_count(rows, "fill-random", "on", "saving_bytes")
    counts = sorted(set(same) & set(random))
    if not counts:
        return Check(finding, None, "needs both fill-same and fill-random")
    held = all(same[n] > random[n] for n in counts)
    numbers = "; ".join(
        f"{_guests(n)}: {_mib(same[n])} vs {_mib(random[n])} MiB (+{_mib(same[n] - random[n])})" for n in counts
    )
    return Check(finding, held, numbers)


def fault_rate(row: dict[str, Any]) -> tuple[float | None, str]:
    """Faults per guest per second of a row, perf's when counted, and which source it is."""
    if row.get("perf_faults_per_guest_per_s") is not None:
        return row["perf_faults_per_guest_per_s"], "perf"
    return row.get("faults_per_guest_per_s"), "/proc"


def faults_unchanged(rows: Sequence[dict[str, Any]]) -> Check:
    finding = "Page faults do not change with merging"
    parts, verdicts = [], []
    cow = 0
    for workload in dict.fromkeys(r["workload"] for r in rows):
        off = {r["guests"]: r for r in rows if r["workload"] == workload and r["ksm"] == "off"}
        on = {r["guests"]: r for r in rows if r["workload"] == workload and r["ksm"] == "on"}
        pairs = []
        for n in sorted(set(off) & set(on)):
            (before, source), (after, _) = fault_rate(off[n]), fault_rate(on[n])
            if before is None or after is None:
                continue
            close = abs(after - before) <= max(FAULT_TOLERANCE * before, FAULT_FLOOR_PER_S)
            major = (on[n].get("perf_faults_major") or on[n].get("faults_major") or 0) > (
                off[n].get("perf_faults_major") or off[n].get("faults_major") or 0
            )
            verdicts.append(close and not major)
            cow += on[n].get("cow_ksm") or 0
            flags = ("" if close else " (changed)") + (" +major" if major else "")
            pairs.append(f"{n}: {_rate(before)}→{_rate(after)}{flags}")
        if pairs:
            parts.append(f"{workload} ({source} faults/s per guest, before→after): {', '.join(pairs)}")
    if not verdicts:
        return Check(finding, None, "no fault counts")
    rule = f"held: within ±{FAULT_TOLERANCE:.0%} or {FAULT_FLOOR_PER_S:g}/s, no new major faults"
    cows = f"; after merging, {cow} COW breaks of merged pages (cow_ksm) in the windows" if cow else ""
    return Check(finding, all(verdicts), "; ".join(parts) + cows + f" ({rule})")


def paper_checks(rows: Sequence[dict[str, Any]]) -> list[Check]:
    return [merging_grows(rows), cpu_bound_like_idle(rows), same_beats_random(rows), faults_unchanged(rows)]
