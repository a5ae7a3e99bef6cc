"""libvirt faults on a real libvirtd: stopped with SIGSTOP at quit time (the watcher and `ksmtop record` still end
in time, the recording complete) and a surprise exception inside the watcher's round (reported, then recovered).
libvirtd is always resumed with SIGCONT, even on failure."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("libvirt")

from ksmtop.collect.libvirt import LibvirtConnection
from ksmtop.collect.libvirt_watch import DomainWatcher
from ksmtop.recording import read_recording
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.guests


@contextmanager
def libvirtd_stopped() -> Iterator[None]:
    subprocess.run(["pkill", "-STOP", "-x", "libvirtd"], check=True)
    try:
        yield
    finally:
        subprocess.run(["pkill", "-CONT", "-x", "libvirtd"], check=True)


def connected_watcher() -> DomainWatcher:
    watcher = DomainWatcher(LibvirtConnection(), fault_counters=False)
    wait_for(lambda: watcher.latest(watcher.poke(), 5.0).connected, timeout=60, interval=0.2)
    return watcher


def test_close_returns_within_2_s_while_libvirtd_hangs(libvirtd):
    watcher = connected_watcher()
    with libvirtd_stopped():
        watcher.poke()  # the thread's next round asks libvirtd, which will not answer
        time.sleep(0.5)
        closer = threading.Thread(target=watcher.close, daemon=True)
        began = time.monotonic()
        closer.start()
        closer.join(timeout=10)  # the old close waited on the lock the hung call holds: until SIGCONT
        elapsed = time.monotonic() - began
        assert not closer.is_alive(), "close() is still waiting for libvirtd"
    assert elapsed < 2.0, f"close() took {elapsed:.2f} s"


def test_record_ends_and_writes_its_end_line_while_libvirtd_hangs(libvirtd, tmp_path):
    output = tmp_path / "hung.jsonl"
    count = 8
    argv = [sys.executable, "-m", "ksmtop", "--connect", "qemu:///system", "record", "-o", str(output)]
    process = subprocess.Popen(
        [*argv, "--interval", "0.5", "--count", str(count), "--no-fsync"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def samples_with_libvirt() -> bool:
            lines = output.read_text().splitlines() if output.exists() else []
            samples = [json.loads(line) for line in lines[1:] if '"type":"sample"' in line.replace(" ", "")]
            return any("connected" in str(sample.get("libvirt_status", "")) for sample in samples)

        wait_for(samples_with_libvirt, timeout=60, interval=0.2)
        with libvirtd_stopped():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail("ksmtop record did not end while libvirtd was stopped")
            ended = time.time()
    finally:
        if process.poll() is None:
            process.kill()
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    recording = read_recording(output)
    assert recording.complete and not recording.warnings, recording.warnings
    assert len(recording.snapshots) == count
    last = recording.snapshots[-1]
    assert ended - last.time < 4.0, f"record ended {ended - last.time:.1f} s after its last sample"
    assert "no answer" in last.libvirt_status or "connected" in last.libvirt_status


def test_the_watcher_reports_a_surprise_and_recovers(libvirtd, monkeypatch):
    connection = LibvirtConnection()
    real = connection.domain_stats
    calls: list[int] = []

    def surprise() -> dict:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected \x1b[31mfailure")
        return real()

    monkeypatch.setattr(connection, "domain_stats", surprise)
    watcher = DomainWatcher(connection, fault_counters=False)
    try:
        view = watcher.latest(watcher.poke(), 60.0)
        assert view.status == (
            "libvirt qemu:///system: unexpected error (RuntimeError: injected \\x1b[31mfailure); retrying"
        )
        assert not view.connected
        recovered = wait_for(lambda: (v := watcher.latest(watcher.poke(), 5.0)).connected and v, timeout=30)
        assert recovered.status.startswith("libvirt qemu:///system: connected")
        assert len(calls) >= 2
    finally:
        watcher.close()
