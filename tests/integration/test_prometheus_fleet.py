"""A real Prometheus (Debian's) scrapes real ksmtop exporters: one on this host's /proc and /sys with stand-in
processes that KSM merges, others on fixture trees standing for other hosts. The values Prometheus holds are
checked against what /proc and /sys said; the fleet source, queried against that Prometheus, gives one row per
host, and a host whose exporter is killed turns stale with its last values, not zeros.

Heavy: run under the host-wide lock (flock /tmp/ksmtop-heavy.lock ...).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ksmtop.fleet.prom import PrometheusClient
from ksmtop.fleet.recording import read_fleet_recording
from ksmtop.fleet.source import FleetSource
from ksmtop.safetext import safe_name
from tests.conftest import REPO, wait_for
from tests.fixtures.tree import FakeRoot, ksm_stat_text
from tests.support.prometheus import Exporter, PrometheusServer, installed

PAGE = os.sysconf("SC_PAGE_SIZE")
STAND_IN_MIB = 16
NASTY = 'lab "one" back\\slash\nnew line \x1b]0;title\x07 \u202eevil'

pytestmark = pytest.mark.skipif(
    not installed() and not os.environ.get("CI"), reason="needs Debian's prometheus (scripts/setup)"
)


def fixture_host(path: Path, hostname: str, guests: dict[int, tuple[str, int]]) -> FakeRoot:
    """A fake /proc and /sys for another host: its hostname and qemu guests (pid -> (name, merged pages))."""
    tree = FakeRoot(path)
    (tree.proc / "sys/kernel").mkdir(parents=True)
    (tree.proc / "sys/kernel/hostname").write_text(hostname + "\n")
    for pid, (name, merged) in guests.items():
        argv = ["qemu-system-x86_64", "-name", f"guest={name}"]
        tree.add_process(pid, "qemu-system-x86", argv, ksm_stat=ksm_stat_text(merging=merged, zero=1, profit=-100))
    return tree


def one(client: PrometheusClient, expr: str) -> float:
    samples = client.query(expr)
    assert len(samples) == 1, f"{expr}: {samples}"
    return samples[0].value


def read_int(path: str) -> int:
    with open(path) as handle:
        return int(handle.read().split()[0])


def ksmd_cpu_seconds() -> float:
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip() == "ksmd":
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    raise AssertionError("no ksmd thread")


def test_prometheus_holds_what_proc_and_sys_said_and_the_fleet_has_one_row_per_host(
    tmp_path, ksm_guard, mergeable_processes
):
    ksm_guard.set(run=1, sleep_millisecs=10, pages_to_scan=5000)
    stand_ins = [mergeable_processes(mib=STAND_IN_MIB, fill="same", name=f"ksmexp{i}") for i in range(3)]
    pages = STAND_IN_MIB * 2**20 // PAGE

    def converged() -> bool:
        return all(read_int(f"/proc/{p.pid}/ksm_merging_pages") >= 0.95 * pages for p in stand_ins)

    wait_for(converged, timeout=120, interval=0.5)
    host_b = fixture_host(tmp_path / "b", "host-b", {100: ("web-1", 100), 101: ("web-2", 50)})
    host_c = fixture_host(tmp_path / "c", "host-c", {200: ("db-1", 7)})
    with (
        Exporter(tmp_path, "--all", "--no-libvirt") as real,
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_b.path))) as b,
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_c.path))) as c,
        PrometheusServer(tmp_path, {"ksmtop": [real.address, b.address, c.address]}) as prometheus,
    ):
        prometheus.wait_for_targets(3)
        client = PrometheusClient(prometheus.url)
        cpu_before = ksmd_cpu_seconds()
        at = {"real": f'instance="{real.address}"', "b": f'instance="{b.address}"', "c": f'instance="{c.address}"'}
        # the knobs this test holds under the KSM lock: exact, once a sample after ksm_guard.set was scraped
        wait_for(lambda: client.query(f"ksmtop_ksm_pages_to_scan{{{at['real']}}} == 5000"), timeout=30)
        assert one(client, f"ksmtop_ksm_run{{{at['real']}}}") == 1
        assert one(client, f"ksmtop_ksm_sleep_seconds{{{at['real']}}}") == 0.010

        # per stand-in: merged bytes equal /proc/PID/ksm_merging_pages x page size (KSM moves: compare closely)
        for process in stand_ins:
            info = client.query(f'ksmtop_guest_info{{{at["real"]},pid="{process.pid}"}}')
            assert len(info) == 1 and info[0].labels["kind"] == "process"
            label = info[0].labels["guest"]
            assert label.startswith("ksmexp")
            exported = one(client, f"ksmtop_guest_merged_bytes{{{at['real']},guest={json.dumps(label)}}}")
            now = read_int(f"/proc/{process.pid}/ksm_merging_pages") * PAGE
            assert exported == pytest.approx(now, rel=0.02), label
            assert exported >= 0.95 * pages * PAGE
            rss = one(client, f"ksmtop_guest_rss_bytes{{{at['real']},guest={json.dumps(label)}}}")
            assert rss >= STAND_IN_MIB * 2**20  # RSS still counts the merged pages

        # host-wide figures of the real host: the kernel moves them, so within a tolerance; ksmd's CPU within bounds
        sys_ksm = "/sys/kernel/mm/ksm"
        sharing = one(client, f"ksmtop_ksm_pages_sharing_bytes{{{at['real']}}}")
        assert sharing == pytest.approx(read_int(f"{sys_ksm}/pages_sharing") * PAGE, rel=0.05)
        assert sharing >= 3 * 0.95 * pages * PAGE - 3 * PAGE  # our stand-ins alone share that much
        profit = one(client, f"ksmtop_ksm_general_profit_bytes{{{at['real']}}}")
        assert profit == pytest.approx(read_int(f"{sys_ksm}/general_profit"), rel=0.05)
        available = one(client, f"ksmtop_host_memory_available_bytes{{{at['real']}}}")
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        assert available == pytest.approx(int(meminfo["MemAvailable"].split()[0]) * 1024, rel=0.05)
        assert (
            one(client, f"ksmtop_host_memory_total_bytes{{{at['real']}}}") == int(meminfo["MemTotal"].split()[0]) * 1024
        )
        time.sleep(3)  # the next scrape holds a sample taken after cpu_before
        cpu = one(client, f"ksmtop_ksmd_cpu_seconds_total{{{at['real']}}}")
        assert cpu_before <= cpu <= ksmd_cpu_seconds()

        # the fixture hosts: exactly what their trees hold
        assert one(client, f"ksmtop_ksm_pages_sharing_bytes{{{at['b']}}}") == 30 * PAGE
        assert one(client, f"ksmtop_ksm_general_profit_bytes{{{at['b']}}}") == -4096  # negative, exported
        assert one(client, f'ksmtop_guest_merged_bytes{{{at["b"]},guest="web-1"}}') == 100 * PAGE
        assert one(client, f'ksmtop_guest_merged_bytes{{{at["c"]},guest="db-1"}}') == 7 * PAGE
        assert one(client, f'ksmtop_exporter_info{{{at["c"]},hostname="host-c"}}') == 1

        # the fleet: one row per exporter instance, values as Prometheus holds them
        source = FleetSource(prometheus.url, rate_window_s=10)
        look = source.sample()
        assert look.error is None
        rows = {row.hostname: row for row in look.hosts}
        assert set(rows) == {socket.gethostname(), "host-b", "host-c"}
        assert not any(row.stale for row in look.hosts) and all(row.up for row in look.hosts)
        hb = rows["host-b"]
        assert (hb.ksm_run, hb.ksm_on, hb.guests) == (1, True, 2)
        assert hb.saving_bytes == hb.unmerge_debt_bytes == (30 + 5) * PAGE
        assert (hb.general_profit_bytes, hb.sharing_ratio) == (-4096, 3.0)
        assert hb.mem_available_bytes == 12000000 * 1024 and hb.mem_total_bytes == 16384000 * 1024
        assert {(g.guest, g.pid, g.merged_bytes) for g in look.guests_of(hb.key)} == {
            ("web-1", 100, 100 * PAGE),
            ("web-2", 101, 50 * PAGE),
        }
        mine = rows[socket.gethostname()]
        assert mine.ksm_on and mine.guests >= 3 and mine.ksmd_cpu_percent is not None
        assert {p.pid for p in stand_ins} <= {g.pid for g in look.guests_of(mine.key)}
        assert mine.saving_bytes == pytest.approx(read_int(f"{sys_ksm}/pages_sharing") * PAGE, rel=0.05)
        assert set(look.host_series) == {row.key for row in look.hosts}
        assert look.host_series[hb.key]["saving_bytes"].values[-1] == 35 * PAGE
        # drilling into a host fetches its guests' sparklines
        source.select(mine.key)
        look = source.sample()
        labels = {g.guest for g in look.guests_of(mine.key) if g.pid in {p.pid for p in stand_ins}}
        assert labels <= set(look.guest_series)
        assert all(look.guest_series[label].values[-1] for label in labels)


def test_a_host_that_stops_answering_is_stale_with_its_last_values(tmp_path):
    host_b = fixture_host(tmp_path / "b", "host-b", {100: (NASTY, 100)})
    host_c = fixture_host(tmp_path / "c", "host-c", {200: ("db-1", 7), 201: ("db-2", 9)})
    with (
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_b.path))) as b,
        Exporter(tmp_path, "--no-libvirt", global_args=("--root", str(host_c.path))) as c,
        PrometheusServer(tmp_path, {"ksmtop": [b.address, c.address]}) as prometheus,
    ):
        prometheus.wait_for_targets(2)
        source = FleetSource(prometheus.url, rate_window_s=10)
        before = {row.hostname: row for row in source.sample().hosts}
        assert set(before) == {"host-b", "host-c"} and not any(row.stale for row in before.values())

        # a hostile guest name: Prometheus parsed the exposition and holds the name as ksmtop made it safe
        guest = PrometheusClient(prometheus.url).query(f'ksmtop_guest_info{{instance="{b.address}"}}')
        assert [g.labels["guest"] for g in guest] == [safe_name(NASTY)]
        assert [g.guest for g in source.sample().guests_of(before["host-b"].key)] == [safe_name(NASTY)]

        # record two looks through the command line, and read them back
        recording = tmp_path / "fleet.jsonl.gz"
        command = [sys.executable, "-m", "ksmtop", "fleet", "--prometheus", prometheus.url, "--batch", "--json"]
        command += ["-n", "2", "--interval", "0.5", "-o", str(recording)]
        printed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
        looks = read_fleet_recording(recording).snapshots
        assert [json.loads(line)["time"] for line in printed.splitlines()] == [look.time for look in looks]
        assert [len(look.hosts) for look in looks] == [2, 2]

        assert c.process is not None
        c.process.kill()  # as a crash would: no goodbye
        c.process.wait(timeout=10)
        killed_at = time.time()

        def c_is_stale():
            rows = {row.hostname: row for row in source.sample().hosts}
            return rows if rows["host-c"].stale else None

        rows = wait_for(c_is_stale, timeout=30, interval=0.5)
        stale, live = rows["host-c"], rows["host-b"]
        assert not live.stale and live.up
        assert stale.stale and not stale.up
        # the last values, not zeros: what the exporter served before it died
        for name in ("saving_bytes", "general_profit_bytes", "sharing_ratio", "guests", "ksm_run"):
            assert getattr(stale, name) == getattr(before["host-c"], name), name
        assert stale.saving_bytes == 35 * PAGE and stale.guests == 2
        assert stale.age_s is not None and stale.age_s >= time.time() - killed_at - 1
        look = source.sample()
        assert {(g.guest, g.merged_bytes) for g in look.guests_of(stale.key)} == {
            ("db-1", 7 * PAGE),
            ("db-2", 9 * PAGE),
        }

        # Prometheus itself gone: the look says why and keeps the last rows
        prometheus.stop()
        failed = source.sample()
        assert failed.error is not None and "cannot reach" in failed.error
        assert {row.key for row in failed.hosts} == {row.key for row in look.hosts}
