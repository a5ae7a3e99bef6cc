"""The study's files: results.json, results.csv and report.md (the figures come from figures.py).

Every file is written to a temporary name in the output directory and renamed into place, so a reader never sees
half a file. No UI imports.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ksmtop.safetext import safe
from ksmtop.study.checks import (
    CPU_BOUND_TOLERANCE,
    FAULT_FLOOR_PER_S,
    FAULT_TOLERANCE,
    Check,
    fault_rate,
    paper_checks,
)
from ksmtop.study.model import Fit, LineFit, WorkloadModel, workload_model
from ksmtop.study.rows import COLUMNS
from ksmtop.study.runner import RECORDING_NAME, StudyResult

MIB = 2**20
GIB = 2**30
OUTPUT_NAMES = ("results.json", "results.csv", "report.md", RECORDING_NAME)
"""Files the study writes, besides the figures (figures.FIGURE_NAMES)."""


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def md(text: object) -> str:
    """Outside text (process names in warnings, error texts) as Markdown that renders as the text itself: safe()
    first (controls escaped), then every character Markdown or HTML would act on backslash-escaped."""
    return _MARKDOWN.sub(r"\\\1", safe(text))


def write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)


def host_sizes(result: StudyResult) -> list[int]:
    sizes = [int(result.meta["mem_total_bytes"])]
    other = result.meta.get("plan", {}).get("host_memory_bytes")
    if other:
        sizes.append(int(other))
    return sizes


def models(result: StudyResult, metric: str = "guests_pss_bytes") -> list[WorkloadModel]:
    """One model per workload: on the guests' PSS (the capacity: the host's baseline added), or on host used."""
    baseline = result.baseline["host_used_bytes"] if result.baseline else None
    if metric == "guests_pss_bytes":
        zero, fixed = 0.0, float(baseline or 0)
    else:
        zero, fixed = baseline, 0.0
    sizes = host_sizes(result)
    out = []
    for workload in result.meta["plan"]["workloads"]:
        points = {}
        for ksm in ("off", "on"):
            rows = [r for r in result.rows if r["workload"] == workload and r["ksm"] == ksm]
            points[ksm] = [(r["guests"], r[metric]) for r in rows if r.get(metric) is not None]
        if points["off"] or points["on"]:
            out.append(
                workload_model(
                    workload,
                    points["off"],
                    points["on"],
                    sizes,
                    metric=metric,
                    zero=zero,
                    fixed_bytes=fixed,
                )
            )
    return out


def _fit_json(fit: LineFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {
        "per_guest_bytes": round(fit.slope),
        "per_guest_error_bytes": None if fit.slope_error is None else round(fit.slope_error),
        "fixed_bytes": round(fit.intercept),
        "points": fit.points,
        "residual_rms_bytes": None if fit.residual_rms is None else round(fit.residual_rms),
        "how": fit.how,
    }


def _fits_json(fits: list[Fit]) -> list[dict[str, Any]]:
    return [{"memory_bytes": f.memory_bytes, "guests": f.guests, "low": f.low, "high": f.high} for f in fits]


def model_json(model: WorkloadModel) -> dict[str, Any]:
    saving = model.saving_per_guest_bytes
    return {
        "metric": model.metric,
        "fixed_bytes": round(model.fixed_bytes),
        "off": _fit_json(model.off),
        "on": _fit_json(model.on),
        "saving_per_guest_bytes": None if saving is None else round(saving),
        "fit_off": _fits_json(model.fits_off),
        "fit_on": _fits_json(model.fits_on),
    }


def results_document(
    result: StudyResult,
    checks: Sequence[Check],
    workload_models: Sequence[WorkloadModel],
    host_models: Sequence[WorkloadModel] = (),
) -> dict[str, Any]:
    return {
        **result.meta,
        "complete": result.complete,
        "stopped": result.stopped,
        "knobs_not_restored": result.knobs_not_restored,
        "guests_left": result.guests_left,
        "baseline": result.baseline,
        "rows": result.rows,
        "model": {m.workload: model_json(m) for m in workload_models},
        "model_host_used": {m.workload: model_json(m) for m in host_models},
        "checks": [c.to_json() for c in checks],
        "series": result.series,
        "warnings": result.warnings,
    }


def results_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def write_results(result: StudyResult, out_dir: Path, figures: Sequence[str] = ()) -> dict[str, Any]:
    """results.json, results.csv and report.md; returns the results document."""
    order = {w: i for i, w in enumerate(result.meta["plan"]["workloads"])}
    result.rows.sort(key=lambda r: (order.get(r["workload"], len(order)), r["guests"], r["ksm"] != "off"))
    workload_models = models(result)
    host_models = models(result, "host_used_bytes")
    checks = paper_checks(result.rows)
    document = results_document(result, checks, workload_models, host_models)
    document["figures"] = list(figures)
    write_atomic(out_dir / "results.json", json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    write_atomic(out_dir / "results.csv", results_csv(result.rows))
    write_atomic(out_dir / "report.md", report_markdown(result, checks, workload_models, figures, host_models))
    return document


# -- report.md ------------------------------------------------------------------------------------------------


def _m(value: float | None) -> str:
    return "–" if value is None else f"{value / MIB:.0f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _fit_text(fit: LineFit | None) -> str:
    if fit is None:
        return "–"
    error = "" if fit.slope_error is None else f" ± {fit.slope_error / MIB:.1f}"
    return f"{fit.slope / MIB:.1f}{error} MiB/guest + {fit.intercept / MIB:.0f} MiB"


def _fits_text(fits: list[Fit]) -> list[str]:
    out = []
    for fit in fits:
        if fit.guests is None:
            out.append("no limit (slope ≤ 0)")
        elif fit.low is None:
            out.append(f"{fit.guests}")
        else:
            high = "∞" if fit.high is None else str(fit.high)
            out.append(f"{fit.guests} ({fit.low}–{high})")
    return out


def report_markdown(
    result: StudyResult,
    checks: Sequence[Check],
    workload_models: Sequence[WorkloadModel],
    figures: Sequence[str],
    host_models: Sequence[WorkloadModel] = (),
) -> str:
    meta, plan = result.meta, result.meta["plan"]
    lines = [
        "# KSM study: host memory with KSM off and on, 1.." + str(plan["guests"]) + " identical guests",
        "",
        f"Made by `ksmtop study` (ksmtop {meta['ksmtop']}) on {meta['host']}, "
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(meta['started']))}, in {_duration(meta.get('seconds', 0))}.",
        "",
    ]
    if not result.complete:
        lines += [f"**The study did not finish: {md(result.stopped)}.** The figures below hold what was measured.", ""]
    if result.knobs_not_restored:
        lines += ["**KSM knobs not restored:** " + md("; ".join(result.knobs_not_restored)), ""]
    if result.guests_left:
        lines += ["**Guests still running:** " + md(", ".join(result.guests_left)), ""]
    accel = meta.get("accel", {})
    host = f"{meta['cpu']}, {meta['ncpus']} CPUs, {meta['mem_total_bytes'] / GIB:.1f} GiB, kernel {meta['kernel']}"
    baseline = _m((result.baseline or {}).get("host_used_bytes"))
    lines += [
        "| | |",
        "|---|---|",
        f"| Host | {host} |",
        f"| Guests | lab guests (Debian kernel, busybox, qemu-ga), {plan['memory_mib']} MiB, 1 vCPU, "
        f"{accel.get('accel', '?').upper()} ({accel.get('reason', '?')}) |",
        f"| Workloads | {', '.join(plan['workloads'])}; fills of {plan['fill_mib']} MiB per guest |",
        f"| KSM for the study | pages_to_scan {plan['pages_to_scan']}, sleep_millisecs {plan['sleep_millisecs']} "
        f"(before: {_knobs_text(meta.get('knobs_before', {}))}; restored: "
        f"{'yes' if not result.knobs_not_restored else 'NO'}) |",
        f"| Measurement | window {plan['window_s']:g} s at {plan['interval_s']:g} s samples "
        f"({plan.get('merge_interval_s', plan['interval_s']):g} s while merging); convergence timeout "
        f"{plan['converge_timeout_s']:g} s |",
        f"| Baseline | host used without the study's guests: {baseline} MiB |",
        "",
        "**Host used** is MemTotal − MemAvailable (the median over the window): what the host cannot hand to "
        "anything else, the figure the paper read. It includes everything else running on the host (the baseline "
        "above), so compare differences between bars, not their height. **Saving** is (pages_sharing + "
        "ksm_zero_pages) × page size with KSM on. **PSS** sums the guests' proportional set sizes (a merged page is "
        "split between its mappers): what the guests cost the host, which other processes do not move; RSS still "
        "counts merged pages.",
        "",
        "## Results",
        "",
        "| Workload | Guests | Host used off | Host used on | Off − on | Saving | PSS off | PSS on "
        "| Converged in | ksmd CPU | Faults/s/guest off → on |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for workload in plan["workloads"]:
        for n in range(1, plan["guests"] + 1):
            off = _row(result.rows, workload, n, "off")
            on = _row(result.rows, workload, n, "on")
            if off is None and on is None:
                continue
            lines.append(_table_row(workload, n, off, on))
    lines += [
        "",
        "MiB throughout. Converged: by ksmtop's detector (≥ 2 full scans, pages_sharing moving < 0.5% over "
        "the last one); “not” means the timeout came first. ksmd CPU: % of one CPU while merging.",
        "",
    ]
    lines += _other_use(result)
    lines += _figures_section(figures)
    lines += _model_section(result, workload_models, host_models)
    lines += ["## The paper's findings, checked", "", "| Finding | Here | Numbers |", "|---|---|---|"]
    for check in checks:
        lines.append(f"| {check.finding} | **{check.verdict}** | {check.numbers} |")
    lines += [
        "",
        f"Thresholds, fixed before the run: CPU-bound within ±{CPU_BOUND_TOLERANCE:.0%} of idle; faults within "
        f"±{FAULT_TOLERANCE:.0%} (or {FAULT_FLOOR_PER_S:g} faults/s per guest) with no new major faults.",
        "",
    ]
    if result.warnings:
        lines += ["## Warnings", ""] + [f"- {md(w)}" for w in result.warnings] + [""]
    lines += [
        "## Files",
        "",
        "`results.json` (every row, the model, the checks, the convergence series), `results.csv` (the rows), "
        f"`{RECORDING_NAME}` (every sample and event: `ksmtop replay`, `ksmtop plot`, `ksmtop export`).",
        "",
    ]
    return "\n".join(lines)


def _knobs_text(knobs: dict[str, str]) -> str:
    keys = ("run", "pages_to_scan", "sleep_millisecs")
    return ", ".join(f"{k} {knobs[k]}" for k in keys if k in knobs)


def _row(rows: Sequence[dict[str, Any]], workload: str, guests: int, ksm: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["workload"] == workload and r["guests"] == guests and r["ksm"] == ksm), None)


def _table_row(workload: str, n: int, off: dict[str, Any] | None, on: dict[str, Any] | None) -> str:
    def get(row: dict[str, Any] | None, key: str) -> Any:
        return None if row is None else row.get(key)

    diff = None if off is None or on is None else off["host_used_bytes"] - on["host_used_bytes"]
    if on is None:
        converged = "–"
    elif on["converged"]:
        converged = f"{on['convergence_s']:.0f} s"
    else:
        converged = f"not ({on['merge_seconds']:.0f} s)"
    cpu = get(on, "merge_ksmd_cpu_percent")
    before = fault_rate(off)[0] if off else None
    after = fault_rate(on)[0] if on else None
    faults = f"{_rate(before)} → {_rate(after)}"
    return (
        f"| {workload} | {n} | {_m(get(off, 'host_used_bytes'))} | {_m(get(on, 'host_used_bytes'))} | {_m(diff)} "
        f"| {_m(get(on, 'saving_bytes'))} | {_m(get(off, 'guests_pss_bytes'))} | {_m(get(on, 'guests_pss_bytes'))} "
        f"| {converged} | {'–' if cpu is None else f'{cpu:.0f}%'} | {faults} |"
    )


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _other_use(result: StudyResult) -> list[str]:
    """How much everything but the guests moved host used during the study (the noise in the paper's figure)."""
    other = [r["other_used_bytes"] for r in result.rows if r.get("other_used_bytes") is not None]
    if not other:
        return []
    return [
        f"Everything on the host but the guests' memory (host used − the guests' PSS) ranged {_m(min(other))}–"
        f"{_m(max(other))} MiB across the measurements (baseline {_m((result.baseline or {}).get('host_used_bytes'))} "
        "MiB): the host's own use moves host used by that much; the guests' PSS does not move with it.",
        "",
    ]


def _figures_section(figures: Sequence[str]) -> list[str]:
    if not figures:
        return ["## Figures", "", "No figures (matplotlib is missing, or the study stopped early).", ""]
    lines = ["## Figures", ""]
    for name in figures:
        lines += [f"![{name}]({name})", ""]
    return lines


def _model_section(
    result: StudyResult, workload_models: Sequence[WorkloadModel], host_models: Sequence[WorkloadModel]
) -> list[str]:
    sizes = host_sizes(result)
    baseline = (result.baseline or {}).get("host_used_bytes")
    size_heads = [f"this host ({sizes[0] / GIB:.0f} GiB)"] + [f"{s / GIB:.0f} GiB" for s in sizes[1:]]
    lines = [
        "## Capacity model",
        "",
        "The guests' memory (their summed PSS) against the number of guests, a least-squares line with and without "
        "KSM: memory(n) = intercept + per guest × n. ± is the slope's standard error (none from two points, which "
        "fit exactly; a single guest count is joined to 0 guests). Guests that fit: the largest n with "
        f"baseline ({_m(baseline)} MiB, host used without the study's guests) + memory(n) ≤ the host's memory; in "
        "brackets the range slope ± error gives. The last column fits host used instead (the paper's figure), as a "
        "cross-check: other processes on the host move it, so its error is larger.",
        "",
        "| Workload | KSM off (PSS) | KSM on (PSS) | KSM saves per guest | "
        + " | ".join(f"Fit {h}, off | Fit {h}, on" for h in size_heads)
        + " | Host used: off / on per guest |",
        "|---|---|---|---:|" + "---:|---:|" * len(sizes) + "---|",
    ]
    host_by_workload = {m.workload: m for m in host_models}
    for model in workload_models:
        saving = model.saving_per_guest_bytes
        cells = []
        off_fits, on_fits = _fits_text(model.fits_off), _fits_text(model.fits_on)
        for i in range(len(sizes)):
            cells += [off_fits[i] if i < len(off_fits) else "–", on_fits[i] if i < len(on_fits) else "–"]
        host = host_by_workload.get(model.workload)
        cross = "–" if host is None else f"{_slope_text(host.off)} / {_slope_text(host.on)}"
        lines.append(
            f"| {model.workload} | {_fit_text(model.off)} | {_fit_text(model.on)} | "
            f"{'–' if saving is None else f'{saving / MIB:.1f} MiB'} | " + " | ".join(cells) + f" | {cross} |"
        )
    lines += [
        "",
        "Assumptions: memory grows linearly with identical guests running the same workload; a guest fits while "
        "the host's own use plus the guests' memory stays within the host's memory (no swap, no headroom for "
        "anything that starts later, kernel overhead per guest such as page tables and KSM's rmap items left out: "
        "general_profit in results.json shows the latter); ksmd keeps up (its CPU is in the table); another host "
        "uses as much for itself as this one; guests of the size and workload measured here. What KSM saves per "
        "guest depends on how much of a guest is identical to the others, so the model holds for identical guests.",
        "",
    ]
    return lines


def _slope_text(fit: LineFit | None) -> str:
    if fit is None:
        return "–"
    error = "" if fit.slope_error is None else f" ± {fit.slope_error / MIB:.0f}"
    return f"{fit.slope / MIB:.0f}{error}"
