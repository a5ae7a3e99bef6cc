"""Huge pages on fixture trees: AnonHugePages and hugetlbfs pages from smaps_rollup (read with PSS), the host's
THP settings, and the diagnosis of hugetlbfs-backed guest RAM. Real qemu guests backed by hugetlbfs and by THP
are in tests/integration/test_hugepages.py."""

from __future__ import annotations

import dataclasses

import pytest

from ksmtop.collect.host import HostReader, selected_choice
from ksmtop.collect.procfs import Rollup, read_rollup
from ksmtop.collect.smaps import parse_smaps
from ksmtop.diagnose import diagnose
from ksmtop.sampler import Sampler
from tests.fixtures.tree import FakeRoot
from tests.unit.test_diagnose import MIB, PAGE, RUNNING, area, guest

QEMU = "qemu-system-x86"
ROLLUP = """\
00400000-7ffd0000 ---p 00000000 00:00 0                          [rollup]
Rss:              266240 kB
Pss:              200000 kB
AnonHugePages:     61440 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:  262144 kB
Swap:                  0 kB
"""


@pytest.fixture
def tree(tmp_path):
    return FakeRoot(tmp_path)


def test_read_rollup_takes_pss_thp_and_hugetlb(tree):
    base = tree.add_process(100, QEMU)
    (base / "smaps_rollup").write_text(ROLLUP)
    assert read_rollup(100, tree.path) == Rollup(200000 * 1024, 61440 * 1024, 262144 * 1024)
    assert read_rollup(999, tree.path) is None


def test_an_older_kernels_rollup_says_unknown_not_zero(tree):
    base = tree.add_process(100, QEMU)
    (base / "smaps_rollup").write_text("Rss:  2048 kB\nPss:   1536 kB\n")
    assert read_rollup(100, tree.path) == Rollup(1536 * 1024, None, None)
    (base / "smaps_rollup").write_text("Rss:  2048 kB\n")
    assert read_rollup(100, tree.path) is None


def test_the_sampler_attaches_huge_pages_with_pss(tree):
    base = tree.add_process(100, QEMU, ["qemu-system-x86_64", "-name", "guest=big"])
    (base / "smaps_rollup").write_text(ROLLUP)
    with Sampler(root=tree.path) as sampler:
        sampler.selected_pid = 100
        guest = sampler.sample().guest(100)
    assert guest is not None
    assert (guest.pss_bytes, guest.anon_huge_bytes, guest.hugetlb_bytes) == (
        200000 * 1024,
        61440 * 1024,
        262144 * 1024,
    )


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] defer defer+madvise madvise never\n", "always"),
        ("always madvise never\n", None),
        ("", None),
        (None, None),
    ],
)
def test_selected_choice(text, choice):
    assert selected_choice(text) == choice


def test_host_reader_reads_the_thp_settings(tree):
    thp = tree.path / "sys/kernel/mm/transparent_hugepage"
    thp.mkdir(parents=True)
    (thp / "enabled").write_text("always [madvise] never\n")
    (thp / "defrag").write_text("always defer [defer+madvise] madvise never\n")
    with HostReader(root=tree.path) as reader:
        host = reader.sample()
        assert (host.thp_enabled, host.thp_defrag) == ("madvise", "defer+madvise")
        with open(thp / "defrag", "r+") as handle:  # rewritten in place, as sysfs regenerates it
            handle.write("[always] defer defer+madvise madvise never\n")
        assert reader.sample().thp_defrag == "always"


def test_a_host_without_thp_says_unknown(tree):
    with HostReader(root=tree.path) as reader:
        host = reader.sample()
    assert (host.thp_enabled, host.thp_defrag) == (None, None)


TCG_BUFFER = area(0x7E0000000000, 1024, perms="rwxp", flags="rd wr ex mr mw me ac", rss_mib=40)
HUGETLB_RAM = area(0x7F0000000000, 256, path="/run/hp/qemu_back_mem.pc.ram.x", flags="rd wr mr mw me de ht", rss_mib=0)
MERGEABLE_RAM = area(0x7F0000000000, 256, flags="rd wr mr mw me ac mg")


def test_hugetlbfs_ram_is_found_beside_a_larger_tcg_buffer():
    """Under TCG qemu's 1 GiB translation buffer is larger than a 256 MiB guest's RAM: the hugetlbfs area is
    still the guest's RAM, and the diagnosis says KSM cannot touch it."""
    smaps = parse_smaps(TCG_BUFFER + HUGETLB_RAM + area(0x5555000000, 4))
    assert smaps.largest is not None and not smaps.largest.hugetlb
    verdict = diagnose(guest(mergeable=True), RUNNING, smaps, PAGE, 5)
    assert verdict.reasons[0].code == "hugetlb"
    assert "hugetlbfs" in verdict.summary and "256 MiB" in verdict.summary and "cannot merge" in verdict.summary
    assert "/run/hp/qemu_back_mem" in verdict.summary


def test_a_small_hugetlbfs_area_beside_mergeable_ram_is_not_the_reason():
    small = area(0x7D0000000000, 2, path="/dev/hugepages/x", flags="rd wr mr mw me ht", rss_mib=0)
    smaps = parse_smaps(TCG_BUFFER + MERGEABLE_RAM + small)
    verdict = diagnose(guest(merged=256 * MIB // PAGE // 2, rmap=256 * MIB // PAGE), RUNNING, smaps, PAGE, 5)
    assert verdict.merging


def test_qemu_argv_puts_guest_ram_on_a_hugetlbfs_or_ram_backend(tmp_path):
    from ksmtop.lab.qemu import GuestFiles, MemoryBackend, qemu_argv

    files = GuestFiles(tmp_path / "g")
    plain = qemu_argv("lab-1", files, tmp_path / "k", tmp_path / "i", 128, "tcg")
    assert "-object" not in plain and plain[plain.index("-machine") + 1] == "pc,mem-merge=on"
    huge = qemu_argv("lab-1", files, tmp_path / "k", tmp_path / "i", 128, "tcg",
                     memory_backend=MemoryBackend(tmp_path / "hp,1"))  # fmt: skip
    assert huge[huge.index("-object") + 1] == (
        f"memory-backend-file,id=ram0,mem-path={tmp_path}/hp,,1,share=off,size=128M,prealloc=on"
    )
    assert huge[huge.index("-machine") + 1] == "pc,mem-merge=on,memory-backend=ram0"
    ram = qemu_argv("lab-1", files, tmp_path / "k", tmp_path / "i", 256, "tcg", memory_backend=MemoryBackend())
    assert ram[ram.index("-object") + 1] == "memory-backend-ram,id=ram0,size=256M,prealloc=on"


def test_capacity_counts_hugetlbfs_pages_rss_leaves_out():
    from ksmtop.diagnose import capacity
    from tests.unit.test_diagnose import HOST

    on_hugetlbfs = dataclasses.replace(guest(merged=0), rss_bytes=100 * MIB, hugetlb_bytes=156 * MIB)
    room = capacity(on_hugetlbfs, HOST)
    assert room is not None
    assert room.cost_without_ksm_bytes == room.cost_with_ksm_bytes == 256 * MIB
    assert room.fit_without_ksm == 2600 // 256
