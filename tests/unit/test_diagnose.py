"""Why a guest does not merge, in words, and capacity: table-driven over hand-made figures and smaps text."""

from __future__ import annotations

import dataclasses

import pytest

from ksmtop.collect.smaps import parse_smaps
from ksmtop.diagnose import SIDE_CHANNEL_WARNING, capacity, diagnose
from ksmtop.model import GuestSample, HostSample, KsmState

PAGE = 4096
MIB = 1024 * 1024


def area(
    start: int,
    mib: int,
    perms: str = "rw-p",
    path: str = "",
    flags: str = "rd wr mr mw me ac",
    rss_mib: int | None = None,
    ksm_kb: int = 0,
) -> str:
    rss = (mib if rss_mib is None else rss_mib) * 1024
    return (
        f"{start:x}-{start + mib * MIB:x} {perms} 00000000 00:00 0 {path}\n"
        f"Size: {mib * 1024} kB\nRss: {rss} kB\nAnonymous: {rss} kB\nKSM: {ksm_kb} kB\n"
        f"Private_Hugetlb: 0 kB\nVmFlags: {flags}\n"
    )


RAM = 0x7F0000000000
SMAPS = {
    "mergeable": area(RAM, 256, flags="rd wr mr mw me ac mg") + area(0x5555000000, 4),
    "nomerge": area(RAM, 256) + area(0x5555000000, 4),
    "memfd": area(RAM, 256, perms="rw-s", path="/memfd:pc.ram (deleted)", flags="rd wr sh mr mw me ms"),
    "hugetlb": area(RAM, 256, perms="rw-p", path="/dev/hugepages/qemu_back_mem", flags="rd wr mr mw me ht"),
}
RUNNING = KsmState(True, {"run": 1, "pages_to_scan": 100, "advisor_mode": "none"})


def guest(merged: int = 0, rmap: int = 0, mergeable: bool = True, kind: str = "qemu") -> GuestSample:
    return GuestSample(
        pid=42, name="g", kind=kind, start_ticks=1, rss_bytes=260 * MIB, anon_bytes=256 * MIB, shared_bytes=4 * MIB,
        ksm_merging_pages=merged, ksm_zero_pages=0, ksm_rmap_items=rmap, ksm_process_profit_bytes=0,
        ksm_mergeable=mergeable, ksm_merge_any=False, cpu_seconds=1.0, minor_faults=0, major_faults=0,
    )  # fmt: skip


PAGES = 256 * MIB // PAGE


@pytest.mark.parametrize(
    ("ksm", "smaps", "sample", "scans", "code", "words"),
    [
        (KsmState(False, error="no /sys/kernel/mm/ksm"), "mergeable", guest(), 5, "ksm-off", "not available"),
        (KsmState(True, {"run": 0}), "mergeable", guest(), 5, "ksm-off", "run=0"),
        (KsmState(True, {"run": 2}), "mergeable", guest(), 5, "ksm-off", "unmerging"),
        (KsmState(True, {"run": 1, "pages_to_scan": 0}), "mergeable", guest(), 5, "ksm-off", "pages_to_scan is 0"),
        (RUNNING, "nomerge", guest(mergeable=False), 5, "not-mergeable", "mem-merge=off"),
        (RUNNING, None, guest(mergeable=False), 5, "not-mergeable", "nosharepages"),
        (RUNNING, "memfd", guest(mergeable=False), 5, "shared-backing", "memfd"),
        (RUNNING, "hugetlb", guest(mergeable=False), 5, "hugetlb", "hugetlbfs"),
        (RUNNING, "mergeable", guest(rmap=PAGES // 3), 5, "not-scanned", "33%"),
        (RUNNING, "mergeable", guest(rmap=PAGES), 1, "not-scanned", "1 full scan "),
        (RUNNING, "mergeable", guest(merged=100, rmap=PAGES), 5, "content-differs", "differs"),
    ],
)
def test_reasons(ksm, smaps, sample, scans, code, words):
    verdict = diagnose(sample, ksm, parse_smaps(SMAPS[smaps]) if smaps else None, PAGE, scans)
    assert verdict.reasons[0].code == code
    assert words in verdict.summary
    assert not verdict.merging


def test_a_merging_guest_has_no_reason():
    verdict = diagnose(guest(merged=PAGES // 4, rmap=PAGES), RUNNING, parse_smaps(SMAPS["mergeable"]), PAGE, 5)
    assert verdict.merging
    assert verdict.merged_fraction == pytest.approx(0.25)
    assert verdict.summary.startswith("merging: 25%")


def test_process_wording_for_a_non_qemu_process():
    verdict = diagnose(guest(mergeable=False, kind="process"), RUNNING, None, PAGE)
    assert "MADV_MERGEABLE" in verdict.summary


def test_smaps_parse():
    summary = parse_smaps(SMAPS["mergeable"])
    assert summary.mergeable_rss_bytes == 256 * MIB and summary.largest.mergeable
    assert parse_smaps(SMAPS["memfd"]).shared_rss_bytes == 256 * MIB
    assert parse_smaps(SMAPS["hugetlb"]).hugetlb_size_bytes == 256 * MIB
    assert summary.ksm_bytes == 0


HOST = HostSample(
    page_size=PAGE, clock_ticks=100, mem_total_bytes=8192 * MIB, mem_available_bytes=2600 * MIB,
    mem_free_bytes=0, anon_bytes=0, cow_ksm=0, ksmd_pid=1, ksmd_cpu_seconds=0.0,
)  # fmt: skip


def test_capacity_with_and_without_ksm():
    result = capacity(guest(merged=130 * MIB // PAGE), HOST)
    assert result is not None
    assert result.cost_without_ksm_bytes == 260 * MIB and result.cost_with_ksm_bytes == 130 * MIB
    assert (result.fit_without_ksm, result.fit_with_ksm) == (10, 20)
    assert capacity(dataclasses.replace(guest(), rss_bytes=0), HOST) is None


def test_side_channel_warning_is_one_line():
    assert "\n" not in SIDE_CHANNEL_WARNING and "side channel" in SIDE_CHANNEL_WARNING
