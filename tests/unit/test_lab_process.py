"""Lab guest processes are signalled and waited for through psutil, only while they are the process that was
started (PID and start time): a reused PID is never signalled."""

from __future__ import annotations

import signal
import subprocess
import sys

from ksmtop.lab.qemu import guest_process, send_signal, start_ticks, wait_gone


def test_a_running_process_is_signalled_and_waited_for():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = start_ticks(child.pid)
        assert ticks is not None and guest_process(child.pid, ticks) is not None
        assert not wait_gone(child.pid, ticks, 0.2)  # still running: the wait times out
        send_signal(child.pid, ticks, signal.SIGTERM)
        assert wait_gone(child.pid, ticks, 10)
        assert child.poll() is not None  # reaped by the wait (it is our child)
        assert guest_process(child.pid, ticks) is None
    finally:
        child.kill()
        child.wait()


def test_a_pid_with_another_start_time_is_not_ours_and_is_left_alone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = start_ticks(child.pid)
        assert ticks is not None
        other = ticks - 1  # as if the PID had been reused since the guest was started
        assert guest_process(child.pid, other) is None
        send_signal(child.pid, other, signal.SIGKILL)
        assert wait_gone(child.pid, other, 0.1)  # "gone": that process is
        assert child.poll() is None  # and this one was not touched
    finally:
        child.kill()
        child.wait()
