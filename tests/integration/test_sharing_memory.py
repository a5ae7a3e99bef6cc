"""The sharing matrix beside a process with a huge untouched reservation (1 TiB PROT_NONE, MAP_NORESERVE, as JITs
and sanitizers make): its 2 GiB of pagemap is read in bounded chunks, so the computation's peak memory stays far
below 2 GiB, and the figures still equal the page tables' (smaps "KSM:")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ksmtop.collect.pagemap import process_areas
from tests.conftest import REPO, wait_for
from tests.support.mergeable import start_many, stop_all

pytestmark = pytest.mark.ksm
MIB = 16
RESERVE_GIB = 1024
PEAK_LIMIT_MIB = 400
"""Python, numpy and a few MiB of arrays; one read of the reservation's pagemap would be 2048 MiB."""

MEASURE = """
import json, resource, sys
from ksmtop.collect.pagemap import sharing
pids = [int(pid) for pid in sys.argv[1:]]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = sharing(pids, exact=True)
print(json.dumps({
    "error": report.error,
    "merged": {g.pid: g.merged_pages for g in report.guests},
    "pairs": [[a, b, n] for (a, b), n in report.pairs.items()],
    "before_kib": before,
    "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}))
"""


def smaps_ksm_pages(pid: int) -> int:
    """KSM pages mapped by ``pid``, summed from the "KSM:" lines of /proc/PID/smaps (the page tables)."""
    kib = sum(
        int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps").read_text().splitlines() if line[:4] == "KSM:"
    )
    return kib * 1024 // os.sysconf("SC_PAGE_SIZE")


def test_a_1_tib_reservation_costs_no_memory_and_changes_no_figure(ksm_guard):
    processes = start_many(
        3, MIB, lambda i: "numbered", "ksmreserve", lambda i: ["--reserve-gib", str(RESERVE_GIB)] if i == 0 else []
    )
    try:
        pids = [process.pid for process in processes]
        huge = [area for area in process_areas(pids[0]) if area.size >= RESERVE_GIB << 30]
        assert huge and huge[0].perms.startswith("---"), "the reservation is among the areas the matrix reads"
        pages = MIB * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
        ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        wait_for(lambda: all(smaps_ksm_pages(pid) >= pages * 0.9 for pid in pids), timeout=120, interval=0.5)
        ksm_guard.set(run=0)  # hold the page tables still while they are compared
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, *map(str, pids)], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        mapped = {str(pid): smaps_ksm_pages(pid) for pid in pids}
    finally:
        stop_all(processes)
    peak_mib = found["peak_kib"] / 1024
    print(f"sharing matrix beside a {RESERVE_GIB} GiB reservation: peak RSS {peak_mib:.0f} MiB")
    assert found["error"] is None
    assert peak_mib < PEAK_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
    assert found["merged"] == mapped
    pairs = {(a, b): n for a, b, n in found["pairs"]}
    for (a, b), shared in pairs.items():
        assert shared >= pages * 0.9, (a, b, shared)  # numbered pages pair up across the three processes
