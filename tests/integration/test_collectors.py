"""The collectors and sampler on the real kernel, against stand-in processes with mergeable memory.

Global KSM counters are shared with every other process on the host (and other test sessions), so host-wide
figures are checked as differences; per-process figures are checked exactly, with ksmd stopped (run=0) so they
cannot move between ksmtop's read and ours.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ksmtop.model import Snapshot
from ksmtop.sampler import Sampler
from tests.conftest import wait_for

MIB = 32
PAGE = os.sysconf("SC_PAGE_SIZE")
PAGES = MIB * 1024 * 1024 // PAGE

needs_ksm_stat = pytest.mark.skipif(
    not Path("/proc/self/ksm_stat").exists(), reason="kernel without /proc/PID/ksm_stat"
)


def ksm_value(name: str) -> int:
    return int((Path("/sys/kernel/mm/ksm") / name).read_text())


def merging_pages(pid: int) -> int:
    return int(Path(f"/proc/{pid}/ksm_merging_pages").read_text())


def ksm_stat_merging(pid: int) -> int:
    for line in Path(f"/proc/{pid}/ksm_stat").read_text().splitlines():
        if line.startswith("ksm_merging_pages "):
            return int(line.split()[1])
    raise AssertionError(f"no ksm_merging_pages line in /proc/{pid}/ksm_stat")


def others_merged(snapshot: Snapshot, ours: list[int]) -> int:
    return sum(g.ksm_merging_pages or 0 for g in snapshot.guests if g.pid not in ours)


def proc_state(pid: int) -> str:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3].decode()


@pytest.mark.ksm
@needs_ksm_stat
def test_snapshot_matches_kernel_per_process(ksm_guard, mergeable_processes):
    # While ksmd is stopped, processes that exited keep counting in pages_sharing until ksmd's cursor passes
    # their mm; two full scans before our stand-ins exist flush that, so the "before" saving is a real baseline.
    # ksmd only runs while some process has mergeable memory: a small stand-in keeps it scanning.
    mergeable_processes(mib=1, fill="random", name="ksmtop-flush")
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    scans = ksm_value("full_scans")
    wait_for(lambda: ksm_value("full_scans") >= scans + 2, timeout=60)
    ksm_guard.set(run=0)
    same = [mergeable_processes(mib=MIB, fill="same", name=f"ksmtop-same{i}") for i in range(3)]
    rand = mergeable_processes(mib=MIB, fill="random", name="ksmtop-random")
    ours = [p.pid for p in [*same, rand]]
    with Sampler(scope="ksm") as sampler:
        before = sampler.sample()
        assert {p for p in ours if before.guest(p)} == set(ours), "stand-ins not tracked in ksm scope"
        assert all(before.guest(p).ksm_merging_pages == 0 for p in ours)  # type: ignore[union-attr]

        ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        wait_for(lambda: all(merging_pages(p.pid) >= PAGES for p in same), timeout=60)
        ksm_guard.set(run=0)  # counters frozen from here on

        after = sampler.sample()

    kernel = {pid: (merging_pages(pid), ksm_stat_merging(pid)) for pid in ours}
    for pid in ours:
        guest = after.guest(pid)
        assert guest is not None, f"stand-in {pid} missing from the snapshot"
        assert guest.kind == "process" and guest.name.startswith("ksmtop-")
        # ksmtop == /proc/PID/ksm_merging_pages == /proc/PID/ksm_stat
        assert (guest.ksm_merging_pages, guest.ksm_merging_pages) == kernel[pid]
        assert guest.ksm_mergeable is True
        assert guest.faults_per_s is not None and guest.faults_per_s >= 0  # second sample: a rate
        assert guest.cpu_percent is not None
    for p in same:
        guest = after.guest(p.pid)
        assert guest is not None and guest.ksm_merging_pages == PAGES
        assert guest.ksm_rmap_items is not None and guest.ksm_rmap_items >= PAGES
        assert guest.merged_percent(after.host.page_size) == pytest.approx(100.0 * PAGES * PAGE / guest.rss_bytes)
    random_guest = after.guest(rand.pid)
    assert random_guest is not None and random_guest.ksm_merging_pages is not None
    assert random_guest.ksm_merging_pages <= 16  # random pages do not merge

    assert before.rates.saving_bytes is not None and after.rates.saving_bytes is not None
    # Three identical 32 MiB areas save at least two of them. Other processes (other test sessions) merge,
    # unmerge and exit meanwhile; a ksm-scope snapshot lists them all, so their change is taken out.
    rise_pages = (after.rates.saving_bytes - before.rates.saving_bytes) // after.host.page_size
    others = others_merged(after, ours) - others_merged(before, ours)
    assert rise_pages - others >= 2 * PAGES, (rise_pages, others)
    assert after.ksm.get("full_scans") > before.ksm.get("full_scans")  # type: ignore[operator]
    assert after.rates.full_scans_delta == after.ksm.get("full_scans") - before.ksm.get("full_scans")  # type: ignore[operator]
    assert after.host.ksmd_pid is not None
    assert before.host.ksmd_cpu_seconds is not None and after.host.ksmd_cpu_seconds is not None
    assert after.host.ksmd_cpu_seconds > before.host.ksmd_cpu_seconds
    assert after.host.ksmd_cpu_percent is not None and after.host.ksmd_cpu_percent > 0


@needs_ksm_stat
def test_qemu_scope_ignores_stand_ins(mergeable_processes):
    stand_in = mergeable_processes(mib=1, fill="same", name="ksmtop-notqemu")
    with Sampler(scope="qemu") as sampler:
        snapshot = sampler.sample()
        assert snapshot.guest(stand_in.pid) is None
        assert all(g.kind == "qemu" for g in snapshot.guests)
        sampler.set_scope("ksm")
        assert sampler.sample().guest(stand_in.pid) is not None  # the same process, once the view is widened


@needs_ksm_stat
def test_process_that_exits_between_samples_is_dropped(mergeable_processes):
    keep = mergeable_processes(mib=1, fill="same", name="ksmtop-keep")
    doomed = mergeable_processes(mib=1, fill="same", name="ksmtop-doomed")
    with Sampler(scope="ksm") as sampler:
        first = sampler.sample()
        assert first.guest(keep.pid) is not None and first.guest(doomed.pid) is not None

        doomed.kill()  # not reaped yet: a zombie still has a /proc entry
        wait_for(lambda: proc_state(doomed.pid) == "Z", timeout=10, interval=0.01)
        second = sampler.sample()
        assert second.guest(doomed.pid) is None
        assert second.guest(keep.pid) is not None

        doomed.wait(timeout=10)  # reaped: reads on the kept descriptors now fail with ESRCH
        third = sampler.sample()
        assert third.guest(doomed.pid) is None
        assert third.guest(keep.pid) is not None
        assert doomed.pid not in sampler.processes.tracked


@needs_ksm_stat
def test_reaped_between_discover_and_sample_is_dropped(mergeable_processes):
    from ksmtop.collect.procfs import ProcessTable

    keep = mergeable_processes(mib=1, fill="same", name="ksmtop-keep")
    doomed = mergeable_processes(mib=1, fill="same", name="ksmtop-doomed")
    with ProcessTable(scope="ksm") as table:
        table.discover()
        assert {keep.pid, doomed.pid} <= set(table.tracked)
        doomed.kill()
        doomed.wait(timeout=10)
        pids = [g.pid for g in table.sample()]  # no discover in between: the open fds answer ESRCH
    assert keep.pid in pids and doomed.pid not in pids


@pytest.mark.ksm
def test_snapshot_carries_tracepoint_rates_measured_scans_and_perf_faults(ksm_guard, mergeable_processes):
    """The perf figures reach the Snapshot (so the screen, recordings and replay all have them)."""
    procs = [mergeable_processes(mib=MIB, fill="numbered", name=f"ksmtop-perf{i}") for i in range(2)]
    with Sampler(scope="ksm") as sampler:
        assert sampler.perf is not None
        sampler.sample()
        ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        merged = wait_for(
            lambda: (s := sampler.sample()).rates.merges_per_s and s.rates.merges_per_s > 0 and s, timeout=60
        )
        assert merged.host.trace_status is None, merged.host.trace_status
        scans = wait_for(lambda: (s := sampler.sample()).rates.measured_full_scan_seconds and s, timeout=60)
        assert 0 < scans.rates.measured_full_scan_seconds < 60
        ksm_guard.set(run=0)
        sampler.sample()
        time.sleep(0.3)
        still = sampler.sample()
        assert still.rates.merges_per_s == 0  # flat with run=0
        mine = [still.guest(p.pid) for p in procs]
        assert all(g is not None and g.perf_faults_per_s is not None for g in mine)


@needs_ksm_stat
@pytest.mark.ksm
def test_compiled_and_python_readers_read_real_processes_alike(ksm_guard, mergeable_processes):
    """The compiled reader (procread.c) and the Python loop, on the real kernel: merged stand-ins read the same
    through both (ksmd stopped, so nothing moves between the two reads), and a process that exited but is not
    reaped yet (a zombie) is dropped by both."""
    from ksmtop.collect import procread
    from ksmtop.collect.procfs import ProcessTable

    if procread.lib is None:
        pytest.skip("the compiled reader is not built (tests/unit/test_procread.py says so)")
    procs = [mergeable_processes(mib=4, fill="same", name=f"ksmtop-cread{i}") for i in range(3)]
    ours = {p.pid for p in procs}
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    wait_for(lambda: all(merging_pages(pid) > 0 for pid in ours), timeout=60)
    ksm_guard.set(run=0)
    with ProcessTable(scope="ksm") as compiled, ProcessTable(scope="ksm", compiled=False) as python:
        compiled.discover()
        python.discover()
        by_c = [g for g in compiled.sample() if g.pid in ours]
        by_python = [g for g in python.sample() if g.pid in ours]
        assert compiled._reader is not None and python._reader is None  # each went its own way
        assert len(by_c) == 3 and all(g.ksm_merging_pages and g.ksm_mergeable is True for g in by_c)
        assert by_c == by_python
        zombie = procs[0].pid
        os.kill(zombie, 9)  # not waited for: a zombie until the fixture reaps it
        wait_for(lambda: Path(f"/proc/{zombie}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=10)
        by_c = [g for g in compiled.sample() if g.pid in ours]
        by_python = [g for g in python.sample() if g.pid in ours]
        assert sorted(g.pid for g in by_c) == sorted(ours - {zombie})
        assert by_c == by_python
        assert zombie not in compiled.tracked and zombie not in python.tracked
