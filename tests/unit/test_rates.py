"""Delta and rate math of the sampler, and History (table-driven)."""

from __future__ import annotations

import dataclasses

import pytest

from ksmtop.history import History
from ksmtop.model import GuestSample, HostSample, KsmRates, KsmState, Snapshot
from ksmtop.rates import ksm_rates


def host(page_size: int = 4096) -> HostSample:
    return HostSample(
        page_size=page_size,
        clock_ticks=100,
        mem_total_bytes=0,
        mem_available_bytes=0,
        mem_free_bytes=0,
        anon_bytes=0,
        cow_ksm=None,
        ksmd_pid=None,
        ksmd_cpu_seconds=None,
    )


def ksm(**values: int | str) -> KsmState:
    return KsmState(available=True, values=dict(values))


def guest(pid: int, rmap: int | None = None, anon_bytes: int = 0) -> GuestSample:
    return GuestSample(
        pid=pid,
        name=str(pid),
        kind="process",
        start_ticks=1,
        rss_bytes=anon_bytes,
        anon_bytes=anon_bytes,
        shared_bytes=0,
        ksm_merging_pages=None,
        ksm_zero_pages=None,
        ksm_rmap_items=rmap,
        ksm_process_profit_bytes=None,
        ksm_mergeable=None,
        ksm_merge_any=None,
        cpu_seconds=0.0,
        minor_faults=0,
        major_faults=0,
    )


@pytest.mark.parametrize(
    ("values", "page_size", "saving", "ratio"),
    [
        ({"pages_sharing": 30, "pages_shared": 10, "ksm_zero_pages": 5}, 4096, 35 * 4096, 3.0),
        ({"pages_sharing": 30, "pages_shared": 10, "ksm_zero_pages": 5}, 16384, 35 * 16384, 3.0),
        ({"pages_sharing": 30, "pages_shared": 10}, 65536, 30 * 65536, 3.0),  # kernel without ksm_zero_pages
        ({"pages_sharing": 0, "pages_shared": 0, "ksm_zero_pages": 8}, 4096, 8 * 4096, None),  # zero pages only
        ({"pages_sharing": 7, "pages_shared": 2}, 4096, 7 * 4096, 3.5),
        ({}, 4096, None, None),  # no KSM
    ],
)
def test_saving_and_ratio(values, page_size, saving, ratio):
    rates = ksm_rates(ksm(**values), host(page_size), None, None)
    assert rates.saving_bytes == saving
    assert rates.sharing_ratio == ratio


@pytest.mark.parametrize(
    ("run", "to_scan", "sleep_ms", "expected"),
    [
        (1, 100, 20, 5000.0),
        (1, 5000, 10, 500000.0),
        (1, 100, 0, 100000.0),  # sleep 0: one batch per ms at most, never a division by zero
        (1, 0, 20, 0.0),
        (0, 100, 20, None),  # not running: no scanning
        (2, 100, 20, None),
    ],
)
def test_scan_rate(run, to_scan, sleep_ms, expected):
    rates = ksm_rates(ksm(run=run, pages_to_scan=to_scan, sleep_millisecs=sleep_ms), host(), None, None)
    assert rates.scan_rate_pages_per_s == expected


def test_deltas_need_previous_sample():
    state = ksm(run=1, pages_to_scan=100, sleep_millisecs=20, full_scans=5, pages_scanned=10, pages_sharing=4)
    rates = ksm_rates(state, host(), None, None)
    assert (rates.full_scans_delta, rates.measured_scan_pages_per_s, rates.pages_sharing_per_s) == (None, None, None)


@pytest.mark.parametrize(
    ("old", "new", "interval", "scans", "measured", "sharing_rate"),
    [
        ((5, 1000, 100), (7, 3000, 300), 2.0, 2, 1000.0, 100.0),
        ((5, 1000, 300), (5, 1000, 100), 0.5, 0, 0.0, -400.0),  # sharing falls (unmerge)
        ((9, 0, 0), (12, 4000, 0), 4.0, 3, 1000.0, 0.0),
    ],
)
def test_deltas(old, new, interval, scans, measured, sharing_rate):
    def state(full_scans, scanned, sharing):
        return ksm(run=1, pages_to_scan=100, sleep_millisecs=20, full_scans=full_scans, pages_scanned=scanned,
                   pages_sharing=sharing, pages_shared=1)  # fmt: skip

    rates = ksm_rates(state(*new), host(), state(*old), interval)
    assert rates.full_scans_delta == scans
    assert rates.measured_scan_pages_per_s == pytest.approx(measured)
    assert rates.pages_sharing_per_s == pytest.approx(sharing_rate)


def test_zero_interval_gives_no_rates():
    state = ksm(run=1, pages_to_scan=100, sleep_millisecs=20, full_scans=5, pages_scanned=10)
    rates = ksm_rates(state, host(), state, 0.0)
    assert rates.measured_scan_pages_per_s is None and rates.full_scans_delta is None


@pytest.mark.parametrize(
    ("guests", "old_scanned", "expected"),
    [
        ([guest(1, rmap=2000), guest(2, rmap=3000)], None, 5000 / 5000.0),  # estimate from pages_to_scan/sleep
        ([guest(1, rmap=2000)], 0, 2000 / 1000.0),  # measured rate wins: 2000 pages scanned in 2 s
        ([guest(1, anon_bytes=4096 * 10000)], None, 10000 / 5000.0),  # no rmap_items: anon pages
        ([], None, None),
    ],
)
def test_full_scan_seconds(guests, old_scanned, expected):
    new = ksm(run=1, pages_to_scan=100, sleep_millisecs=20, pages_scanned=2000)
    old = None if old_scanned is None else ksm(run=1, pages_to_scan=100, sleep_millisecs=20, pages_scanned=0)
    rates = ksm_rates(new, host(), old, 2.0 if old else None, guests)
    assert rates.full_scan_seconds == (None if expected is None else pytest.approx(expected))


def snapshot(saving: int | None, t: float) -> Snapshot:
    return Snapshot(
        time=t,
        interval_s=None,
        scope="ksm",
        host=host(),
        ksm=ksm(),
        rates=KsmRates(saving_bytes=saving, sharing_ratio=None, scan_rate_pages_per_s=None),
        guests=(),
    )


def test_history_series_and_trim():
    history = History(maxlen=3)
    assert history.latest is None and history.series(lambda s: s.rates.saving_bytes) == []
    for i, saving in enumerate([10, None, 30, 40]):
        history.append(snapshot(saving, float(i)))
    assert len(history) == 3  # the oldest is gone
    assert history.series(lambda s: s.rates.saving_bytes) == [0.0, 30.0, 40.0]  # None as 0, newest last
    assert history.series(lambda s: s.rates.saving_bytes, last=2) == [30.0, 40.0]
    assert history.series(lambda s: s.time, last=10) == [1.0, 2.0, 3.0]
    latest = history.latest
    assert latest is not None and latest.time == 3.0


def test_history_default_holds_ten_minutes_at_one_second():
    history = History()
    base = snapshot(1, 0.0)
    for i in range(700):
        history.append(dataclasses.replace(base, time=float(i)))
    assert len(history) == 700
    assert history.series(lambda s: s.time)[-600] == 100.0
