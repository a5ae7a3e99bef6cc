"""The kernel's scan-time advisor (advisor_mode=scan-time): pages_to_scan moving by itself is no change for
convergence and one row of the price table, editing pages_to_scan says the advisor sets it, and the
ksm:ksm_advisor tracepoint's values are read from its raw records at the offsets of its format file.
The real kernel's advisor is switched on and off in tests/tui/test_operators.py."""

from __future__ import annotations

import dataclasses
import errno
import struct
from pathlib import Path

import pytest

from ksmtop.collect.ksmtrace import ADVISOR_FIELDS, AdvisorRecord, KsmTraceSample, advisor_record, field_offsets
from ksmtop.convergence import TradeTracker, convergence, scan_log, trade_key
from ksmtop.knobs import ADVISOR_SETS_IT, WriteResult, advisor_note, advisor_running, explain_errno, refusal_words
from ksmtop.model import KsmRates, KsmState
from ksmtop.perfcount import PerfCounting
from tests.unit.test_convergence import snap

# This machine's kernel (6.18), /sys/kernel/tracing/events/ksm/ksm_advisor/format
ADVISOR_FORMAT = """\
name: ksm_advisor
ID: 741
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:s64 scan_time;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long pages_to_scan;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned int cpu_percent;\toffset:24;\tsize:4;\tsigned:0;

print fmt: "ksm scan time %lld pages_to_scan %lu cpu percent %u", REC->scan_time, REC->pages_to_scan
"""
ADVISOR_ON = {"advisor_mode": "scan-time", "advisor_target_scan_time": 2, "advisor_max_cpu": 70}
ADVISOR_ON |= {"advisor_min_pages_to_scan": 500, "advisor_max_pages_to_scan": 30000}
ADVISOR_OFF = {**ADVISOR_ON, "advisor_mode": "none"}


def with_knobs(snapshot, **values):
    return dataclasses.replace(snapshot, ksm=KsmState(True, {**snapshot.ksm.values, **values}))


def advised(t: float, scans: int, sharing: int, to_scan: int, mode: dict = ADVISOR_ON):
    return with_knobs(snap(t, scans, sharing, to_scan=to_scan), **mode)


def test_advisor_running_and_the_note_before_editing_pages_to_scan():
    on, off = KsmState(True, dict(ADVISOR_ON)), KsmState(True, dict(ADVISOR_OFF))
    assert advisor_running(on) and not advisor_running(off)
    assert not advisor_running(KsmState(True, {"pages_to_scan": 100}))  # a kernel before 6.8
    assert advisor_note("pages_to_scan", on) == ADVISOR_SETS_IT
    assert "advisor_mode=none first" in ADVISOR_SETS_IT
    assert advisor_note("pages_to_scan", off) is None
    assert advisor_note("sleep_millisecs", on) is None
    assert advisor_note("pages_to_scan", None) is None
    refused = explain_errno("pages_to_scan", errno.EINVAL, "1000", on)
    assert "advisor" in refused
    assert refusal_words(WriteResult("pages_to_scan", 500, "1000", 500, False, refused, errno=errno.EINVAL)) == (
        "the advisor sets it"
    )


def test_pages_to_scan_moving_under_the_advisor_is_no_change():
    history = [advised(0, 0, 0, 500), advised(10, 1, 5000, 5000), advised(20, 2, 9000, 30000)]
    history += [advised(30, 3, 9010, 12000), advised(31, 3, 9012, 9000)]
    assert scan_log(history).last_change == 0
    result = convergence(history)
    assert result.converged and result.full_scans_since_change == 3


def test_switching_the_advisor_on_or_off_or_its_target_is_a_change():
    before = [snap(0, 0, 0), snap(10, 1, 5000), snap(20, 2, 9000), snap(30, 3, 9010)]
    switched_on = [*before, advised(31, 3, 9010, 500), advised(32, 3, 9010, 5000)]
    assert scan_log(switched_on).last_change == 4
    assert not convergence(switched_on).converged
    retargeted = [*switched_on, with_knobs(advised(33, 3, 9010, 5000), advisor_target_scan_time=10)]
    assert scan_log(retargeted).last_change == 6
    switched_off = [*switched_on, advised(33, 3, 9010, 100, ADVISOR_OFF)]
    assert scan_log(switched_off).last_change == 6


def test_the_price_table_has_one_advisor_row_not_one_per_pages_to_scan():
    tracker = TradeTracker()
    for i, to_scan in enumerate((500, 5000, 30000, 12000, 9000)):
        tracker.add(advised(i, i, 100 * i, to_scan))
    (point,) = tracker.points()
    assert point.setting == "advisor (target 2 s, max 70% CPU)"
    assert point.pages_to_scan == 9000  # the last value it chose
    assert point.seconds == 4
    for i in range(5, 8):
        tracker.add(advised(i, i, 100 * i, 100, ADVISOR_OFF))
    points = tracker.points()
    assert [p.setting for p in points] == ["advisor (target 2 s, max 70% CPU)", "100"]
    assert points[1].advisor_target_scan_time is None


def test_trade_key_keeps_the_advisors_settings_and_drops_its_choice():
    a = advised(0, 0, 0, 500).ksm
    b = advised(1, 1, 0, 30000).ksm
    assert trade_key(a) == trade_key(b)
    assert trade_key(KsmState(True, {**a.values, "advisor_max_cpu": 20})) != trade_key(a)
    assert trade_key(snap(0, 0, 0, to_scan=100).ksm) == (100, 20)


def test_advisor_record_from_the_format_files_offsets():
    offsets = field_offsets(ADVISOR_FORMAT)
    assert {name: offsets[name] for name in ADVISOR_FIELDS} == {"scan_time": 8, "pages_to_scan": 16, "cpu_percent": 24}
    raw = struct.pack("=HBBi", 741, 0, 0, 99) + struct.pack("=qQI", 3, 12345, 17) + b"\0" * 4
    assert advisor_record(55, raw, offsets) == AdvisorRecord(55, 3, 12345, 17)
    # another kernel's layout: the format file's offsets win over the defaults
    moved = struct.pack("=HBBi", 741, 0, 0, 99) + b"\0" * 8 + struct.pack("=qQI", 4, 777, 9)
    shifted = {"scan_time": 16, "pages_to_scan": 24, "cpu_percent": 32}
    assert advisor_record(1, moved, shifted) == AdvisorRecord(1, 4, 777, 9)
    assert advisor_record(1, raw[:20], offsets) is None  # cut short: nothing made up


def test_the_real_format_file_matches_the_defaults():
    path = Path("/sys/kernel/tracing/events/ksm/ksm_advisor/format")
    try:
        text = path.read_text()
    except OSError:
        pytest.skip("no readable ksm_advisor format on this machine (kernel before 6.8, or not root)")
    offsets = field_offsets(text)
    assert {name: offsets[name] for name in ADVISOR_FIELDS} == {name: d for name, (d, _) in ADVISOR_FIELDS.items()}


class FakeTracer:
    def __init__(self, samples: list[KsmTraceSample]) -> None:
        self.samples = samples

    def read(self) -> KsmTraceSample:
        return self.samples.pop(0)

    def close(self) -> None:
        pass


def test_perf_counting_keeps_the_last_adjustment_while_the_advisor_runs():
    one = AdvisorRecord(1, 2, 5000, 12)
    samples = [
        KsmTraceSample(1_000_000_000, {}, advisor=(AdvisorRecord(0, 1, 500, 3), one)),
        KsmTraceSample(2_000_000_000, {}),
        KsmTraceSample(3_000_000_000, {}),
    ]
    counting = PerfCounting("/nonexistent")
    counting._opened, counting.tracer = True, FakeTracer(samples)  # type: ignore[assignment]
    base = KsmRates(None, None, None)
    first = counting.rates(base, advisor_on=True)
    assert (first.advisor_scan_seconds, first.advisor_pages_to_scan, first.advisor_cpu_percent) == (2, 5000, 12)
    assert counting.rates(base, advisor_on=True).advisor_pages_to_scan == 5000  # no new adjustment: the last one
    off = counting.rates(base, advisor_on=False)
    assert off.advisor_pages_to_scan is None and off.advisor_scan_seconds is None
