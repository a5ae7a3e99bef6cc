"""A graph's series as values arrive (ksmtop/tui/series.py): its lowest, highest and columns kept up as each
value arrives must equal what a plain walk over the window gives, for every width and as the window slides."""

from __future__ import annotations

import math
import random

import pytest

from ksmtop.tui.series import Series


def plain_columns(numbered: list[tuple[int, float]], width: int) -> list[float]:
    """Buckets of ``size`` samples counted from sample 0; the oldest only when all of it is in the window."""
    if width <= 0 or not numbered:
        return []
    if len(numbered) <= width:
        return [value for _, value in numbered]
    size = math.ceil(len(numbered) / width)
    first = numbered[0][0]
    buckets: dict[int, float] = {}
    for number, value in numbered:
        bucket = number // size
        if bucket * size >= first:
            buckets[bucket] = max(buckets.get(bucket, value), value)
    return [buckets[bucket] for bucket in sorted(buckets)][-width:]


@pytest.mark.parametrize("seed", range(4))
def test_the_kept_figures_equal_a_walk_over_the_window(seed):
    rng = random.Random(seed)
    window = rng.choice((7, 40, 600))
    series, numbered = Series(window), []
    for number in range(3 * window + 5):
        value = rng.choice((0.0, rng.uniform(0, 100), 50.0))  # repeats too: ties in the running extremes
        series.append(value)
        numbered = [*numbered, (number, value)][-window:]
        values = [v for _, v in numbered]
        assert (series.low, series.high, series.latest) == (min(values), max(values), value)
        assert list(series) == values
        width = rng.choice((1, 3, 10, 59, 60, 61, 200))  # widths change between calls, as on a resize
        assert series.columns(width) == plain_columns(numbered, width), (number, width)


def test_a_full_window_scrolls_one_column_at_a_time():
    series = Series(600)
    series.extend(float(n % 97) for n in range(600))
    before = series.columns(120)  # 5 samples a column
    for n in range(600, 610):
        series.append(float(n % 97))
        after = series.columns(120)
        assert after[:-1] == before[1:] or after[:-1] == before[:-1]  # moved left by one, or only the newest grew
        before = after


def test_the_version_names_the_content():
    one, other = Series(5), Series(5)
    assert one.version != other.version
    seen = {one.version}
    one.append(1.0)
    assert one.version not in seen
    seen.add(one.version)
    one.clear()
    assert one.version not in seen and len(one) == 0 and one.low is None and one.columns(10) == []
    assert Series.of([3.0, 1.0, 2.0]).columns(2) == [3.0, 2.0]  # 2 a column: (3, 1), (2)
