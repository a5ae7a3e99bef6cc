"""Fixtures for tests on real lab guests: one lab of three TCG guests per module, always stopped afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksmtop.lab import Lab, LabGuest
from ksmtop.lab.qemu import QEMU_BINARY, start_ticks
from tests.conftest import wait_for
from tests.support import libvirtd as libvirtd_support
from tests.support.libvirtd import Daemons

LAB_PREFIX = "ksmtest"
"""Test guests get their own names, so they never touch a user's lab-N guests."""


def require_lab_tools() -> None:
    """Skip (or fail, in CI) when qemu, qemu-ga, busybox or apt are missing."""
    missing = [
        tool
        for tool, present in (
            (QEMU_BINARY, shutil.which(QEMU_BINARY)),
            ("qemu-ga", Path("/usr/sbin/qemu-ga").exists() or shutil.which("qemu-ga")),
            ("busybox", shutil.which("busybox")),
            ("apt-get", shutil.which("apt-get")),
        )
        if not present
    ]
    if missing:
        message = f"guest lab needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A Lab in a private runtime directory; every guest it holds is stopped at the end, even on failure."""
    require_lab_tools()
    runtime = tmp_path_factory.mktemp("lab-runtime")
    lab = Lab(runtime, prefix=LAB_PREFIX)
    try:
        yield lab
    finally:
        _stop_everything(lab)


@pytest.fixture(scope="module")
def lab_guests(lab: Lab) -> list[LabGuest]:
    """Three idle guests under TCG with their agents answering (booted once per module)."""
    return lab.up(3, 256, accel="tcg")


def _stop_everything(lab: Lab) -> None:
    try:
        lab.down(timeout=10)
    finally:  # belt and braces: nothing a test started may outlive the session
        for state in lab.runtime.glob("*/state.json"):
            guest = LabGuest.from_json(json.loads(state.read_text()))
            if start_ticks(guest.pid) == guest.start_ticks:
                os.kill(guest.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[Daemons]:
    """libvirtd and virtlogd, started here when they are not running (no systemd); stopped only if started here."""
    if os.geteuid() != 0 or not libvirtd_support.installed():
        if os.environ.get("CI"):
            pytest.fail("libvirtd is not installed (libvirt-daemon-system) or not root")
        pytest.skip("needs root and libvirt-daemon-system")
    pytest.importorskip("libvirt")
    daemons = Daemons()
    daemons.start_missing()
    try:
        wait_connectable()
        yield daemons
    finally:
        daemons.stop_started()


def wait_connectable(uri: str = "qemu:///system", timeout: float = 60) -> None:
    from ksmtop.collect.libvirt import LibvirtConnection, LibvirtError

    def ok() -> bool:
        connection = LibvirtConnection(uri)
        try:
            connection.domains()
            return True
        except LibvirtError:
            return False
        finally:
            connection.close()

    wait_for(ok, timeout=timeout, interval=0.5)


@pytest.fixture(scope="module")
def connection(libvirtd: Daemons) -> Iterator[object]:
    """A LibvirtConnection to qemu:///system for one test module."""
    from ksmtop.collect.libvirt import LibvirtConnection

    with LibvirtConnection() as connection:
        yield connection
