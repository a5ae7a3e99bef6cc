"""The sharing matrix on a fixture tree: pagemaps and kpageflags written by hand, so every count is known."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from ksmtop.collect.pagemap import (
    KPF_KSM,
    KPF_ZERO_PAGE,
    PM_FILE,
    PM_MMAP_EXCLUSIVE,
    PM_PRESENT,
    candidate_areas,
    distinct,
    member,
    parse_maps,
    read_kpageflags,
    repeated,
    sharing,
)

PAGE = 4096
BASE = 0x7F0000000000
MAPS = (
    f"{BASE:x}-{BASE + 16 * PAGE:x} rw-p 00000000 00:00 0 \n"
    "555500000000-555500001000 r-xp 00000000 fe:00 1234 /usr/bin/qemu\n"
    "7ff000000000-7ff000001000 rw-s 00000000 00:01 99 /memfd:ram (deleted)\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n"
)
ZERO_PFN = 5000


def entry(pfn: int, exclusive: bool = True, file: bool = False) -> int:
    return PM_PRESENT | pfn | (PM_MMAP_EXCLUSIVE if exclusive else 0) | (PM_FILE if file else 0)


def write_process(root, pid: int, entries: list[int]) -> None:
    base = root / "proc" / str(pid)
    base.mkdir(parents=True)
    (base / "maps").write_text(MAPS)
    with open(base / "pagemap", "wb") as handle:
        handle.seek(BASE // PAGE * 8)
        handle.write(struct.pack(f"<{len(entries)}Q", *entries))


def write_kpageflags(root, flags: dict[int, int]) -> None:
    with open(root / "proc" / "kpageflags", "wb") as handle:
        for pfn, value in flags.items():
            handle.seek(pfn * 8)
            handle.write(struct.pack("<Q", value))


@pytest.fixture
def tree(tmp_path):
    ksm = 1 << KPF_KSM
    # Guest 10: KSM 100 (twice: internal), KSM 101, KSM 300 (mapped once on the host), zero page, own pages.
    write_process(
        tmp_path,
        10,
        [
            entry(100, False),
            entry(100, False),
            entry(101, False),
            entry(300),
            entry(ZERO_PFN, False),
            entry(1000),
            entry(1001),
        ],
    )
    # Guest 20: KSM 100 and 101 (shared with 10), a file page that must be ignored, own pages.
    write_process(tmp_path, 20, [entry(100, False), entry(101, False), entry(2000, file=True), entry(2001), 0])
    # Guest 30: nothing merged.
    write_process(tmp_path, 30, [entry(3000), entry(3001)])
    write_kpageflags(tmp_path, {100: ksm, 101: ksm, 300: ksm, ZERO_PFN: 1 << KPF_ZERO_PAGE, 1000: 0, 3001: 0})
    return tmp_path


def test_exact_report(tree):
    report = sharing([10, 20, 30], root=tree, exact=True)
    assert report.error is None
    guests = {g.pid: g for g in report.guests}
    assert guests[10].merged_pages == 4 and guests[10].distinct_merged == 3 and guests[10].internal_pages == 1
    assert guests[10].zero_pages == 1 and guests[10].present_pages == 7
    assert guests[20].merged_pages == 2 and guests[20].present_pages == 3  # file page and absent page left out
    assert guests[30].merged_pages == 0
    assert report.pairs == {(10, 20): 2, (10, 30): 0, (20, 30): 0}
    assert report.matrix() == [[1, 2, 0], [2, 0, 0], [0, 0, 0]]


def test_quick_report_skips_pages_mapped_once(tree):
    report = sharing([10, 20, 30], root=tree)
    guests = {g.pid: g for g in report.guests}
    assert guests[10].merged_pages == 3  # KSM page 300 is mapped once on the host: not looked at
    assert guests[10].unchecked_pages == 3
    assert report.pairs == sharing([10, 20, 30], root=tree, exact=True).pairs
    assert not report.exact and report.flags_read == 3  # 100, 101, the zero page


def test_vanished_process_and_hidden_pfns(tmp_path):
    write_process(tmp_path, 10, [PM_PRESENT, PM_PRESENT])  # PFN 0: what a reader without CAP_SYS_ADMIN sees
    write_kpageflags(tmp_path, {0: 0})
    report = sharing([10, 99], root=tmp_path)
    assert "needs root" in (report.error or "")
    assert sharing([99], root=tmp_path).error.startswith("cannot read the pages of process 99")


def test_unreadable_kpageflags_is_reported(tmp_path):
    write_process(tmp_path, 10, [entry(7)])
    assert sharing([10], root=tmp_path).error is None  # the quick report had no PFN to look up
    report = sharing([10], root=tmp_path, exact=True)
    assert "kpageflags" in (report.error or "")


def test_candidate_areas_from_maps():
    areas = candidate_areas(parse_maps(MAPS))
    assert [(a.start, a.size) for a in areas] == [(BASE, 16 * PAGE)]
    assert candidate_areas(parse_maps(MAPS), min_bytes=32 * PAGE) == []
    assert parse_maps("garbage\n") == []


def test_array_helpers():
    values = np.array([5, 3, 5, 9, 3, 3], dtype=np.uint64)
    assert distinct(values).tolist() == [3, 5, 9]
    assert repeated(np.sort(values)).tolist() == [3, 5]
    assert member(np.array([1, 3, 9, 10], dtype=np.uint64), np.array([3, 9], dtype=np.uint64)).tolist() == [
        False,
        True,
        True,
        False,
    ]


def test_kpageflags_reads_only_around_wanted_pfns(tmp_path):
    (tmp_path / "proc").mkdir()
    write_kpageflags(tmp_path, {1: 11, 40: 44, 100000: 77})
    flags = read_kpageflags(np.array([1, 40, 100000, 200000], dtype=np.uint64), tmp_path, threads=2)
    assert flags.tolist() == [11, 44, 77, 0]  # past the end of the file: 0
