"""ProcessTable, HostReader and Sampler on fixture trees: old kernels, no KSM, vanished PIDs, odd names, unreadable files."""

from __future__ import annotations

import shutil

import pytest

from ksmtop.collect import procread
from ksmtop.collect.host import HostReader
from ksmtop.collect.procfs import ProcessTable, read_pss, read_status_memory
from ksmtop.sampler import Sampler
from tests.fixtures.tree import FakeRoot, ksm_stat_text, stat_line

QEMU = "qemu-system-x86"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def reader(request, monkeypatch):
    """Every test here twice: through the compiled reader (procread.c) and through the Python loop alone."""
    if request.param == "compiled" and procread.lib is None:
        pytest.skip("the compiled reader is not built (test_procread.py says so)")
    if request.param == "python":
        monkeypatch.setattr(procread, "lib", None)
    return request.param


@pytest.fixture
def tree(tmp_path):
    return FakeRoot(tmp_path)


def sample_by_pid(table: ProcessTable) -> dict:
    table.discover()
    return {g.pid: g for g in table.sample()}


def test_qemu_guest_figures(tree):
    tree.add_process(
        100,
        QEMU,
        ["qemu-system-x86_64", "-name", "guest=web,debug-threads=on"],
        statm="90000 50000 2000 1 0 70000 0\n",
        ksm_stat=ksm_stat_text(merging=1200, zero=30, rmap=4000, profit=4_000_000),
        minflt=555,
        majflt=7,
        utime=250,
        stime=50,
        start_ticks=777,
    )
    with ProcessTable(root=tree.path, scope="qemu", page_size=4096, clock_ticks=100) as table:
        g = sample_by_pid(table)[100]
    assert (g.name, g.kind, g.start_ticks) == ("web", "qemu", 777)
    assert (g.rss_bytes, g.shared_bytes, g.anon_bytes) == (50000 * 4096, 2000 * 4096, 48000 * 4096)
    assert (g.ksm_merging_pages, g.ksm_zero_pages, g.ksm_rmap_items) == (1200, 30, 4000)
    assert (g.ksm_process_profit_bytes, g.ksm_mergeable, g.ksm_merge_any) == (4_000_000, True, False)
    assert (g.cpu_seconds, g.minor_faults, g.major_faults) == (3.0, 555, 7)
    assert g.merged_bytes(4096) == 1200 * 4096


@pytest.mark.parametrize(
    ("comm", "argv", "name"),
    [
        (QEMU, ["qemu-system-x86_64", "-name", "guest=a,,b,debug-threads=on"], "a,b"),
        (QEMU, ["qemu-system-x86_64", "-name", "plain"], "plain"),
        ("qemu-kvm", ["/usr/libexec/qemu-kvm", "-name", "guest=rhel,process=qemu:rhel"], "rhel"),
        (QEMU, ["qemu-system-x86_64", "-name", "guest="], "100"),
        (QEMU, ["qemu-system-x86_64", "-m", "512"], "100"),
    ],
)
def test_odd_name_forms(tree, comm, argv, name):
    tree.add_process(100, comm, argv)
    with ProcessTable(root=tree.path) as table:
        assert sample_by_pid(table)[100].name == name


def test_scopes(tree):
    tree.add_process(100, QEMU, ksm_stat=ksm_stat_text(mergeable=True))
    tree.add_process(101, "qemu-kvm", ksm_stat=ksm_stat_text(mergeable=False))  # qemu with mem-merge=off
    tree.add_process(200, "container", ksm_stat=ksm_stat_text(mergeable=True))
    tree.add_process(201, "unmerged-now", ksm_stat=ksm_stat_text(merging=3, mergeable=False))
    tree.add_process(300, "bash", ksm_stat=ksm_stat_text(mergeable=False))
    tree.add_process(301, "old-kernel-idle", ksm_stat=None, ksm_merging_pages="0\n")
    tree.add_process(302, "old-kernel-busy", ksm_stat=None, ksm_merging_pages="9\n")
    (tree.proc / "self").mkdir()  # non-numeric entries are ignored
    with ProcessTable(root=tree.path, scope="qemu") as table:
        assert sorted(sample_by_pid(table)) == [100, 101]
        table.set_scope("ksm")
        assert table.tracked == {}
        assert sorted(sample_by_pid(table)) == [100, 101, 200, 201, 302]
        assert sample_by_pid(table)[200].kind == "process"


def test_old_kernel_ksm_merging_pages_only(tree):
    tree.add_process(100, QEMU, ksm_stat=None, ksm_merging_pages="77\n")
    with ProcessTable(root=tree.path) as table:
        g = sample_by_pid(table)[100]
    assert g.ksm_merging_pages == 77
    assert (g.ksm_zero_pages, g.ksm_rmap_items, g.ksm_process_profit_bytes, g.ksm_mergeable) == (None,) * 4


def test_kernel_without_per_process_ksm_is_unknown(tree):
    tree.add_process(100, QEMU, ksm_stat=None)
    with ProcessTable(root=tree.path) as table:
        g = sample_by_pid(table)[100]
    assert g.ksm_merging_pages is None and g.merged_bytes(4096) is None and g.merged_percent(4096) is None
    assert g.rss_bytes > 0


def test_unreadable_ksm_stat_falls_back_then_unknown(tree):
    tree.add_process(100, QEMU, ksm_merging_pages="5\n")
    tree.make_unreadable(100, "ksm_stat")
    tree.add_process(101, QEMU)
    tree.make_unreadable(101, "ksm_stat")
    with ProcessTable(root=tree.path) as table:
        got = sample_by_pid(table)
    assert got[100].ksm_merging_pages == 5
    assert got[101].ksm_merging_pages is None


def test_unreadable_cmdline_names_by_pid(tree):
    tree.add_process(100, QEMU)
    tree.make_unreadable(100, "cmdline")
    with ProcessTable(root=tree.path) as table:
        assert sample_by_pid(table)[100].name == "100"


@pytest.mark.parametrize("name", ["stat", "statm"])
def test_unreadable_stat_files_skip_the_process(tree, name):
    tree.add_process(100, QEMU)
    tree.add_process(101, QEMU)
    tree.make_unreadable(100, name)
    with ProcessTable(root=tree.path) as table:
        assert sorted(sample_by_pid(table)) == [101]


def test_vanished_directory_is_forgotten(tree):
    tree.add_process(100, QEMU)
    tree.add_process(101, QEMU)
    with ProcessTable(root=tree.path) as table:
        assert sorted(sample_by_pid(table)) == [100, 101]
        shutil.rmtree(tree.proc / "100")
        assert sorted(sample_by_pid(table)) == [101]
        assert sorted(table.tracked) == [101]


@pytest.mark.parametrize("emptied", ["stat", "statm"])
def test_vanished_between_discover_and_sample(tree, emptied):
    # The real kernel answers ESRCH on the open fd once the process is reaped; a fixture file cannot, so an
    # emptied file stands for the failed read (tests/integration covers the real ESRCH).
    tree.add_process(100, QEMU)
    tree.add_process(101, QEMU)
    with ProcessTable(root=tree.path) as table:
        table.discover()
        tree.rewrite(100, emptied, "")
        assert [g.pid for g in table.sample()] == [101]
        assert 100 not in table.tracked


def test_zombie_is_dropped(tree):
    tree.add_process(100, QEMU, start_ticks=50)
    tree.add_process(101, QEMU, state="Z")  # already dead when first seen
    with ProcessTable(root=tree.path) as table:
        assert sorted(sample_by_pid(table)) == [100]
        tree.rewrite(100, "stat", stat_line(100, QEMU, state="Z", start_ticks=50))
        tree.rewrite(100, "statm", "0 0 0 0 0 0 0\n")
        tree.rewrite(100, "ksm_stat", "")
        assert sample_by_pid(table) == {}


def test_reused_pid_is_dropped(tree):
    tree.add_process(100, QEMU, start_ticks=1000)
    with ProcessTable(root=tree.path) as table:
        table.discover()
        assert [g.start_ticks for g in table.sample()] == [1000]
        tree.rewrite(100, "stat", stat_line(100, QEMU, start_ticks=2000))  # same PID, another process
        assert table.sample() == []
        assert table.tracked == {}


def test_sampled_values_follow_file_changes(tree):
    tree.add_process(100, QEMU, minflt=10, ksm_stat=ksm_stat_text(merging=1))
    with ProcessTable(root=tree.path) as table:
        assert sample_by_pid(table)[100].ksm_merging_pages == 1
        tree.rewrite(100, "ksm_stat", ksm_stat_text(merging=4321))
        tree.rewrite(100, "stat", stat_line(100, QEMU, minflt=99))
        g = table.sample()[0]
    assert (g.ksm_merging_pages, g.minor_faults) == (4321, 99)


def test_close_releases_descriptors(tree):
    tree.add_process(100, QEMU)
    table = ProcessTable(root=tree.path)
    table.discover()
    fds = [table.tracked[100].stat_fd, table.tracked[100].statm_fd, table.tracked[100].ksm_fd]
    table.close()
    for fd in fds:
        with pytest.raises(OSError):
            __import__("os").fstat(fd)


def test_read_pss_and_status(tree):
    base = tree.add_process(100, QEMU)
    (base / "smaps_rollup").write_text("Rss:  2048 kB\nPss:   1536 kB\n")
    (base / "status").write_text("Name:\tq\nVmRSS:\t  2048 kB\nRssAnon:\t 1024 kB\nRssFile:  x kB\nThreads: 4\n")
    assert read_pss(100, tree.path) == 1536 * 1024
    assert read_pss(999, tree.path) is None
    assert read_status_memory(100, tree.path) == {"VmRSS": 2048 * 1024, "RssAnon": 1024 * 1024}
    assert read_status_memory(999, tree.path) == {}


def test_host_reader_on_tree(tree):
    tree.add_process(2, "kthreadd")
    tree.add_process(57, "ksmd", utime=120, stime=30)
    with HostReader(root=tree.path, page_size=16384, clock_ticks=100) as reader:
        h = reader.sample()
    assert (h.page_size, h.mem_total_bytes, h.mem_available_bytes) == (16384, 16384000 * 1024, 12000000 * 1024)
    assert (h.anon_bytes, h.cow_ksm, h.ksmd_pid, h.ksmd_cpu_seconds) == (2000000 * 1024, 42, 57, 1.5)


def test_host_reader_without_ksmd_or_vmstat(tmp_path):
    tree = FakeRoot(tmp_path, ksm=None)
    (tree.proc / "vmstat").unlink()
    with HostReader(root=tree.path) as reader:
        h = reader.sample()
    assert (h.cow_ksm, h.ksmd_pid, h.ksmd_cpu_seconds) == (None, None, None)
    assert h.mem_total_bytes == 16384000 * 1024


def test_sampler_without_ksm_still_lists_guests(tmp_path):
    tree = FakeRoot(tmp_path, ksm=None)
    tree.add_process(100, QEMU, ["qemu-system-x86_64", "-name", "lonely"])
    with Sampler(root=tmp_path) as sampler:
        snap = sampler.sample()
    assert snap.ksm.available is False and "does not exist" in (snap.ksm.error or "")
    assert [g.name for g in snap.guests] == ["lonely"]
    assert snap.rates.saving_bytes is None


def test_sampler_rates_on_tree(tree):
    tree.add_process(57, "ksmd", utime=100, stime=0)
    tree.add_process(100, QEMU, minflt=1000, majflt=0, utime=0, stime=0, ksm_stat=ksm_stat_text(merging=10))
    with Sampler(root=tree.path) as sampler:
        first = sampler.sample()
        g0 = first.guest(100)
        assert g0 is not None and (g0.faults_per_s, g0.cpu_percent, first.interval_s) == (None, None, None)
        tree.rewrite(100, "stat", stat_line(100, QEMU, minflt=1300, majflt=20, utime=50, stime=0))
        tree.rewrite(100, "ksm_stat", ksm_stat_text(merging=110))
        tree.rewrite(57, "stat", stat_line(57, "ksmd", utime=150, stime=0))
        second = sampler.sample()
    interval = second.interval_s
    assert interval is not None and interval > 0
    g = second.guest(100)
    assert g is not None
    ticks = second.host.clock_ticks
    assert g.faults_per_s == pytest.approx(320 / interval)
    assert g.merged_pages_per_s == pytest.approx(100 / interval)
    assert g.cpu_percent == pytest.approx(100 * (50 / ticks) / interval)
    assert second.host.ksmd_cpu_percent == pytest.approx(100 * (50 / ticks) / interval)
    # fixture KSM: sharing 30 + zero 5 at the real page size, shared 10
    assert second.rates.saving_bytes == 35 * second.host.page_size
    assert second.rates.sharing_ratio == 3.0
    assert second.rates.full_scans_delta == 0
