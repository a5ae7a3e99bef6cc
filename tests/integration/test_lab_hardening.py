"""A lab guest on a shared host: its directories 0700 and its QMP and agent sockets 0600 whatever the umask, and
workload scripts pushed into a fresh private directory in the guest (never through a link planted at a fixed
/tmp name), removed once the workload has ended."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from ksmtop.lab import Lab, LabGuest
from ksmtop.lab import workloads as workloads_module
from ksmtop.lab.workloads import start_workload

pytestmark = pytest.mark.guests


@pytest.fixture(scope="module")
def guest(lab: Lab) -> Iterator[LabGuest]:
    """One TCG lab guest started under umask 000, its agent answering."""
    old = os.umask(0)
    try:
        started = lab.start_guest("ksmtest-1", 256, accel="tcg", wait=False)
    finally:
        os.umask(old)
    lab.wait_ready([started])
    yield started


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_directories_are_0700_and_sockets_0600_whatever_the_umask(lab, guest):
    assert mode(lab.runtime) == 0o700
    assert mode(guest.directory) == 0o700
    for socket_path in (guest.agent_socket, guest.qmp_socket):
        info = os.lstat(socket_path)
        assert stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid()
        assert mode(socket_path) == 0o600, f"{socket_path}: {mode(socket_path):o}"


def sh(agent, script: str, *args: str) -> tuple[int, str]:
    status = agent.run("/bin/sh", ["-c", script, "sh", *args], timeout=20)
    return status.exitcode, status.stdout.decode().strip()


def test_a_pushed_script_goes_to_a_fresh_private_directory_and_is_removed_after(guest, monkeypatch):
    monkeypatch.setattr(workloads_module, "GUEST_AGENTS_IN_IMAGE", "/nonexistent")  # the guest lacks the script
    with guest.agent(timeout=10) as agent:
        # another user of the guest plants links at the fixed names the old code wrote to
        assert sh(agent, "echo keep > /root/victim; ln -sf /root/victim /tmp/ksmtop-idle.sh")[0] == 0
        first = start_workload(agent, "idle", 3, timeout=10)
        second = start_workload(agent, "idle", 3, timeout=10)
        directories = [run.private_dir for run in (first, second)]
        assert directories[0] != directories[1]
        for run, directory in zip((first, second), directories, strict=True):
            assert directory is not None and directory.startswith("/tmp/ksmtop-workload.")
            assert run.script_path == f"{directory}/idle.sh"
            assert sh(agent, 'stat -c "%a %u" "$1"', directory) == (0, "700 0")
        for run in (first, second):
            state = run.wait(agent, timeout=60)
            assert state.succeeded and "idle: done" in state.output_tail
        for directory in directories:
            assert sh(agent, 'test -e "$1"', directory)[0] == 1, f"{directory} was left behind"
        assert sh(agent, "cat /root/victim") == (0, "keep")
