"""One results row per (workload, guests, ksm): the keys of results.json and the columns of results.csv.

No I/O, no UI imports.
"""

from __future__ import annotations

from typing import Any

from ksmtop.study.measure import Window
from ksmtop.study.plan import Step

COLUMNS = (
    "workload", "guests", "ksm",
    "host_used_bytes", "saving_bytes", "other_used_bytes",
    "guests_rss_bytes", "guests_pss_bytes", "guests_merged_bytes",
    "per_guest_rss_bytes", "per_guest_pss_bytes", "per_guest_merged_bytes",
    "pages_sharing", "pages_shared", "ksm_zero_pages", "general_profit_bytes",
    "converged", "convergence_s", "merge_seconds", "convergence_state", "full_scans", "merge_ksmd_cpu_percent",
    "ksmd_cpu_percent", "fault_window_s", "faults_minor", "faults_major", "perf_faults_minor", "perf_faults_major",
    "faults_per_guest_per_s", "perf_faults_per_guest_per_s", "cow_ksm",
    "steady", "steady_s", "boot_s", "host_used_min_bytes", "host_used_max_bytes", "window_s", "samples",
    "foreign", "perf_status", "per_guest",
)  # fmt: skip
"""Every key of a row, in the order of results.csv."""


def _sum(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _mean(total: int | None, count: int) -> int | None:
    return None if total is None or count == 0 else round(total / count)


def _per_s(total: int | None, guests: int, seconds: float) -> float | None:
    if total is None or guests == 0 or seconds <= 0:
        return None
    return round(total / guests / seconds, 2)


def measurement_row(step: Step, ksm: str, window: Window, foreign: list[str], **extra: Any) -> dict[str, Any]:
    """The row of one window. ``saving_bytes`` is (pages_sharing + ksm_zero_pages) x page size with KSM on, and 0
    with KSM off (the counters read 0 then too: the study unmerged everything)."""
    last = window.last
    page = last.host.page_size
    sharing = last.ksm.get("pages_sharing") or 0
    zero = last.ksm.get("ksm_zero_pages") or 0
    guests = window.guests
    count = len(guests)
    rss = sum(g.rss_bytes for g in guests)
    pss = _sum([g.pss_bytes for g in guests])
    merged = sum(g.merged_pages for g in guests) * page
    minor = _sum([g.faults_minor for g in guests])
    major = _sum([g.faults_major for g in guests])
    perf_minor = _sum([g.perf_faults_minor for g in guests])
    perf_major = _sum([g.perf_faults_major for g in guests])
    row: dict[str, Any] = {
        "workload": step.workload,
        "guests": step.guests,
        "ksm": ksm,
        "host_used_bytes": window.host_used_bytes,
        "saving_bytes": (sharing + zero) * page if ksm == "on" else 0,
        "other_used_bytes": None if pss is None else window.host_used_bytes - pss,
        "guests_rss_bytes": rss,
        "guests_pss_bytes": pss,
        "guests_merged_bytes": merged,
        "per_guest_rss_bytes": _mean(rss, count),
        "per_guest_pss_bytes": _mean(pss, count),
        "per_guest_merged_bytes": _mean(merged, count),
        "pages_sharing": sharing,
        "pages_shared": last.ksm.get("pages_shared") or 0,
        "ksm_zero_pages": zero,
        "general_profit_bytes": last.ksm.get("general_profit"),
        "converged": None,
        "convergence_s": None,
        "merge_seconds": None,
        "convergence_state": None,
        "full_scans": None,
        "merge_ksmd_cpu_percent": None,
        "ksmd_cpu_percent": None if window.ksmd_cpu_percent is None else round(window.ksmd_cpu_percent, 1),
        "fault_window_s": round(window.fault_seconds, 2),
        "faults_minor": minor,
        "faults_major": major,
        "perf_faults_minor": perf_minor,
        "perf_faults_major": perf_major,
        "faults_per_guest_per_s": _per_s(
            None if minor is None or major is None else minor + major, count, window.fault_seconds
        ),
        "perf_faults_per_guest_per_s": _per_s(
            None if perf_minor is None or perf_major is None else perf_minor + perf_major, count, window.fault_seconds
        ),
        "cow_ksm": window.cow_ksm,
        "steady": None,
        "steady_s": None,
        "boot_s": None,
        "host_used_min_bytes": window.host_used_min_bytes,
        "host_used_max_bytes": window.host_used_max_bytes,
        "window_s": round(window.seconds, 2),
        "samples": window.samples,
        "foreign": foreign,
        "perf_status": window.perf_status,
        "per_guest": [
            {
                "name": g.name,
                "pid": g.pid,
                "rss_bytes": g.rss_bytes,
                "anon_bytes": g.anon_bytes,
                "pss_bytes": g.pss_bytes,
                "merged_bytes": g.merged_pages * page,
                "zero_pages": g.zero_pages,
                "profit_bytes": g.profit_bytes,
                "faults_minor": g.faults_minor,
                "faults_major": g.faults_major,
                "perf_faults_minor": g.perf_faults_minor,
                "perf_faults_major": g.perf_faults_major,
            }
            for g in guests
        ],
    }
    for key, value in extra.items():
        if key not in row:
            raise KeyError(f"{key} is not a results column")
        row[key] = round(value, 1) if isinstance(value, float) else value
    return row


def baseline_row(window: Window) -> dict[str, Any]:
    """Host memory with none of the study's guests (the model's zero point when only one count is measured)."""
    return {
        "host_used_bytes": window.host_used_bytes,
        "host_used_min_bytes": window.host_used_min_bytes,
        "host_used_max_bytes": window.host_used_max_bytes,
        "window_s": round(window.seconds, 2),
        "ksmd_cpu_percent": None if window.ksmd_cpu_percent is None else round(window.ksmd_cpu_percent, 1),
    }
