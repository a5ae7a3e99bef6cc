"""The capacity model the paper asks for: memory per additional guest, with and without KSM, and how many such
guests fit a host. Pure functions over measured points; no I/O.

Assumptions (report.md repeats them):
- Memory grows linearly with the number of identical guests running the same workload:
  memory(n) = intercept + per_guest * n. ``per_guest`` is the memory one more guest costs; with KSM on, what
  the first guest holds that the others merge with stays in the intercept, and each further guest adds only what
  does not merge. The study fits the guests' summed PSS (what they cost, unmoved by other processes on the host)
  and, as a cross-check, host used memory (the paper's figure, which everything else on the host moves too);
  the capacity adds the host's own use without the guests (``fixed_bytes``) to the PSS line.
- The line is a least-squares fit on the measured guest counts (1..N). Its error is the standard error of the
  slope (from the residuals; none from two points, which fit exactly). A single guest count is joined to the
  baseline (no guests) instead, and has no error either.
- A guest fits while fixed + memory(n) <= the host's memory: no swap, no headroom, ksmd keeping up, and the fixed
  part of another host equal to this one's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LineFit:
    """used(n) = intercept + slope * n, in bytes."""

    slope: float
    intercept: float
    slope_error: float | None
    """Standard error of the slope (None: too few points to tell)."""
    points: int
    residual_rms: float | None
    how: str
    """'least squares on N guest counts' or 'one guest count joined to the baseline'."""

    def at(self, guests: float) -> float:
        return self.intercept + self.slope * guests


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> LineFit:
    """Ordinary least squares; at least two distinct x values. The slope's standard error needs three points."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        raise ValueError("a line needs at least two distinct guest counts")
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    ssr = sum(r * r for r in residuals)
    error = math.sqrt(ssr / (n - 2) / sxx) if n > 2 else None
    return LineFit(
        slope=slope,
        intercept=intercept,
        slope_error=error,
        points=n,
        residual_rms=math.sqrt(ssr / n),
        how=f"least squares on {n} guest counts",
    )


def per_guest_fit(points: Sequence[tuple[int, float]], baseline: float | None = None) -> LineFit | None:
    """The line through measured (guests, bytes) points; one guest count is joined to ``baseline`` (0 guests).

    None when there is nothing to fit (no points, or one point and no baseline).
    """
    points = [(int(n), float(y)) for n, y in points if n >= 1]
    if len({n for n, _ in points}) >= 2:
        return fit_line([n for n, _ in points], [y for _, y in points])
    if not points or baseline is None:
        return None
    n, y = points[-1]
    return LineFit(
        slope=(y - baseline) / n,
        intercept=float(baseline),
        slope_error=None,
        points=1,
        residual_rms=None,
        how="one guest count joined to the baseline (no guests)",
    )


@dataclass(frozen=True, slots=True)
class Fit:
    """How many guests fit ``memory_bytes``: the estimate and, with a slope error, the range slope ± error gives."""

    memory_bytes: int
    guests: int | None
    """None: the slope is not positive, so memory does not limit the count (the model says nothing)."""
    low: int | None
    high: int | None


def guests_that_fit(fit: LineFit, memory_bytes: int, fixed_bytes: float = 0) -> Fit:
    """The largest n with fixed_bytes + fit.at(n) <= memory_bytes (0 when even the fixed part does not fit)."""

    def count(slope: float) -> int | None:
        if slope <= 0:
            return None
        return max(0, math.floor((memory_bytes - fixed_bytes - fit.intercept) / slope + 1e-9))

    guests = count(fit.slope)
    if fit.slope_error is None:
        return Fit(memory_bytes, guests, None, None)
    return Fit(memory_bytes, guests, count(fit.slope + fit.slope_error), count(fit.slope - fit.slope_error))


@dataclass(frozen=True, slots=True)
class WorkloadModel:
    workload: str
    metric: str
    """The row key fitted: "guests_pss_bytes" or "host_used_bytes"."""
    off: LineFit | None
    on: LineFit | None
    fixed_bytes: float
    """Added to the line for the capacity: the host's own use when the metric holds the guests only."""
    fits_off: list[Fit]
    fits_on: list[Fit]

    @property
    def saving_per_guest_bytes(self) -> float | None:
        """What KSM saves on each additional guest: the difference of the two slopes."""
        if self.off is None or self.on is None:
            return None
        return self.off.slope - self.on.slope


def workload_model(
    workload: str,
    off_points: Sequence[tuple[int, float]],
    on_points: Sequence[tuple[int, float]],
    host_sizes: Sequence[int],
    *,
    metric: str = "guests_pss_bytes",
    zero: float | None = 0.0,
    fixed_bytes: float = 0.0,
) -> WorkloadModel:
    """Both lines for one workload and the guests that fit each host size.

    ``zero`` is the metric with no guests (joined to a single guest count); ``fixed_bytes`` what the host uses
    besides the metric. For the guests' PSS: zero 0 and fixed = host used without the guests; for host used:
    zero = host used without the guests and fixed 0.
    """
    off = per_guest_fit(off_points, zero)
    on = per_guest_fit(on_points, zero)
    return WorkloadModel(
        workload=workload,
        metric=metric,
        off=off,
        on=on,
        fixed_bytes=fixed_bytes,
        fits_off=[guests_that_fit(off, size, fixed_bytes) for size in host_sizes] if off else [],
        fits_on=[guests_that_fit(on, size, fixed_bytes) for size in host_sizes] if on else [],
    )
