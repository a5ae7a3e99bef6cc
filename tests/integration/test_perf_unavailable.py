"""perf, tracefs and pagemap as an unprivileged user (real kernel): statuses say why, nothing raises.

A forked child drops to uid 65534 after the imports (as tests/tui/test_modes.py does) and reports back as JSON.
"""

from __future__ import annotations

import mmap
import os

import pytest

from ksmtop.collect.faults import ProcessFaults
from ksmtop.collect.ksmtrace import KsmTracer
from ksmtop.collect.pagemap import sharing
from tests.support.nobody import run_as_nobody


def _as_nobody() -> dict:
    def observe() -> dict:
        seen: dict = {}
        with KsmTracer() as tracer:
            seen["tracer"] = [tracer.status.available, tracer.status.reason, tracer.read() is None]
        with ProcessFaults(1) as init:
            seen["init"] = [init.read() is None, init.status.reason]
        with ProcessFaults(os.getpid()) as own:
            data = mmap.mmap(-1, 8 * 1024 * 1024)
            data.madvise(mmap.MADV_NOHUGEPAGE)  # one fault per 4 KiB page, not per 2 MiB
            counts = own.read()
            for offset in range(0, len(data), 4096):
                data[offset] = 1
            after = own.read()
            data.close()
            seen["own"] = [counts is not None, own.user_only, own.status.reason]
            seen["own_faults"] = None if after is None or counts is None else after.minor - counts.minor
        report = sharing([os.getpid()])
        seen["sharing"] = report.error
        return seen

    return run_as_nobody(observe)


def test_without_root_every_perf_part_says_why():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    seen = _as_nobody()
    assert "error" not in seen, seen["error"]
    available, reason, no_sample = seen["tracer"]
    assert not available and no_sample
    assert "root" in reason  # tracefs readable by root only, or the tracepoint ids are
    gone, why = seen["init"]
    assert gone and "not allowed" in why
    works, user_only, status = seen["own"]
    assert works and user_only and "user-mode faults only" in status
    assert seen["own_faults"] >= 2048  # 8 MiB touched page by page (in user mode)
    assert "root" in seen["sharing"] or "cannot read" in seen["sharing"]
