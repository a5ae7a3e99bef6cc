"""The capacity model on made-up points: exact lines, noisy lines with a known standard error, one guest count,
and how many guests fit."""

from __future__ import annotations

import math

import pytest

from ksmtop.study.model import LineFit, fit_line, guests_that_fit, per_guest_fit, workload_model

MIB = 2**20


def test_exact_points_give_the_line_and_no_residual():
    fit = fit_line([1, 2, 3, 4], [300 * MIB, 500 * MIB, 700 * MIB, 900 * MIB])
    assert fit.slope == pytest.approx(200 * MIB)
    assert fit.intercept == pytest.approx(100 * MIB)
    assert fit.slope_error == pytest.approx(0, abs=1e-3)
    assert fit.residual_rms == pytest.approx(0, abs=1e-3)
    assert fit.points == 4 and fit.at(10) == pytest.approx(2100 * MIB)


def test_noisy_points_give_the_least_squares_slope_and_its_standard_error():
    xs, ys = [1, 2, 3, 4], [2.0, 4.5, 5.5, 8.0]
    fit = fit_line(xs, ys)
    # By hand: mean x 2.5, mean y 5, Sxx 5, Sxy 9.5 -> slope 1.9, intercept 0.25;
    # residuals -0.15, 0.45, -0.45, 0.15 -> SSR 0.45; SE = sqrt(0.45 / 2 / 5) = 0.212...
    assert fit.slope == pytest.approx(1.9)
    assert fit.intercept == pytest.approx(0.25)
    assert fit.slope_error == pytest.approx(math.sqrt(0.045))
    assert fit.residual_rms == pytest.approx(math.sqrt(0.45 / 4))


def test_two_points_fit_exactly_and_have_no_error_estimate():
    fit = fit_line([1, 2], [10.0, 25.0])
    assert (fit.slope, fit.intercept, fit.slope_error) == (pytest.approx(15.0), pytest.approx(-5.0), None)


@pytest.mark.parametrize(("xs", "ys"), [([], []), ([2], [5.0]), ([3, 3], [1.0, 2.0]), ([1, 2], [1.0])])
def test_a_line_needs_two_distinct_guest_counts(xs, ys):
    with pytest.raises(ValueError):
        fit_line(xs, ys)


def test_one_guest_count_is_joined_to_the_zero_point():
    fit = per_guest_fit([(1, 260.0)], baseline=40.0)
    assert fit is not None
    assert (fit.slope, fit.intercept, fit.slope_error, fit.points) == (220.0, 40.0, None, 1)
    assert "baseline" in fit.how
    two = per_guest_fit([(2, 440.0)], baseline=40.0)
    assert two is not None and two.slope == 200.0


def test_nothing_to_fit_gives_none():
    assert per_guest_fit([], baseline=0.0) is None
    assert per_guest_fit([(1, 5.0)], baseline=None) is None


def test_guests_that_fit_the_memory():
    fit = LineFit(slope=200.0, intercept=100.0, slope_error=None, points=2, residual_rms=0.0, how="")
    assert guests_that_fit(fit, 1100).guests == 5  # 100 + 5 x 200 = 1100: exactly full still fits
    assert guests_that_fit(fit, 1099).guests == 4
    assert guests_that_fit(fit, 1100, fixed_bytes=400).guests == 3  # the host's own use comes first
    assert guests_that_fit(fit, 50).guests == 0  # not even the intercept fits
    result = guests_that_fit(fit, 1100)
    assert (result.low, result.high, result.memory_bytes) == (None, None, 1100)


def test_guests_that_fit_with_an_error_give_a_range():
    fit = LineFit(slope=200.0, intercept=0.0, slope_error=50.0, points=4, residual_rms=1.0, how="")
    result = guests_that_fit(fit, 1000)
    assert (result.guests, result.low, result.high) == (5, 4, 6)  # 1000/250, 1000/200, 1000/150


def test_a_slope_that_does_not_grow_sets_no_limit():
    flat = LineFit(slope=0.0, intercept=10.0, slope_error=None, points=3, residual_rms=0.0, how="")
    assert guests_that_fit(flat, 1000).guests is None
    wide = LineFit(slope=100.0, intercept=0.0, slope_error=150.0, points=3, residual_rms=1.0, how="")
    assert guests_that_fit(wide, 1000).high is None  # slope - error <= 0: no upper end


def test_workload_model_saving_per_guest_and_fits_per_host_size():
    off = [(n, 250.0 * n + 10) for n in (1, 2, 3, 4)]
    on = [(n, 120.0 * n + 40) for n in (1, 2, 3, 4)]
    model = workload_model("idle", off, on, [10_000, 20_000], zero=0.0, fixed_bytes=500.0)
    assert model.saving_per_guest_bytes == pytest.approx(130.0)
    assert [f.guests for f in model.fits_off] == [37, 77]  # (10000 - 500 - 10) / 250 = 37.96
    assert [f.guests for f in model.fits_on] == [78, 162]  # (10000 - 500 - 40) / 120 = 78.8
    assert model.off is not None and model.off.slope_error == pytest.approx(0, abs=1e-9)


def test_workload_model_with_only_one_side_measured():
    model = workload_model("primes", [(1, 300.0)], [], [1000], zero=100.0)
    assert model.on is None and model.fits_on == [] and model.saving_per_guest_bytes is None
    assert model.off is not None and model.off.slope == 200.0 and model.fits_off[0].guests == 4
