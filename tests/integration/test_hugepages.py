"""Huge pages on real qemu guests (TCG): one whose RAM is on hugetlbfs, one whose RAM is preallocated anonymous
memory that the kernel backs with transparent huge pages.

The module reserves a hugetlbfs pool (/proc/sys/vm/nr_hugepages, global state) and mounts a hugetlbfs in a
temporary directory; the guests are stopped, the mount is unmounted and the pool put back as it was, even on
failure. Where the machine cannot reserve the pool, the module is skipped and says how many pages it got.
The THP guest starts inside its test, with the KSM lock held and KSM stopped: KSM is one per host, and another
checkout's test merging meanwhile would split its huge pages before they are counted.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksmtop.collect.ksm import read_ksm
from ksmtop.collect.smaps import read_smaps
from ksmtop.diagnose import diagnose
from ksmtop.lab import Lab, LabGuest
from ksmtop.lab.qemu import MemoryBackend
from ksmtop.live import LiveSource
from ksmtop.model import GuestSample
from ksmtop.sampler import Sampler
from ksmtop.tui.app import KsmTopApp
from ksmtop.tui.widgets.guests import GuestTable
from tests.conftest import wait_for
from tests.integration.conftest import _stop_everything, require_lab_tools
from tests.tui.conftest import wait_until, widget_text

pytestmark = [pytest.mark.guests]

MIB = 1024 * 1024
HUGETLB_MIB = 128
THP_MIB = 256
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
SIZE = (170, 50)


def meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return values


def ksm_stat(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/ksm_stat").read_text().splitlines()
    return {key.rstrip(":"): value for key, _, value in (line.partition(" ") for line in lines)}


@pytest.fixture(scope="module")
def huge_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabGuest]]:
    """The lab and its hugetlbfs-backed guest, agent answering."""
    if os.geteuid() != 0:
        pytest.skip("reserving huge pages and mounting hugetlbfs need root")
    require_lab_tools()
    page_kib = meminfo()["Hugepagesize"]
    needed = HUGETLB_MIB * 1024 // page_kib
    old = NR_HUGEPAGES.read_text().strip()
    mount_point = tmp_path_factory.mktemp("hugetlbfs")
    mounted = False
    lab = Lab(tmp_path_factory.mktemp("huge-lab"), prefix="ksmhuge")
    try:
        NR_HUGEPAGES.write_text(str(int(old) + needed))
        free = meminfo()["HugePages_Free"]
        print(f"\nhugetlbfs pool: asked for {needed} x {page_kib} KiB pages more, {free} free now")
        if free < needed:
            pytest.skip(f"this machine reserved only {free} of {needed} huge pages of {page_kib} KiB")
        subprocess.run(
            ["mount", "-t", "hugetlbfs", "-o", f"pagesize={page_kib}K", "ksmtop-test", str(mount_point)], check=True
        )
        mounted = True
        backend = MemoryBackend(mount_point)
        hugetlb = lab.start_guest("ksmhuge-tlb", HUGETLB_MIB, accel="tcg", wait=True, memory_backend=backend)
        yield lab, hugetlb
    finally:
        try:
            _stop_everything(lab)
        finally:
            if mounted:
                for _ in range(50):  # qemu's last pages go a moment after it exits
                    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
                        break
                    time.sleep(0.2)
            NR_HUGEPAGES.write_text(old)


def _guest(pid: int) -> GuestSample:
    """The guest as the sampler sees it (PSS and huge pages read: it is the selected one)."""
    with Sampler(perf=False) as sampler:
        sampler.selected_pid = pid
        guest = sampler.sample().guest(pid)
    assert guest is not None
    return guest


@pytest.mark.ksm
def test_hugetlbfs_ram_is_seen_and_never_merged_while_thp_ram_is_split_as_it_merges(huge_lab, ksm_guard):
    lab, hugetlb = huge_lab
    ksm_guard.set(run=0)
    thp = lab.start_guest("ksmhuge-thp", THP_MIB, accel="tcg", wait=True, memory_backend=MemoryBackend())

    seen = _guest(hugetlb.pid)
    assert seen.hugetlb_bytes == HUGETLB_MIB * MIB  # prealloc=on: every huge page mapped
    print(f"hugetlbfs guest: hugetlb {seen.hugetlb_bytes // MIB} MiB, RSS {seen.rss_bytes // MIB} MiB (leaves it out)")
    assert seen.rss_bytes < HUGETLB_MIB * MIB

    before = _guest(thp.pid)
    assert before.anon_huge_bytes is not None and before.hugetlb_bytes == 0
    print(f"THP guest before merging: AnonHugePages {before.anon_huge_bytes // MIB} MiB (RAM {THP_MIB} MiB)")
    assert before.anon_huge_bytes >= THP_MIB * MIB // 2  # preallocated RAM, madvised for huge pages by qemu

    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    wait_for(lambda: int(ksm_stat(thp.pid)["ksm_merging_pages"]) > 1000, timeout=120, interval=1.0)
    time.sleep(3)  # more full scans (each takes well under a second here)
    after = _guest(thp.pid)
    assert after.anon_huge_bytes is not None
    print(f"THP guest after merging {after.ksm_merging_pages} pages: AnonHugePages {after.anon_huge_bytes // MIB} MiB")
    assert after.anon_huge_bytes < before.anon_huge_bytes  # KSM split the huge pages it merged

    # ksmd scanned all along: nothing on hugetlbfs merged (qemu's other mergeable areas, its ROMs and video
    # memory, may merge a little: they are ordinary anonymous memory)
    areas = read_smaps(hugetlb.pid)
    assert areas is not None and areas.hugetlb_size_bytes == HUGETLB_MIB * MIB
    assert all(not area.ksm_bytes for area in areas.areas if area.hugetlb)
    elsewhere = int(ksm_stat(hugetlb.pid)["ksm_merging_pages"])
    print(f"hugetlbfs guest: 0 pages merged on hugetlbfs, {elsewhere} in qemu's other areas")
    assert elsewhere * os.sysconf("SC_PAGE_SIZE") < 32 * MIB
    verdict = diagnose(_guest(hugetlb.pid), read_ksm(), read_smaps(hugetlb.pid), os.sysconf("SC_PAGE_SIZE"), 5)
    assert verdict.reasons[0].code == "hugetlb", verdict.reasons
    print(f"diagnosis: {verdict.summary}")
    other = diagnose(after, read_ksm(), read_smaps(thp.pid), os.sysconf("SC_PAGE_SIZE"), 5)
    assert "hugetlb" not in [reason.code for reason in other.reasons]  # THP-backed RAM is KSM's to merge


@pytest.mark.ksm
async def test_details_and_diagnosis_of_a_real_hugetlbfs_guest(huge_lab, ksm_guard):
    _lab, hugetlb = huge_lab
    ksm_guard.set(run=1)
    app = KsmTopApp(LiveSource(), interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(GuestTable)
        await wait_until(pilot, lambda: str(hugetlb.pid) in [row.value for row in table.rows])
        table.focus()
        table.move_cursor(row=[row.value for row in table.rows].index(str(hugetlb.pid)))
        await wait_until(pilot, lambda: app.selected_pid == hugetlb.pid)
        await wait_until(pilot, lambda: hugetlb.pid in app.insight, timeout=30)
        diagnosis, _room = app.insight[hugetlb.pid]
        assert diagnosis.reasons[0].code == "hugetlb"
        # The diagnosis comes from the insight worker, the huge-page figures from the first sample after the
        # selection that reads the selected guest's smaps_rollup: either can be drawn first ("pending" meanwhile).
        huge_pages = re.compile(rf"Huge pages  THP [\d.]+ (B|KiB|MiB), hugetlbfs {HUGETLB_MIB} MiB")
        details = await wait_until(
            pilot,
            lambda: (
                "guest RAM is on hugetlbfs" in (text := widget_text(app.main.query_one("#details")))
                and huge_pages.search(text)
                and text
            ),
            timeout=30,
            explain=lambda: widget_text(app.main.query_one("#details")),
        )
        assert "KSM never scans hugetlbfs" in details
        enabled = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        assert f"Host THP    {enabled.split('[')[1].split(']')[0]}" in details
        print(f"\n{details}")
