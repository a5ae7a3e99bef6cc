"""Convergence over synthetic histories: when it is reached, when a change resets it, the ETA, the trade table."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from ksmtop.convergence import (
    CONVERGED_CHANGE,
    CONVERGED_SCANS,
    Convergence,
    convergence,
    is_change,
    scan_log,
    scanned_fraction,
    trade,
)
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
    assert scan_log(changed).last_change == 4
    assert not convergence(changed).converged
    new_guest = (guest(1, rmap=500, anon_bytes=4096 * 1000), guest(2, rmap=0, anon_bytes=4096 * 1000))
    added = [*history, snap(31, 3, 9010, guests=new_guest)]
    assert scan_log(added).last_change == 4 and not convergence(added).converged


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


def reference_convergence(snapshots: list[Snapshot]) -> Convergence:
    """The definitions in ksmtop.convergence's docstring, walked over every snapshot of the window the plain
    way (as the first version did): what the ScanLog's shortcuts must agree with."""
    if not snapshots:
        return Convergence(False, "no samples yet", None, None, None, None, None)
    latest = snapshots[-1]
    scanned = scanned_fraction(latest)
    if not latest.ksm.running:
        return Convergence(False, "KSM is off", scanned, None, None, None, None)
    changes = [i for i in range(1, len(snapshots)) if is_change(snapshots[i - 1], snapshots[i])]
    window = snapshots[max(changes, default=0) :]
    counters = [(s.ksm.get("full_scans"), s.ksm.get("pages_sharing")) for s in window]
    first_scans, (scans, sharing) = counters[0][0], counters[-1]
    since = scans - first_scans if scans is not None and first_scans is not None else None
    change = None
    for index, (earlier, before) in enumerate(counters):  # the first at or after the start of the last scan
        if scans is not None and sharing is not None and earlier is not None and earlier >= scans - 1:
            if not (earlier == scans and index == 0):
                change = abs(sharing - (before or 0)) / max(sharing, before or 0, 1)
            break
    ends, last = [], None
    for count, pages in counters:
        if count is None or pages is None:
            continue
        if last is not None and count != last:
            ends.append(pages)
        last = count
    sharing = sharing or 0
    projected, to_level = None, None
    if len(ends) >= 3:
        older, newer = ends[-2] - ends[-3], ends[-1] - ends[-2]
        if 0 < newer < older:
            ratio = newer / older
            projected = int(sharing + newer * ratio / (1 - ratio))
            target = CONVERGED_CHANGE * max(projected, 1)
            to_level = 0 if newer <= target else math.ceil(math.log(target / newer) / math.log(ratio))
    if since is not None and since >= CONVERGED_SCANS and change is not None and change < CONVERGED_CHANGE:
        return Convergence(True, "converged", scanned, since, change, 0.0, projected or sharing)
    to_go = max(CONVERGED_SCANS - (since or 0), to_level or 0, 1)
    scan_s = latest.rates.full_scan_seconds
    state = f"converging: about {to_go} full scan{'s' if to_go != 1 else ''} to go"
    return Convergence(False, state, scanned, since, change, to_go * scan_s if scan_s else None, projected)


def wandering_history(seed: int, count: int) -> list[Snapshot]:
    """full_scans growing by 0-2 a sample, pages_sharing rising and falling, knob changes, guests coming and
    going, KSM switched off for a while: a history that moves everything convergence reads."""
    rng = random.Random(seed)
    scans, sharing, to_scan, run, guests = 0, 0, 100, 1, (guest(1, rmap=500, anon_bytes=4096 * 1000),)
    out = []
    for t in range(count):
        scans += rng.choice((0, 0, 0, 1, 1, 2))
        sharing = max(0, sharing + rng.randint(-50, 400))
        if rng.random() < 0.04:
            to_scan = rng.choice((100, 1000, 5000))
        if rng.random() < 0.02:
            run = 1 - run
        if rng.random() < 0.03:
            guests = (*guests[:1], guest(len(guests) + 1)) if len(guests) < 3 else guests[:1]
        out.append(snap(t, scans, sharing, run=run, to_scan=to_scan, guests=guests))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_history_judges_each_window_as_the_plain_walk_does(seed):
    """A screen asks its History every sample: the ScanLog's answer (last change kept, steps of full_scans
    walked from the end) equals the plain walk over the window, while the window slides past changes."""
    from ksmtop.history import History

    snapshots = wandering_history(seed, 160)
    history = History(maxlen=40)
    for count, snapshot in enumerate(snapshots, start=1):
        history.append(snapshot)
        for window in (1, 3, 12, 40):
            expected = reference_convergence(snapshots[max(0, count - window) : count])
            assert history.scans.convergence(snapshot, window) == expected, (seed, count, window)
            assert convergence(snapshots[max(0, count - window) : count]) == expected, (seed, count, window)
    assert sum(convergence(snapshots[:n]).converged for n in range(1, 160)) > 0, "no history reached converged"


def test_a_snapshot_without_ksm_counters_starts_no_window():
    from ksmtop.history import History

    blind = dataclasses.replace(
        snap(3, 0, 0), ksm=KsmState(True, {"run": 1, "pages_to_scan": 100, "sleep_millisecs": 20})
    )
    history = History()
    for snapshot in (blind, snap(10, 1, 5000), snap(20, 2, 9000), snap(30, 3, 9020), snap(31, 3, 9030)):
        history.append(snapshot)
    result = history.scans.convergence(history.latest, 600)
    assert result.full_scans_since_change == 2  # from the first snapshot that read full_scans
    assert result.converged
