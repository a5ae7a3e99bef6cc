"""A synthetic but realistic session for size benchmarks and tests: N guests converging under KSM.

Counters move like they do on a host (CPU time in clock ticks, faults, merged pages rising to a plateau with
noise, PSS refreshed every few seconds), and rates are derived from them as the sampler would.
"""

from __future__ import annotations

import dataclasses
import math
import random

from ksmtop.model import Event, GuestSample, HostSample, KsmState, Snapshot
from ksmtop.rates import ksm_rates

PAGE = 4096
GIB = 1024**3


def synthetic_session(guests: int = 10, samples: int = 1000, seed: int = 0, interval: float = 1.0) -> list[Snapshot]:
    rng = random.Random(seed)
    start = 1_780_000_000.0
    sizes = [rng.choice((1, 2, 4)) * GIB for _ in range(guests)]
    cpu = [0.0] * guests
    minor = [rng.randrange(10**5, 10**6) for _ in range(guests)]
    pss = [0] * guests
    pss_at = [0.0] * guests
    full_scans, scanned, cow = 0, 0, 0
    ksmd_cpu = 0.0
    snapshots: list[Snapshot] = []
    previous: Snapshot | None = None
    now = start
    for index in range(samples):
        step = interval + rng.uniform(-0.003, 0.003) if index else 0.0
        now += step
        progress = 1 / (1 + math.exp(-(index - samples * 0.3) / (samples * 0.05)))
        rows = []
        sharing = 0
        for g in range(guests):
            rss = int(sizes[g] * (0.6 + 0.01 * math.sin(index / 50 + g))) // PAGE * PAGE
            merged = int(rss / PAGE * 0.5 * progress) + rng.randrange(0, 64)
            sharing += merged
            cpu[g] += rng.randrange(0, 6) / 100
            minor[g] += rng.randrange(0, 400)
            if now - pss_at[g] >= 5 + g % 3:
                pss[g], pss_at[g] = rss - merged * PAGE // 2, now
            old = previous.guests[g] if previous else None
            row = GuestSample(
                pid=4000 + g,
                name=f"vm-{g:02d}",
                kind="qemu",
                start_ticks=123456 + g,
                rss_bytes=rss,
                anon_bytes=rss - 64 * 1024**2,
                shared_bytes=64 * 1024**2,
                ksm_merging_pages=merged,
                ksm_zero_pages=0,
                ksm_rmap_items=rss // PAGE,
                ksm_process_profit_bytes=merged * PAGE - rss // PAGE * 64,
                ksm_mergeable=True,
                ksm_merge_any=False,
                cpu_seconds=round(cpu[g], 2),
                minor_faults=minor[g],
                major_faults=3,
                pss_bytes=pss[g] or None,
                pss_age_s=round(now - pss_at[g], 1) if pss[g] else None,
            )
            if old is not None and step:
                row = dataclasses.replace(
                    row,
                    cpu_percent=100 * (row.cpu_seconds - old.cpu_seconds) / step,
                    faults_per_s=(row.minor_faults - old.minor_faults) / step,
                    merged_pages_per_s=(merged - (old.ksm_merging_pages or 0)) / step,
                )
            rows.append(row)
        full_scans += rng.random() < 0.1
        scanned += int(5000 * step)
        cow += rng.randrange(0, 3)
        ksmd_cpu += rng.randrange(0, 3) / 100
        values: dict[str, int | str] = {
            "run": 1,
            "pages_to_scan": 5000,
            "sleep_millisecs": 20,
            "pages_shared": sharing // 8,
            "pages_sharing": sharing,
            "pages_unshared": rng.randrange(1000, 2000),
            "pages_volatile": rng.randrange(0, 100),
            "pages_scanned": scanned,
            "full_scans": full_scans,
            "general_profit": sharing * PAGE - sum(r.ksm_rmap_items or 0 for r in rows) * 64,
            "ksm_zero_pages": 0,
            "advisor_mode": "none",
        }
        ksm = KsmState(True, values, {"advisor_mode": ("none", "scan-time")})
        used = sum(r.rss_bytes for r in rows) - sharing * PAGE
        host = HostSample(
            page_size=PAGE,
            clock_ticks=100,
            mem_total_bytes=64 * GIB,
            mem_available_bytes=64 * GIB - used - rng.randrange(0, 1 << 24) // PAGE * PAGE,
            mem_free_bytes=60 * GIB - used,
            anon_bytes=used,
            cow_ksm=cow,
            ksmd_pid=36,
            ksmd_cpu_seconds=round(ksmd_cpu, 2),
            ncpus=16,
        )
        if previous is not None:
            host = dataclasses.replace(
                host,
                ksmd_cpu_percent=100 * (host.ksmd_cpu_seconds - previous.host.ksmd_cpu_seconds) / step,
                cow_ksm_per_s=(cow - (previous.host.cow_ksm or 0)) / step,
            )
        events = ()
        if index == samples // 4:
            events = (Event(now - 0.5, "note", "switched KSM on"),)
        snapshot = Snapshot(
            time=now,
            interval_s=step or None,
            scope="qemu",
            host=host,
            ksm=ksm,
            rates=ksm_rates(ksm, host, previous.ksm if previous else None, step or None, rows),
            guests=tuple(rows),
            events=events,
        )
        snapshots.append(snapshot)
        previous = snapshot
    return snapshots
