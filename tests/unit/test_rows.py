"""Guest rows: processes joined to libvirt domains, shut-off and remote domains listed, sorting and columns;
the remote host built from libvirt's answers; libvirt's fault rates."""

from __future__ import annotations

import dataclasses

from ksmtop.collect.libvirt_watch import LibvirtView
from ksmtop.model import DomainSample, Snapshot
from ksmtop.rates import ksm_rates
from ksmtop.remote import _host, _ksm, unavailable_remotely
from ksmtop.rows import find_row, guest_rows
from ksmtop.tui.columns import BY_KEY
from ksmtop.tui.view import sort_rows
from tests.unit.test_rates import guest, host, ksm


def domain(name: str, state: str = "running", pid: int | None = None, rss: int | None = None) -> DomainSample:
    return DomainSample(name, f"uuid-{name}", state, 2, 1 << 30, 1 << 29, True, pid=pid, rss_bytes=rss)


def snapshot(guests=(), domains=(), mode: str = "local") -> Snapshot:
    return Snapshot(
        time=0.0,
        interval_s=None,
        scope="qemu",
        host=host(),
        ksm=ksm(),
        rates=ksm_rates(ksm(), host(), None, None),
        guests=tuple(guests),
        domains=tuple(domains),
        mode=mode,
    )


def test_processes_join_their_domain_and_shut_off_domains_follow():
    shot = snapshot(
        guests=[guest(10, anon_bytes=100), guest(20, anon_bytes=200)],
        domains=[domain("web", pid=20), domain("db", "shut off"), domain("lost", pid=99)],
    )
    rows = guest_rows(shot)
    assert [(r.key, r.name, r.pid, r.state) for r in rows] == [
        ("10", "10", 10, None),  # a qemu process that is no domain
        ("20", "web", 20, "running"),  # joined by PID: the domain's name
        ("domain:uuid-db", "db", None, "shut off"),
        ("domain:uuid-lost", "lost", 99, "running"),  # running, but its process is not among the guests
    ]
    assert find_row(shot, "20").guest.pid == 20 and find_row(shot, "domain:uuid-db").guest is None
    assert find_row(shot, "gone") is None and find_row(shot, None) is None


def test_remote_rows_take_rss_from_libvirt_and_sort_with_the_unknown_last():
    shot = snapshot(domains=[domain("a", rss=300), domain("b", rss=100), domain("c", "shut off")], mode="remote")
    rows = sort_rows(guest_rows(shot), "rss_bytes", True, 4096)
    assert [r.name for r in rows] == ["a", "b", "c"]
    assert shot.total_guest_rss_bytes == 400
    assert [r.name for r in sort_rows(guest_rows(shot), "name", False, 4096, "B")] == ["b"]
    assert BY_KEY["ksm_merging_pages"].value(rows[0], 4096) is None  # not available remotely: empty, not 0
    assert BY_KEY["domain_state"].value(rows[2], 4096) == "shut off"
    assert BY_KEY["domain_vcpus"].value(rows[0], 4096) == 2


def test_a_remote_host_from_libvirts_answers():
    view = LibvirtView(
        connected=True,
        node_ksm={"pages_to_scan": 100, "sleep_millisecs": 20, "merge_across_nodes": 1, "pages_sharing": 30},
        node_memory={"total": 8 << 30, "free": 1 << 30, "buffers": 1 << 20, "cached": 1 << 29},
        node_cpus=8,
        page_size=16384,
    )
    remote = _host(view)
    assert (remote.mem_total_bytes, remote.mem_free_bytes, remote.ncpus, remote.page_size) == (
        8 << 30,
        1 << 30,
        8,
        16384,
    )
    assert remote.mem_available_bytes == (1 << 30) + (1 << 20) + (1 << 29)
    assert remote.anon_bytes is None and "not available remotely" in remote.trace_status
    state = _ksm(view)
    assert state.available and state.get("pages_sharing") == 30 and state.get("run") is None
    down = _ksm(LibvirtView(status="libvirt: cannot connect to qemu+ssh://h/system; retrying"))
    assert not down.available and "cannot connect" in down.error
    reasons = unavailable_remotely(["run", "use_zero_pages"])
    assert set(reasons) == {"run", "use_zero_pages"} and "pages_to_scan" in reasons["run"]


def test_libvirt_fault_rates_per_domain_instance():
    from ksmtop.collect.libvirt_watch import DomainWatcher

    watcher = DomainWatcher.__new__(DomainWatcher)  # the rate math only: no thread, no connection
    watcher._previous_faults = {}
    web = domain("web", pid=5)
    first = watcher._with_stats(web, {"minor_faults": 100, "major_faults": 1, "rss_bytes": 4096}, now=10.0)
    assert first.faults_per_s is None and first.rss_bytes == 4096
    second = watcher._with_stats(web, {"minor_faults": 300, "major_faults": 1}, now=12.0)
    assert second.faults_per_s == 100.0
    restarted = watcher._with_stats(dataclasses.replace(web, pid=6), {"minor_faults": 3, "major_faults": 0}, now=13.0)
    assert restarted.faults_per_s is None  # a new qemu process: no rate across the restart
    assert watcher._with_stats(web, {}, now=14.0) == web


def test_ssh_uris_never_prompt_on_the_screen():
    from ksmtop.collect.libvirt import is_remote, without_prompts

    assert without_prompts("qemu+ssh://root@kvm7/system") == "qemu+ssh://root@kvm7/system?no_tty=1"
    assert without_prompts("qemu+ssh://kvm7/system?keyfile=/k") == "qemu+ssh://kvm7/system?keyfile=/k&no_tty=1"
    assert without_prompts("qemu+libssh2://kvm7/system") == "qemu+libssh2://kvm7/system?no_tty=1"
    assert without_prompts("qemu+ssh://kvm7/system?no_tty=0") == "qemu+ssh://kvm7/system?no_tty=0"  # theirs
    assert without_prompts("qemu+tcp://kvm7/system") == "qemu+tcp://kvm7/system"
    assert without_prompts("qemu:///system") == "qemu:///system"
    assert is_remote("qemu+ssh://kvm7/system") and is_remote("qemu+tcp://127.0.0.1:16509/system")
    assert not is_remote("qemu:///system") and not is_remote("qemu+unix:///system")
