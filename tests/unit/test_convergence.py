"""Convergence over synthetic histories: when it is reached, when a change resets it, the ETA, the trade table."""

from __future__ import annotations

import dataclasses

import pytest

from ksmtop.convergence import convergence, last_change_index, scanned_fraction, trade
from ksmtop.model import GuestSample, HostSample, KsmRates, KsmState, Snapshot
from tests.unit.test_rates import guest, host

RATES = KsmRates(saving_bytes=None, sharing_ratio=None, scan_rate_pages_per_s=None, full_scan_seconds=10.0)


def snap(t: float, scans: int, sharing: int, *, run: int = 1, to_scan: int = 100, cpu: float | None = 2.0,
         guests: tuple[GuestSample, ...] | None = None, scanned: int = 0) -> Snapshot:  # fmt: skip
    values = {"run": run, "pages_to_scan": to_scan, "sleep_millisecs": 20, "full_scans": scans}
    values |= {"pages_sharing": sharing, "pages_scanned": scanned}
    return Snapshot(
        time=t,
        interval_s=1.0,
        scope="qemu",
        host=dataclasses.replace(host(), ksmd_cpu_percent=cpu),
        ksm=KsmState(True, values),
        rates=RATES,
        guests=guests if guests is not None else (guest(1, rmap=500, anon_bytes=4096 * 1000),),
    )


def test_empty_and_off():
    assert convergence([]).state == "no samples yet"
    off = convergence([snap(0, 0, 0, run=0)])
    assert off.state == "KSM is off" and not off.converged


def test_converged_after_two_scans_with_a_flat_last_scan():
    history = [snap(0, 0, 0), snap(10, 1, 5000), snap(20, 2, 9000), snap(30, 3, 9020), snap(31, 3, 9030)]
    result = convergence(history)
    assert result.converged and result.state == "converged" and result.eta_s == 0
    assert result.full_scans_since_change == 3
    assert result.change_last_scan == pytest.approx(30 / 9030)


def test_still_converging_with_a_geometric_projection():
    history = [snap(0, 0, 0), snap(10, 1, 1000), snap(20, 2, 5000), snap(30, 3, 7000), snap(40, 4, 8000)]
    result = convergence(history)
    assert not result.converged
    assert result.projected_sharing == 9000  # gains 2000 then 1000: 500 + 250 + ... = 1000 more
    assert result.eta_s is not None and result.eta_s >= 10.0
    assert "full scans to go" in result.state


def test_a_knob_change_or_a_new_guest_restarts_the_count():
    history = [snap(0, 0, 0), snap(10, 1, 5000), snap(20, 2, 9000), snap(30, 3, 9010)]
    changed = [*history, snap(31, 3, 9010, to_scan=1000), snap(32, 3, 9010, to_scan=1000)]
    assert last_change_index(changed) == 4
    assert not convergence(changed).converged
    new_guest = (guest(1, rmap=500, anon_bytes=4096 * 1000), guest(2, rmap=0, anon_bytes=4096 * 1000))
    added = [*history, snap(31, 3, 9010, guests=new_guest)]
    assert last_change_index(added) == 4 and not convergence(added).converged


def test_scanned_fraction():
    assert scanned_fraction(snap(0, 0, 0)) == pytest.approx(0.5)
    assert scanned_fraction(snap(0, 0, 0, guests=())) is None


def test_trade_points_per_setting():
    history = [snap(t, 0, 0, scanned=4000 * t, cpu=2.0) for t in range(5)]
    history += [snap(t, 0, 0, to_scan=1000, scanned=16000 + 39000 * (t - 4), cpu=12.0) for t in range(5, 10)]
    points = trade(history)
    assert [(p.pages_to_scan, p.ksmd_cpu_percent) for p in points] == [(100, 2.0), (1000, 12.0)]
    assert points[0].scanned_pages_per_s == pytest.approx(4000)
    assert points[1].scanned_pages_per_s == pytest.approx(39000)


def test_host_helper_is_a_host_sample():
    assert isinstance(host(), HostSample)


def test_history_marks_changes_once_and_convergence_reads_them_alike():
    from ksmtop.history import History

    later = [snap(40 + i, 4 + i // 5, 9010 + (i % 3)) for i in range(20)]
    steps = [
        snap(0, 0, 0), snap(10, 1, 5000), snap(20, 2, 9000), snap(30, 3, 9010),
        snap(31, 3, 9010, to_scan=1000), snap(32, 3, 9010, to_scan=1000),
        snap(33, 3, 9010, to_scan=1000, guests=(guest(1, rmap=500, anon_bytes=4096 * 1000), guest(2))),
        *later,
    ]  # fmt: skip
    history = History(maxlen=12)  # the window slides: changes fall out of it as snapshots do
    for count, snapshot in enumerate(steps, start=1):
        history.append(snapshot)
        for window in (3, 8, 12):
            snapshots, marks = history.last(window), history.last_marks(window)
            assert len(marks) == len(snapshots)
            assert last_change_index(snapshots, marks) == last_change_index(snapshots), (count, window)
            assert convergence(snapshots, marks=marks) == convergence(snapshots), (count, window)
    assert list(History().marks) == []
