"""Tunable writes on the real kernel: round trip, and each kind of refusal explained with the knob unchanged.

Every test changes knobs only through ksm_guard (or write_tunable under it), so all of them are put back.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from ksmtop.collect.ksm import write_tunable
from tests.conftest import KsmGuard, wait_for, write_knob

pytestmark = pytest.mark.ksm

KSM = Path("/sys/kernel/mm/ksm")
NOBODY = 65534


def sysfs(name: str) -> str:
    return (KSM / name).read_text().strip()


kernel_write = write_knob


@pytest.fixture
def scan_time_advisor(ksm_guard):
    """advisor_mode=scan-time with ksmd stopped; put back to none before ksm_guard restores the rest.

    Switching advisor_mode makes the kernel reset pages_to_scan (to advisor_min_pages_to_scan, or to 100 on the
    way back), and pages_to_scan cannot be written while the advisor is on, so the order matters.
    """
    ksm_guard.set(run=0, advisor_mode="scan-time")
    try:
        yield ksm_guard
    finally:
        ksm_guard.set(advisor_mode="none")


def test_round_trip_pages_to_scan(ksm_guard):
    old = int(sysfs("pages_to_scan"))
    new = old + 137
    result = write_tunable("pages_to_scan", str(new))
    assert sysfs("pages_to_scan") == str(new)  # straight from /sys
    assert (result.ok, result.old_value, result.new_value, result.errno) == (True, old, new, None)
    assert result.message == f"pages_to_scan: {old} → {new}"
    assert result.warning is None


def test_round_trip_choice(scan_time_advisor):
    result = write_tunable("advisor_mode", "none")
    assert sysfs("advisor_mode") == "[none] scan-time"
    assert (result.ok, result.old_value, result.new_value) == (True, "scan-time", "none")


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("pages_to_scan", "12a", "digits only"),
        ("pages_to_scan", "-1", "digits only"),
        ("pages_to_scan", "99999999999", "between 0 and 4294967295"),
        ("pages_to_scan", "١٢", "digits only"),
        ("sleep_millisecs", "+5", "digits only"),
        ("run", "3", "between 0 and 2"),
        ("max_page_sharing", "1", "between 2 and"),
        ("advisor_mode", "always", "one of: none, scan-time"),
    ],
)
def test_refused_by_validation(ksm_guard, name, text, words):
    before = sysfs(name)
    result = write_tunable(name, text)
    assert not result.ok and result.errno is None
    assert words in result.message
    assert sysfs(name) == before
    assert str(result.new_value) in before  # advisor_mode reads "[none] scan-time", the value is "none"


def test_kernel_also_refuses_max_page_sharing_1(ksm_guard):
    before = sysfs("max_page_sharing")
    with pytest.raises(OSError) as info:
        kernel_write("max_page_sharing", "1")  # validation mirrors the kernel: it says EINVAL too
    assert info.value.errno == errno.EINVAL
    assert sysfs("max_page_sharing") == before


def test_einval_pages_to_scan_under_advisor(scan_time_advisor):
    before = sysfs("pages_to_scan")
    result = write_tunable("pages_to_scan", str(int(before) + 11))
    assert (result.ok, result.errno) == (False, errno.EINVAL)
    assert "advisor_mode=none" in result.message and "EINVAL" in result.message
    assert sysfs("pages_to_scan") == before
    assert str(result.new_value) == before


def test_ebusy_max_page_sharing_while_merged(ksm_guard, mergeable_processes):
    stand_ins = [mergeable_processes(mib=4, fill="same", name=f"ksmtop-busy{i}") for i in range(2)]
    ksm_guard.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
    wait_for(
        lambda: (
            int(sysfs("pages_shared")) > 0
            and all(int(Path(f"/proc/{p.pid}/ksm_merging_pages").read_text()) > 0 for p in stand_ins)
        ),
        timeout=60,
    )
    ksm_guard.set(run=0)  # still merged: stopping ksmd does not unmerge
    before = sysfs("max_page_sharing")
    result = write_tunable("max_page_sharing", str(int(before) + 1))
    assert (result.ok, result.errno) == (False, errno.EBUSY)
    assert "run=2" in result.message and "run=1" in result.message
    assert sysfs("max_page_sharing") == before


def _write_as_nobody(name: str, value: str) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, try, report through the pipe, never return into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = write_tunable(name, value)
            report = {"ok": result.ok, "errno": result.errno, "message": result.message, "euid": os.geteuid()}
        except BaseException as exc:
            report = {"crash": repr(exc)}
            code = 1
        try:
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return json.loads(data)


def test_not_root_is_refused(ksm_guard):
    before = sysfs("pages_to_scan")
    report = _write_as_nobody("pages_to_scan", str(int(before) + 3))
    assert report["euid"] == NOBODY
    assert report["ok"] is False
    assert report["errno"] in (errno.EACCES, errno.EPERM)
    assert "needs root" in report["message"]
    assert sysfs("pages_to_scan") == before


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [("pages_to_scan", "0", "scans nothing"), ("sleep_millisecs", "600000", "sleeps 600 s")],
)
def test_accepted_with_warning(ksm_guard, name, value, words):
    result = write_tunable(name, value)
    assert result.ok and str(result.new_value) == value
    assert sysfs(name) == value
    assert result.warning is not None and words in result.warning


def test_guard_restores_pages_to_scan_after_advisor_change(ksm_guard):
    """Leaving scan-time resets pages_to_scan and pages_to_scan cannot be written while the advisor is on:
    the guard must restore advisor_mode first."""
    ksm_guard.set(run=0, pages_to_scan=1234)
    inner = KsmGuard()
    inner.set(advisor_mode="scan-time")
    inner.restore()
    assert sysfs("advisor_mode") == "[none] scan-time"
    assert sysfs("pages_to_scan") == "1234"


def test_the_sampler_s_open_files_see_a_knob_change_at_once(ksm_guard):
    from ksmtop.collect.ksm import KsmReader

    reader = KsmReader("/")
    try:
        old = reader.read().values["pages_to_scan"]
        new = 1234 if old != 1234 else 4321
        ksm_guard.set(pages_to_scan=new)
        assert reader.read().values["pages_to_scan"] == new == int(sysfs("pages_to_scan"))
    finally:
        reader.close()
