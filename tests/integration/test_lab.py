"""The guest lab on real qemu guests: image build, boot, guest agent, workloads, QMP pause, and KSM on the guests.

Guests run under TCG (KVM cannot be relied on in CI) and are booted once for the module. The KSM test asserts on
the guests' own per-process counters, and on the host-wide saving only as a comparison between two of its own
measurements, each taken from a clean start (run=2) after 20 s of fast scanning.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from ksmtop.collect.agent import AgentTimeout
from ksmtop.lab import Lab, LabError, LabGuest, build_image, start_workload
from ksmtop.lab import workloads as workloads_module
from ksmtop.lab.accel import choose_accel
from ksmtop.lab.cpio import list_entries
from ksmtop.lab.paths import GUEST_AGENTS_IN_IMAGE
from tests.integration.conftest import require_lab_tools

pytestmark = pytest.mark.guests

KSM = Path("/sys/kernel/mm/ksm")
SCAN_SECONDS = 20
FILL_MIB = 64


def test_build_image_holds_the_guest_and_is_cached():
    require_lab_tools()
    first = build_image()
    again = build_image()
    assert again.image_id == first.image_id and not again.built
    assert again.seconds < 10
    assert first.kernel.stat().st_size > 1_000_000
    assert first.size_bytes < 40 * 2**20
    names = list_entries(gzip.decompress(first.initramfs.read_bytes()))
    for needed in ("init", "bin/busybox", "bin/sh", "sbin/shutdown", "usr/sbin/qemu-ga", "lib64/ld-linux-x86-64.so.2",
                   "lib/modules/virtio_console.ko", "lib/modules/virtio_pci.ko", "dev/console"):  # fmt: skip
        assert needed in names, f"initramfs lacks {needed}"
    for script in ("idle.sh", "primes.sh", "fill_random.sh", "fill_same.sh", "release.sh"):
        assert f"{GUEST_AGENTS_IN_IMAGE.strip('/')}/{script}" in names


def test_kvm_probe_decides_and_caches(tmp_path):
    require_lab_tools()
    image = build_image()
    started = time.monotonic()
    choice = choose_accel(tmp_path, image, "auto")
    probe_seconds = time.monotonic() - started
    assert choice.accel in ("kvm", "tcg") and choice.reason and not choice.cached
    assert probe_seconds < 40
    started = time.monotonic()
    again = choose_accel(tmp_path, image, "auto")
    assert again.cached and again.accel == choice.accel and time.monotonic() - started < 1
    assert not (tmp_path / ".kvm-probe").exists()


def test_guests_boot_with_names_and_agents(lab: Lab, lab_guests: list[LabGuest]):
    assert [g.name for g in lab_guests] == ["ksmtest-1", "ksmtest-2", "ksmtest-3"]
    statuses = lab.status()
    assert [(s.guest.name, s.run_state, s.agent) for s in statuses] == [(g.name, "running", "ok") for g in lab_guests]
    for guest in lab_guests:
        argv = Path(f"/proc/{guest.pid}/cmdline").read_bytes().split(b"\0")
        assert f"guest={guest.name}".encode() in argv and b"tcg" in argv
        assert lab.find_by_pid(guest.pid) == guest
        with guest.agent() as agent:
            agent.ping()
            result = agent.run("/bin/hostname", timeout=20)
        assert result.exitcode == 0 and result.stdout.decode().strip() == guest.name


def test_workload_runs_to_exit_code_zero_with_output(lab_guests: list[LabGuest]):
    with lab_guests[0].agent() as agent:
        run = start_workload(agent, "primes", 2000)
        assert run.script_path.startswith(GUEST_AGENTS_IN_IMAGE)
        state = run.wait(agent, timeout=60)
        assert state.succeeded, state
        assert "303 primes below 2000" in state.output_tail
        assert run.poll(agent) == state  # the agent forgot the PID; the run kept the end state


def test_workload_script_is_pushed_when_the_guest_lacks_it(lab_guests: list[LabGuest], monkeypatch):
    monkeypatch.setattr(workloads_module, "GUEST_AGENTS_IN_IMAGE", "/nonexistent")
    with lab_guests[1].agent() as agent:
        run = start_workload(agent, "idle", 0)
        assert run.script_path.startswith("/tmp/ksmtop-workload.") and run.script_path.endswith("/idle.sh")
        state = run.wait(agent, timeout=30)
    assert state.succeeded and "idle: done" in state.output_tail


def test_workload_failure_is_reported(lab_guests: list[LabGuest]):
    with lab_guests[2].agent() as agent:
        run = start_workload(agent, "fill-random", 100_000)  # far more than the guest's /dev/shm
        state = run.wait(agent, timeout=120)
    assert state.exitcode == 1 and "failed" in state.error_tail


def test_agent_call_to_paused_guest_times_out(lab_guests: list[LabGuest]):
    guest = lab_guests[0]
    with guest.qmp() as qmp, guest.agent() as agent:
        agent.ping()
        qmp.stop()
        try:
            assert qmp.query_status() == "paused"
            started = time.monotonic()
            with pytest.raises(AgentTimeout, match="did not answer guest-ping within 2 s"):
                agent.ping(timeout=2)
            assert 1.9 < time.monotonic() - started < 3.0
        finally:
            qmp.cont()
        assert qmp.query_status() == "running"
        agent.ping(timeout=10)  # a fresh sync skips the late answer to the timed-out ping


def test_paused_guest_stops_only_when_forced(lab: Lab, lab_guests: list[LabGuest]):
    guest = lab_guests[1]
    with guest.qmp() as qmp:
        qmp.stop()
    started = time.monotonic()
    with pytest.raises(LabError, match="did not stop: guest agent did not answer guest-ping"):
        lab.stop_guest(guest.name, timeout=5)
    assert time.monotonic() - started < 10 and guest.is_running()
    assert lab.stop_guest(guest.name, force=True).startswith("quit over QMP")
    assert not guest.is_running() and lab.find(guest.name) is None
    lab_guests[1] = lab.start_guest(guest.name, 256, accel="tcg", wait=True, timeout=90)


def test_stop_and_start_one_guest(lab: Lab, lab_guests: list[LabGuest]):
    guest = lab_guests[2]
    assert lab.stop_guest(guest.name) == "powered off by its agent"
    assert not guest.is_running() and lab.find(guest.name) is None
    assert lab.stop_guest(guest.name) == "not running"
    again = lab.start_guest(guest.name, 256, accel="tcg", wait=True, timeout=90)
    assert again.pid != guest.pid and again.is_running()
    lab_guests[2] = again


# -- KSM on the guests (issue 3's test) ----------------------------------------------------------------------


def ksm_stat_merging(pid: int) -> int:
    for line in Path(f"/proc/{pid}/ksm_stat").read_text().splitlines():
        if line.startswith("ksm_merging_pages "):
            return int(line.split()[1])
    raise AssertionError(f"no ksm_merging_pages in /proc/{pid}/ksm_stat")


def scan_from_scratch(ksm_guard, seconds: int = SCAN_SECONDS) -> None:
    """Unmerge everything, scan fast for ``seconds``, then stop ksmd so the counters hold still."""
    ksm_guard.set(run=2)
    if (KSM / "advisor_mode").exists():
        ksm_guard.set(advisor_mode="none")
    ksm_guard.set(pages_to_scan=2000, sleep_millisecs=20, run=1)
    time.sleep(seconds)
    ksm_guard.set(run=0)


def fill_all(guests: list[LabGuest], workload: str, mib: int) -> None:
    runs = []
    for guest in guests:
        with guest.agent() as agent:
            runs.append((guest, start_workload(agent, workload, mib)))
    for guest, run in runs:
        with guest.agent() as agent:
            state = run.wait(agent, timeout=120)
        assert state.succeeded, f"{guest.name}: {run.label}: {state.describe()} {state.error_tail}"


def sample_paused(guests: list[LabGuest]):
    """A qemu-scope snapshot taken with the guests' vCPUs paused (nothing can change under it), plus ksm_stat."""
    from ksmtop.sampler import Sampler

    for guest in guests:
        with guest.qmp() as qmp:
            qmp.stop()
    try:
        with Sampler(scope="qemu") as sampler:
            snapshot = sampler.sample()
        kernel = {guest.pid: ksm_stat_merging(guest.pid) for guest in guests}
    finally:
        for guest in guests:
            with guest.qmp() as qmp:
                qmp.cont()
    return snapshot, kernel


@pytest.mark.ksm
@pytest.mark.skipif(not Path("/proc/self/ksm_stat").exists(), reason="kernel without /proc/PID/ksm_stat")
def test_ksm_merges_lab_guests(lab: Lab, lab_guests: list[LabGuest], ksm_guard):
    page = os.sysconf("SC_PAGE_SIZE")
    guests = list(lab_guests)

    # Three idle guests: each one's merged pages in ksmtop's snapshot are > 0 and equal the kernel's ksm_stat.
    scan_from_scratch(ksm_guard)
    snapshot, kernel = sample_paused(guests)
    for guest in guests:
        sample = snapshot.guest(guest.pid)
        assert sample is not None, f"{guest.name} (PID {guest.pid}) missing from the snapshot"
        assert sample.name == guest.name
        assert sample.ksm_merging_pages is not None and sample.ksm_merging_pages > 0, sample
        assert sample.ksm_merging_pages == kernel[guest.pid], (guest.name, sample.ksm_merging_pages, kernel)
    saving_three = snapshot.rates.saving_bytes
    assert saving_three is not None and saving_three > 0

    # One guest: the host saves less.
    for guest in guests[1:]:
        lab.stop_guest(guest.name, force=True)
    scan_from_scratch(ksm_guard)
    snapshot, kernel = sample_paused(guests[:1])
    saving_one = snapshot.rates.saving_bytes
    assert saving_one is not None
    assert saving_three > saving_one, (saving_three // page, saving_one // page)

    # Three again; a same-data fill merges far more than a random fill of the same size.
    restarted = [lab.start_guest(guest.name, 256, accel="tcg") for guest in guests[1:]]
    lab.wait_ready(restarted, timeout=120)
    guests = [guests[0], *restarted]
    lab_guests[1:] = restarted
    fill_all(guests, "fill-random", FILL_MIB)
    scan_from_scratch(ksm_guard)
    after_random, kernel_random = sample_paused(guests)
    fill_all(guests, "fill-same", FILL_MIB)
    scan_from_scratch(ksm_guard)
    after_same, kernel_same = sample_paused(guests)
    merged_random = sum(after_random.guest(g.pid).ksm_merging_pages for g in guests)  # type: ignore[union-attr]
    merged_same = sum(after_same.guest(g.pid).ksm_merging_pages for g in guests)  # type: ignore[union-attr]
    assert merged_random == sum(kernel_random.values()) and merged_same == sum(kernel_same.values())
    fill_pages = FILL_MIB * 2**20 // page
    assert merged_same > merged_random + fill_pages, (merged_same, merged_random)
