"""The paper's findings as checks on made-up rows: held, not held, not measured, with the numbers."""

from __future__ import annotations

import pytest

from ksmtop.study.checks import (
    cpu_bound_like_idle,
    faults_unchanged,
    merging_grows,
    paper_checks,
    same_beats_random,
)

MIB = 2**20


def row(workload, guests, ksm, saving_mib=0.0, perf=None, proc=0.0, perf_major=0, major=0):
    return {
        "workload": workload,
        "guests": guests,
        "ksm": ksm,
        "saving_bytes": int(saving_mib * MIB),
        "perf_faults_per_guest_per_s": perf,
        "faults_per_guest_per_s": proc,
        "perf_faults_major": perf_major,
        "faults_major": major,
    }


def savings(workload, *mib):
    return [row(workload, n, "on", m) for n, m in enumerate(mib, start=1)]


def test_merging_grows_held_and_not_held():
    held = merging_grows(savings("idle", 25, 80, 130))
    assert held.held is True and "idle: 25, 80, 130 MiB saved with 1..3 guests" in held.numbers
    flat = merging_grows(savings("idle", 25, 80, 80))
    assert flat.held is False and flat.verdict == "not held"
    assert merging_grows(savings("idle", 25)).held is None


def test_merging_must_grow_for_every_workload():
    check = merging_grows(savings("idle", 25, 80) + savings("fill-random", 10, 9))
    assert check.held is False and "fill-random: 10, 9" in check.numbers


@pytest.mark.parametrize(
    ("idle", "primes", "held"),
    [((25, 80), (24, 78), True), ((25, 80), (25, 101), False), ((25, 80), (19, 60), True), ((25, 80), (18, 80), False)],
)
def test_cpu_bound_like_idle_within_a_quarter(idle, primes, held):
    check = cpu_bound_like_idle(savings("idle", *idle) + savings("primes", *primes))
    assert check.held is held
    assert f"2 guests: primes {primes[1]} vs idle {idle[1]} MiB" in check.numbers


def test_cpu_bound_not_measured_without_primes():
    check = cpu_bound_like_idle(savings("idle", 25, 80))
    assert check.held is None and check.verdict == "not measured"


def test_same_data_fill_beats_random_fill_at_every_count():
    rows = savings("fill-same", 71, 170) + savings("fill-random", 8, 44)
    check = same_beats_random(rows)
    assert check.held is True and "2 guests: 170 vs 44 MiB (+126)" in check.numbers
    worse = same_beats_random(savings("fill-same", 71, 40) + savings("fill-random", 8, 44))
    assert worse.held is False


def test_faults_unchanged_uses_perf_when_counted():
    rows = [row("idle", 1, "off", perf=100.0, proc=900.0), row("idle", 1, "on", perf=120.0, proc=5.0)]
    check = faults_unchanged(rows)
    assert check.held is True and "perf faults/s" in check.numbers and "1: 100→120" in check.numbers


def test_faults_changed_and_new_major_faults_are_not_held():
    doubled = [row("idle", 1, "off", perf=100.0), row("idle", 1, "on", perf=260.0)]
    assert faults_unchanged(doubled).held is False
    major = [row("idle", 1, "off", perf=1.0), row("idle", 1, "on", perf=1.0, perf_major=3)]
    check = faults_unchanged(major)
    assert check.held is False and "+major" in check.numbers


def test_few_faults_are_judged_by_the_floor():
    rows = [row("idle", 1, "off", perf=0.1), row("idle", 1, "on", perf=2.0)]
    assert faults_unchanged(rows).held is True  # 0.1 -> 2 faults/s per guest: within 5/s


def test_faults_from_proc_when_perf_did_not_count():
    rows = [row("idle", 1, "off", proc=40.0), row("idle", 1, "on", proc=42.0)]
    check = faults_unchanged(rows)
    assert check.held is True and "/proc faults/s" in check.numbers


def test_paper_checks_are_four_in_the_papers_order():
    checks = paper_checks(savings("idle", 25, 80))
    assert [c.held for c in checks] == [True, None, None, None]
    assert [c.to_json()["verdict"] for c in checks] == ["held", "not measured", "not measured", "not measured"]
