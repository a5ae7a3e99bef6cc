"""Sparkline bars with an honest baseline: bars rise from zero, so a series that moved 0.1% looks flat.

Textual's Sparkline scales from the series' minimum to its maximum, which draws a flat 691 MiB with one 1 MiB
bump as a wall. Here the scale is 0 to the maximum (said in the label above the graph), each column is the
largest value of its bucket of samples, and two lines give 16 levels. widgets/graphs.py draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"
LEVELS_PER_LINE = len(BLOCKS) - 1


def bars(columns: Sequence[float], width: int, height: int) -> list[str]:
    """``columns`` (one value a column, at most ``width``; tui/series.py buckets a longer series) as ``height``
    lines of block characters, right-aligned (newest at the right edge); the scale is 0 to the largest value.
    Negative values draw as zero."""
    top = max(columns, default=0.0)
    levels = height * LEVELS_PER_LINE
    # a positive value never draws as nothing: at least the lowest level
    if top > 0:
        heights = [min(levels, max(1, round(value / top * levels))) if value > 0 else 0 for value in columns]
    else:
        heights = [1 if value > 0 else 0 for value in columns]
    lines = []
    for line in range(height):  # top line first
        floor = (height - 1 - line) * LEVELS_PER_LINE
        cells = [BLOCKS[min(LEVELS_PER_LINE, max(0, h - floor))] for h in range(levels + 1)]
        lines.append("".join([cells[h] for h in heights]).rjust(width))
    return lines
