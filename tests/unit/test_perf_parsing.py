"""The perf binding's layout and constants, tracefs discovery and format parsing, on fixture trees."""

from __future__ import annotations

import errno
import platform

import pytest

from ksmtop.collect import perf
from ksmtop.collect.ksmtrace import KsmTracer, field_offsets, tracepoint_ids

STOP_SCAN_FORMAT = """\
name: ksm_stop_scan
ID: 748
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int seq;\toffset:8;\tsize:4;\tsigned:1;
\tfield:u32 rmap_entries;\toffset:12;\tsize:4;\tsigned:0;
"""


def test_attr_layout_is_the_kernels():
    assert perf.ffi.sizeof("struct perf_event_attr") == perf.ATTR_SIZE == 136
    assert perf.ffi.offsetof("struct perf_event_attr", "flags") == 40
    assert perf.ffi.offsetof("struct perf_event_attr", "clockid") == 92
    assert perf.ffi.offsetof("struct perf_event_attr", "config3") == 128
    assert perf.ffi.offsetof("struct perf_ring_head", "data_head") == 1024


@pytest.mark.skipif(platform.machine() != "x86_64", reason="encodings checked against x86_64 headers")
def test_ioctl_numbers_match_x86_64_headers():
    assert perf.PERF_EVENT_IOC_ENABLE == 0x2400
    assert perf.PERF_EVENT_IOC_DISABLE == 0x2401
    assert perf.PERF_EVENT_IOC_RESET == 0x2403
    assert perf.PERF_EVENT_IOC_SET_OUTPUT == 0x2405
    assert perf.PERF_EVENT_IOC_SET_FILTER == 0x40082406


def test_flag_bits_little_endian():
    if perf.sys.byteorder == "little":
        assert perf.flag(perf.FLAG_DISABLED) == 1
        assert perf.flag(perf.FLAG_USE_CLOCKID) == 1 << 25


def test_field_offsets_from_format():
    assert field_offsets(STOP_SCAN_FORMAT) == {"common_type": 0, "common_pid": 4, "seq": 8, "rmap_entries": 12}


def make_tracefs(root, events=("ksm_start_scan", "ksm_stop_scan", "ksm_merge_with_ksm_page")):
    base = root / "sys/kernel/tracing/events/ksm"
    for i, name in enumerate(events):
        (base / name).mkdir(parents=True)
        (base / name / "id").write_text(f"{700 + i}\n")
    return base


def test_tracepoint_ids_leave_out_missing_events(tmp_path):
    base = make_tracefs(tmp_path)
    assert tracepoint_ids(base) == {"ksm_start_scan": 700, "ksm_stop_scan": 701, "ksm_merge_with_ksm_page": 702}


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("none", "does not exist"),
        ("empty", "not mounted"),
        ("no-ksm", "no KSM tracepoints"),
        ("partial", "ksm_stop_scan"),
    ],
)
def test_tracer_says_why_it_is_unavailable(tmp_path, layout, expected):
    if layout == "empty":
        (tmp_path / "sys/kernel/tracing").mkdir(parents=True)
    elif layout == "no-ksm":
        (tmp_path / "sys/kernel/tracing/events/sched").mkdir(parents=True)
    elif layout == "partial":
        make_tracefs(tmp_path, events=("ksm_start_scan",))
    tracer = KsmTracer(root=tmp_path, mount_tracefs=False)
    status = tracer.open()
    assert not status.available
    assert expected in status.reason
    assert tracer.read() is None


def test_tracefs_found_in_the_debugfs_place(tmp_path):
    (tmp_path / "sys/kernel/debug/tracing/events").mkdir(parents=True)
    found = perf.find_tracefs(tmp_path, mount=False)
    assert found.path == tmp_path / "sys/kernel/debug/tracing"


@pytest.mark.parametrize(("text", "cpus"), [("0-3\n", [0, 1, 2, 3]), ("0,2-3\n", [0, 2, 3]), ("5\n", [5])])
def test_online_cpus(tmp_path, text, cpus):
    (tmp_path / "sys/devices/system/cpu").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/online").write_text(text)
    assert perf.online_cpus(tmp_path) == cpus


def test_open_errors_in_words(tmp_path):
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/perf_event_paranoid").write_text("2\n")
    assert "CONFIG_PERF_EVENTS" in perf.explain_open_error(errno.ENOSYS, "x", tmp_path)
    assert "gone" in perf.explain_open_error(errno.ESRCH, "x", tmp_path)
    assert "RLIMIT_NOFILE" in perf.explain_open_error(errno.EMFILE, "x", tmp_path)


def test_raise_nofile_never_lowers():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert perf.raise_nofile(10) >= soft
