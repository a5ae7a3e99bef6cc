"""The study's figures as PNG, with matplotlib (Agg: no display): one per workload in the manner of the paper's
figures 2-5 (host memory against the number of guests, KSM off and on side by side), page faults before and after
merging, merging over time, and the capacity model's lines. No UI imports; matplotlib is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ksmtop.study.checks import fault_rate
from ksmtop.study.model import WorkloadModel

MIB = 2**20
DPI = 100
OFF_COLOUR, ON_COLOUR = "black", "0.62"  # the paper's black and grey bars


class FiguresUnavailable(Exception):
    pass


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FiguresUnavailable("figures need matplotlib: pip install 'ksmtop[plot]'") from None
    return plt


def memory_name(workload: str) -> str:
    return f"memory-{workload}.png"


def write_figures(
    out_dir: Path,
    rows: Sequence[dict[str, Any]],
    series: dict[str, dict[str, list[list[float]]]],
    models: Sequence[WorkloadModel],
    meta: dict[str, Any],
    baseline: float | None,
) -> list[str]:
    """Every figure the rows allow; returns the file names written (in DIR)."""
    plt = _pyplot()
    names = []
    workloads = [w for w in meta["plan"]["workloads"] if any(r["workload"] == w for r in rows)]
    for workload in workloads:
        names.append(_memory(plt, out_dir / memory_name(workload), workload, rows, meta, baseline))
    if workloads:
        names.append(_faults(plt, out_dir / "faults.png", workloads, rows))
    if series:
        names.append(_convergence(plt, out_dir / "convergence.png", workloads, series))
    if models:
        names.append(_model(plt, out_dir / "model.png", rows, models))
    return names


def _save(plt: Any, figure: Any, path: Path) -> str:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp")
    figure.savefig(temporary, dpi=DPI, format="png")
    plt.close(figure)
    temporary.replace(path)
    return path.name


def _memory(
    plt: Any, path: Path, workload: str, rows: Sequence[dict[str, Any]], meta: dict[str, Any], baseline: float | None
) -> str:
    """Left, the paper's figure: host used, KSM off and on, per guest count; right, the guests' summed PSS."""
    plan = meta["plan"]
    counts = sorted({r["guests"] for r in rows if r["workload"] == workload})
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5), dpi=DPI)
    panels = (
        (left, "host_used_bytes", "host memory used (MiB): MemTotal − MemAvailable", baseline),
        (right, "guests_pss_bytes", "the guests' memory (MiB): sum of their PSS", None),
    )
    for axes, key, label, line in panels:
        value = {
            (r["guests"], r["ksm"]): r[key] / MIB for r in rows if r["workload"] == workload and r.get(key) is not None
        }
        width = 0.38
        for offset, ksm, colour in ((-width / 2, "off", OFF_COLOUR), (width / 2, "on", ON_COLOUR)):
            xs = [n + offset for n in counts if (n, ksm) in value]
            ys = [value[(n, ksm)] for n in counts if (n, ksm) in value]
            bars = axes.bar(xs, ys, width=width, color=colour, edgecolor="black", label=f"KSM {ksm}")
            axes.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
        if line is not None:
            axes.axhline(line / MIB, color="tab:blue", linestyle="--", linewidth=1, label="without the guests")
            axes.set_ylim(bottom=0)  # bars from zero: their heights compare honestly
        axes.set_xticks(counts)
        axes.set_xlabel("number of guests")
        axes.set_ylabel(label)
        axes.legend(fontsize=8, loc="upper left")
        axes.grid(axis="y", alpha=0.3)
    fill = f", {plan['fill_mib']} MiB fill each" if workload.startswith("fill-") else ""
    figure.suptitle(f"{workload}: 1..{plan['guests']} guests of {plan['memory_mib']} MiB{fill}", fontsize=11)
    return _save(plt, figure, path)


def _faults(plt: Any, path: Path, workloads: list[str], rows: Sequence[dict[str, Any]]) -> str:
    figure, grid = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads) + 1, 4), dpi=DPI, squeeze=False)
    sources = set()
    for axes, workload in zip(grid[0], workloads, strict=True):
        counts = sorted({r["guests"] for r in rows if r["workload"] == workload})
        width = 0.38
        for offset, ksm, colour, label in ((-width / 2, "off", OFF_COLOUR, "before (KSM off)"),
                                           (width / 2, "on", ON_COLOUR, "after merging")):  # fmt: skip
            xs, ys = [], []
            for n in counts:
                row = next(
                    (r for r in rows if r["workload"] == workload and r["guests"] == n and r["ksm"] == ksm), None
                )
                rate, source = fault_rate(row) if row else (None, "")
                if rate is not None:
                    xs.append(n + offset)
                    ys.append(rate)
                    sources.add(source)
            axes.bar(xs, ys, width=width, color=colour, edgecolor="black", label=label)
        axes.set_title(workload, fontsize=10)
        axes.set_xticks(counts)
        axes.set_xlabel("number of guests")
        axes.grid(axis="y", alpha=0.3)
    grid[0][0].set_ylabel(f"page faults per guest per s ({', '.join(sorted(sources)) or 'none'})")
    grid[0][0].legend(fontsize=8)
    return _save(plt, figure, path)


def _convergence(plt: Any, path: Path, workloads: list[str], series: dict[str, dict[str, list[list[float]]]]) -> str:
    shown = [w for w in workloads if w in series]
    figure, grid = plt.subplots(1, len(shown), figsize=(3.2 * len(shown) + 1, 4), dpi=DPI, squeeze=False)
    for axes, workload in zip(grid[0], shown, strict=True):
        for guests, points in sorted(series[workload].items(), key=lambda item: int(item[0])):
            if not points:
                continue
            axes.plot(
                [p[0] for p in points],
                [p[1] / MIB for p in points],
                linewidth=1.4,
                label=f"{guests} guest{'' if guests == '1' else 's'}",
            )
            axes.plot(points[-1][0], points[-1][1] / MIB, marker="o", color="black", markersize=3)
        axes.set_title(workload, fontsize=10)
        axes.set_xlabel("seconds since KSM on")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    grid[0][0].set_ylabel("KSM saving (MiB)")
    figure.suptitle("Merging over time (dot: converged or timed out)", fontsize=10)
    return _save(plt, figure, path)


def _model(plt: Any, path: Path, rows: Sequence[dict[str, Any]], models: Sequence[WorkloadModel]) -> str:
    figure, grid = plt.subplots(1, len(models), figsize=(3.2 * len(models) + 1, 4), dpi=DPI, squeeze=False)
    for axes, model in zip(grid[0], models, strict=True):
        counts = sorted({r["guests"] for r in rows if r["workload"] == model.workload})
        top = max(counts) if counts else 1
        for ksm, fit, colour in (("off", model.off, OFF_COLOUR), ("on", model.on, "tab:green")):
            points = [
                (r["guests"], r[model.metric] / MIB)
                for r in rows
                if r["workload"] == model.workload and r["ksm"] == ksm and r.get(model.metric) is not None
            ]
            axes.plot([p[0] for p in points], [p[1] for p in points], "o", color=colour, markersize=4)
            if fit is not None:
                xs = [0, top + 1]
                error = "" if fit.slope_error is None else f" ± {fit.slope_error / MIB:.1f}"
                axes.plot(xs, [fit.at(x) / MIB for x in xs], color=colour, linewidth=1,
                          label=f"KSM {ksm}: {fit.slope / MIB:.1f}{error} MiB/guest")  # fmt: skip
        axes.set_xlim(left=0)
        axes.set_ylim(bottom=0)
        axes.set_title(model.workload, fontsize=10)
        axes.set_xlabel("number of guests")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    grid[0][0].set_ylabel("the guests' memory (MiB, sum of PSS)")
    figure.suptitle("Capacity model: memory = intercept + per guest × guests (lines: least squares)", fontsize=10)
    return _save(plt, figure, path)
