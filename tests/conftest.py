"""Shared fixtures: a guard that restores every KSM knob, and stand-in processes with mergeable memory."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ksmtop.collect.ksm import ksm_dir
from ksmtop.study.knobs import KnobSnapshot

REPO = Path(__file__).resolve().parent.parent
KSM = ksm_dir("/")
KSM_LOCK = "/run/lock/ksmtop-ksm-tests.lock" if os.path.isdir("/run/lock") else "/tmp/ksmtop-ksm-tests.lock"


def write_knob(name: str, value: str) -> None:
    """A raw write to a KSM knob (the kernel's errno comes back as OSError)."""
    fd = os.open(KSM / name, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


class KsmGuard:
    """Remembers every writable KSM knob and puts it back, in an order the kernel accepts (the product's
    KnobSnapshot, which `ksmtop study` restores with too)."""

    def __init__(self) -> None:
        self.snapshot = KnobSnapshot.take("/")
        self.saved = self.snapshot.values

    def set(self, **values: int | str) -> None:
        for name, value in values.items():
            write_knob(name, str(value))

    def restore(self) -> None:
        self.snapshot.restore()


@pytest.fixture
def ksm_guard() -> Iterator[KsmGuard]:
    """Changes to KSM knobs made through the guard (or by the code under test) are undone, even on failure."""
    if os.geteuid() != 0 or not KSM.is_dir():
        pytest.skip("needs root and /sys/kernel/mm/ksm")
    # KSM is one per host: test runs that change it take turns (another checkout's suite may be running).
    with open(KSM_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        guard = KsmGuard()
        try:
            yield guard
        finally:
            guard.restore()


@pytest.fixture
def mergeable_processes() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start stand-in processes with mergeable memory; all are stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(mib: int = 16, fill: str = "same", name: str = "") -> subprocess.Popen:
        argv = [sys.executable, "-m", "tests.support.mergeable", "--mib", str(mib), "--fill", fill]
        if name:
            argv += ["--name", name]
        process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait(timeout=10)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
    """Poll until predicate() is truthy; returns its value or fails the test with the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    if not value:
        pytest.fail(f"condition not met within {timeout} s")
    return value


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for the test and unmounted after it, whatever happens (a real ENOSPC on demand)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "ksmtop-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
